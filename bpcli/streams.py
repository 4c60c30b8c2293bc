"""Standard output and error that a departed reader cannot break.

``bp train config.yaml | head -2`` closes the pipe after two lines, and a closed terminal
(SIGHUP) takes the tty with it. From then on every write fails (EPIPE, EIO). Output stops
there, but the work must not: training goes on to its normal end and writes its run
directory, and the exit code is the one the work earns. So the first failed write points the
stream's file descriptor at /dev/null, and that write and every later one, Python's own
flush at exit included, succeed silently.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any, TextIO

#: the reader is gone: a pipe closed at its other end, or a terminal that hung up
READER_GONE = (errno.EPIPE, errno.EIO)


class GuardedStream:
    """A text stream whose writes survive the reader going away (see the module's doc)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._lost_reader(exc)
            return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._lost_reader(exc)

    def _lost_reader(self, exc: OSError) -> None:
        if exc.errno not in READER_GONE:
            raise exc
        self.reader_gone = True
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        try:  # what the buffer still holds now goes to /dev/null
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_standard_streams() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` survive a departed reader. A stream that was
    closed before bp started (``2>&-``) becomes /dev/null."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            stream = open(os.devnull, "w", encoding="utf-8")
        if not isinstance(stream, GuardedStream):
            setattr(sys, name, GuardedStream(stream))


def flush_standard_streams() -> None:
    """Flush both streams before the interpreter does, so that a reader gone at the very
    end is handled here rather than reported by Python as an ignored exception."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
