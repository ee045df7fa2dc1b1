"""Everything that touches napari: npe2 hooks and one module per dock widget."""
