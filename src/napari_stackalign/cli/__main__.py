"""``python -m napari_stackalign.cli``: the ``stackalign`` command."""

import sys

from . import main

sys.exit(main())
