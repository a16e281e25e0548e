"""Exception types with messages meant for the user.

Every error the library raises on bad input derives from :class:`SliceSamError`, so the CLI and
the napari widget can show the message without a traceback.
"""

from __future__ import annotations


class SliceSamError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""


class VolumeReadError(SliceSamError):
    """A file could not be read as a volume (missing, corrupt, unsupported, wrong shape)."""


class VolumeWriteError(SliceSamError):
    """Labels could not be written (unsupported format, geometry mismatch, dtype)."""


class PromptError(SliceSamError):
    """A prompt is invalid: outside the image, on an unknown or locked object, malformed JSON."""


class CheckpointError(SliceSamError):
    """A model checkpoint is missing, unreadable, of the wrong architecture or fails its hash."""


class ModelError(SliceSamError):
    """A model name is unknown or a device is unavailable."""
