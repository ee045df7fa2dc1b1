"""The headless core must never pull in napari or Qt."""

import subprocess
import sys


def test_core_imports_without_napari_or_qt():
    code = (
        "import sys\n"
        "import napari_stackalign, napari_stackalign.core, napari_stackalign.synthetic\n"
        "import napari_stackalign.io, napari_stackalign.cli\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.iter_modules(napari_stackalign.core.__path__):\n"
        "    importlib.import_module('napari_stackalign.core.' + m.name)\n"
        "for m in pkgutil.iter_modules(napari_stackalign.io.__path__):\n"
        "    importlib.import_module('napari_stackalign.io.' + m.name)\n"
        "napari_stackalign.cli.build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt', 'vispy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"GUI modules loaded by the core: {out.stdout}"
