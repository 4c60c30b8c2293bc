"""bpcli/files.py: how bp names the paths it shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpcli.files import short_path


def test_short_path_is_relative_only_when_that_is_shorter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    inside = tmp_path / "runs" / "iris" / "model.npz"
    inside.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert short_path(inside) == str(Path("runs") / "iris" / "model.npz")
    assert short_path(Path("/data.csv")) == "/data.csv"  # ../../../data.csv is longer
