"""User-facing errors.

Every problem a user can fix (bad data, a wrong flag, a missing or incompatible checkpoint)
is raised as a `P2phdError`. The CLI prints its message as one line and exits with status 2;
anything else is a bug and exits with status 1 and a traceback.

A message names the offending file or option and says what to do about it.
"""

from __future__ import annotations


class P2phdError(Exception):
    """A problem the user can fix; the message names the file or option and the fix."""


class ConfigError(P2phdError):
    """An option value, or a combination of them, that cannot work."""


class DatasetError(P2phdError):
    """A source or prepped dataset file that is missing, unreadable or inconsistent."""


class LabelRangeError(DatasetError):
    """A label map with a value >= the label_nc asked for (`top`: its largest value)."""

    def __init__(self, message: str, top: int) -> None:
        super().__init__(message)
        self.top = top


class CheckpointError(P2phdError):
    """A run directory or checkpoint that is missing, incomplete or does not match the config."""


class TrainingAborted(P2phdError):
    """Training stopped on purpose: too many non-finite steps in a row."""


class WriteError(P2phdError):
    """A file or folder the system refused to write: disk full, size limit, read-only..."""

    def __init__(self, path: object, cause: str, fix: str) -> None:
        super().__init__(f"{path}: cannot write ({cause}); {fix}")
        self.path, self.cause, self.fix = path, cause, fix

    def __reduce__(self) -> tuple[type, tuple[object, str, str]]:  # across process pools
        return WriteError, (self.path, self.cause, self.fix)


class NotFoundError(P2phdError):
    """Something asked for by name that does not exist: a label map key, an instance id."""


class DownloadError(P2phdError):
    """A weights download that failed or did not match its pinned SHA-256."""
