"""The plumbing every other package uses: reading and writing MRC volumes and 2D images (``io``), finding the
inputs a command names (``inputs``), computing volumes slab by slab (``streaming``), and cutting slices into
patches and tiles (``tiling``). It holds no science, and imports nothing else of the engine."""
