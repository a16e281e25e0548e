"""The ``layer.metadata`` keys slicesam's reader, writer and widget share."""

#: The source :class:`~slicesam.io.Volume` of a layer (its geometry is written back on save).
VOLUME_KEY = "slicesam_volume"
#: The source file (or DICOM folder) path, as a str.
PATH_KEY = "slicesam_path"
#: {label value: object name} (DICOM-SEG segment names).
NAMES_KEY = "slicesam_names"
#: A note about how the file was opened (e.g. one channel of many).
NOTE_KEY = "slicesam_note"
