"""``python -m napari_stackalign.cli``: the ``stackalign`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
