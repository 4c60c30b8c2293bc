"""bpcli/atomic.py: a file is replaced whole or not at all, and durably."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO, Any

import pytest

from bpcli import atomic
from bpcli.atomic import json_text, write_atomic, write_text_atomic


class Boom(Exception):
    pass


def half_then_fail(f: IO[bytes]) -> None:
    f.write(b"new first half")
    f.flush()
    raise Boom


def test_a_writer_failing_halfway_leaves_the_old_file_and_no_temporaries(tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(b"old contents")
    with pytest.raises(Boom):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_a_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom):
        write_atomic(tmp_path / "new.csv", half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_also_cleans_up(tmp_path: Path) -> None:
    """Ctrl-C (KeyboardInterrupt) is no Exception, and must not leave a temporary file."""

    def interrupted(f: IO[bytes]) -> None:
        f.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "a.txt", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_a_successful_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text("old")
    write_text_atomic(path, "néw\n")
    assert path.read_bytes() == "néw\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_the_result_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        after = os.umask(0o027)  # reading the umask must have put it back
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert after == 0o027


def test_missing_directory_and_directory_target_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="does not exist"):
        write_text_atomic(tmp_path / "nowhere" / "a.txt", "x")
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError, match="is a directory"):
        write_text_atomic(tmp_path / "d", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_target_is_refused_and_left_in_place(tmp_path: Path) -> None:
    """Renaming over a FIFO (or a device) would replace the node itself."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"pipe: is not a regular file; give a file name$"):
        write_text_atomic(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


class Spy:
    """Records fsync and replace calls, in order, then does the real thing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, Any]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            self.calls.append(("fsync", os.fstat(fd)))
            real_fsync(fd)

        def replace(src: Any, dst: Any) -> None:
            self.calls.append(("replace", (Path(src), Path(dst))))
            real_replace(src, dst)

        monkeypatch.setattr(atomic.os, "fsync", fsync)
        monkeypatch.setattr(atomic.os, "replace", replace)


def test_the_data_is_synced_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    write_atomic(path, lambda f: f.write(b"twelve bytes"))
    names = [name for name, _ in spy.calls]
    assert names == ["fsync", "replace", "fsync"]
    file_stat, (src, dst), dir_stat = (arg for _, arg in spy.calls)
    # the first fsync is of the temporary file, holding all the data, beside the target
    assert stat.S_ISREG(file_stat.st_mode) and file_stat.st_size == len(b"twelve bytes")
    assert src.parent == tmp_path and src.name.startswith(".model.npz.") and dst == path
    # the last is of the directory, making the rename durable
    assert stat.S_ISDIR(dir_stat.st_mode) and dir_stat.st_ino == tmp_path.stat().st_ino
    assert path.read_bytes() == b"twelve bytes"


def test_a_failing_fsync_leaves_the_old_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(OSError, match="Input/output"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_text_is_strict() -> None:
    text = json_text({"b": [1.5, float("nan")], "a": (float("inf"), -float("inf"), 2)},
                     indent=None)
    assert text == '{"a": [null, null, 2], "b": [1.5, null]}'
    assert json.loads(text) == {"a": [None, None, 2], "b": [1.5, None]}
    assert json_text({"x": {"y": 1}}, indent=2) == '{\n  "x": {\n    "y": 1\n  }\n}'


def test_a_directory_that_cannot_be_synced_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some systems cannot open or fsync a directory; the file itself is still written."""
    real_open, real_fsync = os.open, os.fsync
    fsynced_dirs: list[int] = []

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            fsynced_dirs.append(fd)
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    closed: list[int] = []
    real_close = os.close
    monkeypatch.setattr(atomic.os, "close", lambda fd: (closed.append(fd), real_close(fd)))
    write_text_atomic(tmp_path / "a.txt", "one")
    assert (tmp_path / "a.txt").read_text() == "one"
    assert len(fsynced_dirs) == 1 and closed == fsynced_dirs  # tried, and closed after

    def no_directories(path: Any, flags: int, *args: Any) -> int:
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(atomic.os, "open", no_directories)
    write_text_atomic(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert len(fsynced_dirs) == 1  # no directory to sync this time


def test_the_temporary_file_is_hidden_beside_the_target_and_ends_in_tmp(tmp_path: Path) -> None:
    """bp train --resume removes stale temporaries by this name (.NAME.*.tmp)."""
    seen: list[str] = []
    write_atomic(tmp_path / "model.npz",
                 lambda f: seen.extend(p.name for p in tmp_path.iterdir()))
    (name,) = seen
    assert name.startswith(".model.npz.") and name.endswith(".tmp")


def test_with_no_umask_the_result_is_readable_and_writable_by_all(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666

