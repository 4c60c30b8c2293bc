"""bpcli/streams.py: an output stream that outlives its reader (``bp ... | head``) and still
reports every other error. (bp through a closed pipe, end to end: test_processes.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bpcli.streams import GuardedStream


def test_guarded_stream_survives_a_closed_pipe() -> None:
    read, write = os.pipe()
    stream = GuardedStream(os.fdopen(write, "w", buffering=1))
    stream.write("seen\n")
    assert os.read(read, 100) == b"seen\n"
    os.close(read)
    stream.write("nobody reads this\n")  # EPIPE, swallowed
    stream.flush()
    assert stream.reader_gone
    stream.write("x" * 100_000)  # and everything after it
    stream.flush()
    stream.close()


def test_guarded_stream_still_reports_other_errors(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    with open("/dev/full", "w") as full:
        stream = GuardedStream(full)
        stream.write("x")
        with pytest.raises(OSError, match="No space"):
            stream.flush()  # a full disk is not a reader going away
        full.buffer.raw.close()  # drop the unwritable byte, or closing tries again
