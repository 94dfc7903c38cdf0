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


class MissingFolderError(FileNotFoundError, ValueError):
    """A local folder the user named does not exist (a ``FileNotFoundError`` and a ``ValueError``, as
    :class:`MissingFileError`)."""


def existing_folder(path: str | os.PathLike, what: str, instead: str = "") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is an existing folder, else :class:`MissingFolderError` naming it
    and, when one looks like a typo of it, the closest existing sibling folder."""
    import difflib

    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise MissingFolderError(f"{what} {str(path)!r} is a file, not a folder; pass a folder{instead}.")
    parent = path.parent if path.parent.is_dir() else None
    siblings = [p.name for p in parent.iterdir() if p.is_dir()] if parent is not None else []
    close = difflib.get_close_matches(path.name, siblings, n=1, cutoff=0.8)
    hint = f" (did you mean {str(path.with_name(close[0]))!r}?)" if close else ""
    raise MissingFolderError(f"no such folder: {what} {str(path)!r} does not exist{hint}; pass an existing "
                             f"folder{instead}.")
