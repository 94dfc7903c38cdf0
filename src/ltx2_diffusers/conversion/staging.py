"""The output folder of a conversion: checked before any work, written as a temporary sibling, renamed at the end.

The temporary folder is named ``.<output name>.converting-<host>-<pid>-<token>``. A run that is killed (SIGKILL, a
power cut) cannot remove it, and at real size it holds tens of GB; so every run first looks for such folders next
to its output, and removes those written on this host by a process that no longer exists. Folders of live
processes, or of other hosts (a shared filesystem), are left alone and reported.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

from diffusers.utils import logging

logger = logging.get_logger(__name__)

TEMP_MARK = ".converting-"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.converting-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40]


def temp_folder(output: Path) -> Path:
    """The temporary sibling folder this process writes ``output`` into (not created)."""
    return output.parent / f".{output.name}{TEMP_MARK}{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _process_alive(pid: int) -> bool | None:
    """``True``/``False`` on POSIX; ``None`` where it cannot be told without side effects."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return None
    return True


def remove_stale_temp_folders(parent: Path) -> list[Path]:
    """Removes the temporary folders in ``parent`` left by conversions on this host whose process is gone; returns
    them. Those that cannot be removed, or whose process cannot be checked, are reported with a warning."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match["pid"])
        if match["host"] != _host():
            alive = None  # another machine's process: cannot be checked from here
        elif pid == os.getpid():
            alive = True
        else:
            alive = _process_alive(pid)
        if alive:
            continue
        if alive is None:
            logger.warning("%s looks like the temporary folder of an unfinished conversion (process %d on host %r); "
                           "remove it by hand if no conversion is running there.", entry, pid, match["host"])
            continue
        try:
            shutil.rmtree(entry)
        except OSError as error:
            logger.warning("%s is left over from a killed conversion (process %d) but cannot be removed (%s); "
                           "remove it by hand to free its space.", entry, pid, error)
            continue
        logger.warning("removed %s, left over from a killed conversion (process %d).", entry, pid)
        removed.append(entry)
    return removed


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(output: Path, source_folders: Mapping[str, Path | None]) -> Path:
    """``output`` made absolute; a ``ValueError`` if it exists, its parent does not, or it lies (links resolved)
    inside one of ``source_folders`` (label -> a folder whose files go into the output, e.g. the text encoder's)."""
    output = Path(output).absolute()
    if output.exists() or output.is_symlink():
        raise ValueError(f"{output} already exists; remove it or pass another --output (nothing is overwritten).")
    if not output.parent.is_dir():
        raise ValueError(f"{output.parent} does not exist; create the parent folder of --output first.")
    resolved = output.resolve()
    for label, folder in source_folders.items():
        if folder is not None and _inside(resolved, Path(folder).resolve()):
            raise ValueError(f"--output {output} lies inside the {label} folder {folder}, which is copied into it; "
                             f"pass an --output outside {folder}.")
    return output


def publish(temp: Path, output: Path) -> None:
    """Renames the finished ``temp`` to ``output``; a ``FileExistsError`` if ``output`` appeared meanwhile (nothing
    is overwritten; the caller removes ``temp``)."""
    lost = f"{output} appeared while converting (another process?); it was left as it is and nothing was written"
    if output.exists() or output.is_symlink():
        raise FileExistsError(errno.EEXIST, lost)
    try:
        os.rename(temp, output)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(errno.EEXIST, lost) from error
        raise
