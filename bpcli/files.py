"""Where bp reads and writes: regular files only, read within a size limit.

A FIFO blocks its reader until someone writes, ``/dev/zero`` never ends, and renaming a
result over ``/dev/null`` or a model file destroys it. So every path bp reads is checked
with ``os.stat`` before it is opened, opened without blocking, and read no further than a
limit; every path it writes is checked to be a new path or a regular file that is not one
of the command's own inputs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

from bpcli.errors import BpError, UsageError

#: ``--out -`` writes to standard output.
STDOUT = "-"

ErrorFactory = Callable[[str], BpError]


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: Path, error: ErrorFactory, what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path``, which must exist and be a regular file (symbolic links are
    followed); otherwise ``error("<path>: <why>; <what to do>")``."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(status.st_mode):
        raise error(f"{path}: is {kind_of(status.st_mode)}, not a regular file; bp reads "
                    f"only regular files (save the {what}'s contents to one)")
    return status


def open_regular(path: Path, error: ErrorFactory, what: str = "file") -> IO[bytes]:
    """Open a regular file for reading, never blocking: the file is checked before it is
    opened, and again once open (it may have been swapped for a FIFO in between, which
    ``O_NONBLOCK`` opens without waiting for a writer)."""
    regular_file(path, error, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{path}: is not a regular file; bp reads only regular files")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: Path, limit: int, error: ErrorFactory, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    size = regular_file(path, error, what).st_size
    if size > limit:
        raise error(f"{path}: the {what} is {human_size(size)}, more than bp reads "
                    f"({human_size(limit)}); is this the right file?")
    with open_regular(path, error, what) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew since the check
        raise error(f"{path}: the {what} is more than {human_size(limit)}; is this the right "
                    "file?")
    return data


def human_size(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if n < 1024:
        return f"{int(n)} bytes"
    units = ["KiB", "MiB", "GiB", "TiB"]
    n /= 1024
    while n >= 1024 and len(units) > 1:
        n /= 1024
        units.pop(0)
    return f"{n:.1f} {units[0]}"


def output_path(out: Path, *inputs: Path, option: str = "--out") -> Path | None:
    """Check where a command is told to write: ``None`` for ``-`` (standard output),
    else ``out`` itself, which must be a new path or a regular file that is none of the
    command's ``inputs`` (writing there would destroy the input it was made from)."""
    if str(out) == STDOUT:
        return None
    try:
        status = os.stat(out)
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise UsageError(f"{option} {out}: cannot write there: {exc.strerror or exc}") from None
    if not stat.S_ISREG(status.st_mode):
        raise UsageError(f"{option} {out}: is {kind_of(status.st_mode)}; give a file name "
                         f"(or - for standard output)")
    for source in inputs:
        try:
            same = os.path.samefile(out, source)
        except OSError:  # an input that is not there is the input's own error
            continue
        if same:
            raise UsageError(f"{option} {out}: is the input file {source}; write the "
                             "output to another file")
    return out


def short_path(path: Path) -> str:
    """``path`` as typed in a command shown to the user: relative to the current directory
    when that is shorter."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
