"""napari integration: the reader, writer and sample-data hooks named in ``napari.yaml``.

Nothing outside this package imports it. Its modules import neither torch nor (at module
level) napari or Qt, so napari can list and call the hooks cheaply.
"""
