"""The errors library code raises; only the CLI turns them into a message and an exit code.

Every error is a `HilbertError`: a problem the user can fix, whose message names the file or
parameter, what is wrong, and what to do. `param` names the library parameter an error is about
(for example "device" or "train.epochs"); a message about a parameter starts with "<param>: ", so
the CLI can put its own flag name there (`--device`), while library users see the parameter name.
"""
from __future__ import annotations

from typing import Optional


class HilbertError(Exception):
    """A problem the user can fix: the message names the file or option, what is wrong, and what to do."""

    def __init__(self, message: str, *, param: Optional[str] = None):
        super().__init__(message)
        self.param = param


class ConfigError(HilbertError, ValueError):
    """A parameter or configuration value that is not allowed (names the parameter, the allowed values and the value got)."""


class DataError(HilbertError, ValueError):
    """Input data that cannot be used: arrays of the wrong shape, too few documents or classes, a bad corpus file."""


class DeviceError(HilbertError):
    """A compute device that was asked for but is not there (no CUDA, no such GPU index, no MPS)."""


class ModelFileError(HilbertError):
    """A model file that cannot be used: missing, damaged, from a newer version, or not a hilbert model."""


class NotFittedError(HilbertError, AttributeError):
    """A classifier used before `fit` (or `load`)."""


class OutputError(HilbertError):
    """A file or folder that cannot be written: full disk, no permission, a file where a folder should be."""
