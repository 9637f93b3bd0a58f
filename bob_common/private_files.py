"""Files only their owner may read: the database, and the settings and secrets the
services and `make run` write. Directories are 0700 and files 0600 when they are
created here, and a file found readable by others is narrowed to 0600 (with a warning),
whatever the process's umask."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Creates the directory (and its missing parents) readable by its owner only. One
    that exists already is left as it is: it may be shared on purpose (/var/lib)."""
    directory = Path(path)
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(d, DIR_MODE)  # mkdir's mode passes through the umask
    return directory


def private_file(path: str | os.PathLike[str]) -> Path:
    """Makes sure the file exists (empty if new) with mode 0600, its directory created
    with private_dir."""
    file = Path(path)
    private_dir(file.parent)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    narrow(file)
    return file


def narrow(path: str | os.PathLike[str]) -> None:
    """Takes group and others' access away from an existing file."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); now %o", path, mode, FILE_MODE)
        os.chmod(path, FILE_MODE)


def write_private(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Writes the whole file, readable by its owner only from its first byte on: it is
    written beside as a new 0600 file, then renamed over the old one."""
    file = Path(path)
    private_dir(file.parent)
    temporary = file.with_name(f".{file.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)  # an old temporary file keeps its mode
        out.write(data.encode() if isinstance(data, str) else data)
    os.replace(temporary, file)
    return file
