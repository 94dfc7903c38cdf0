"""Local files named by the user: one error type for a file that is not there."""

from __future__ import annotations

import os
from pathlib import Path


class MissingFileError(FileNotFoundError, ValueError):
    """A local file the user named does not exist.

    Both a ``FileNotFoundError`` (it is a file error) and a ``ValueError`` (it is a bad argument, caught with the
    others), as ``io.UnsupportedOperation`` is both an ``OSError`` and a ``ValueError``.
    """


def existing_file(path: str | os.PathLike, what: str, instead: str = "") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is an existing file, else :class:`MissingFileError` naming it."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    problem = "is a folder, not a file" if path.is_dir() else "does not exist"
    raise MissingFileError(f"{what} file {str(path)!r} {problem}; pass an existing file{instead}.")
