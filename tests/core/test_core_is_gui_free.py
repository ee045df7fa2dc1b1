"""The headless core must never pull in napari or Qt."""

import subprocess
import sys


def test_core_imports_without_napari_or_qt():
    """Import every module of core (all subpackages), io and the CLI in a fresh interpreter."""
    code = (
        "import sys\n"
        "import napari_stackalign, napari_stackalign.core, napari_stackalign.synthetic\n"
        "import napari_stackalign.io, napari_stackalign.cli\n"
        "import pkgutil, importlib\n"
        "seen = []\n"
        "for pkg in (napari_stackalign.core, napari_stackalign.io, napari_stackalign.cli):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "        seen.append(m.name)\n"
        "napari_stackalign.cli.build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt', 'vispy'))\n"
        "print(len(seen))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    n_modules, bad = int(lines[0]), (lines[1] if len(lines) > 1 else "")
    assert int(n_modules) > 60, f"expected every core subpackage to be walked, got {n_modules} modules"
    assert bad == "", f"GUI modules loaded by the core: {bad}"
