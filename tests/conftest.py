"""Shared fixtures: paths into the repository and small configs written to tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"
CONFIGS = REPO / "configs"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, so that runs/ lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def iris_config(**sections: Any) -> dict[str, Any]:
    """A small, fast iris config; ``sections`` replace whole top-level sections."""
    config: dict[str, Any] = {
        "data": {"path": str(DATASETS / "iris.csv"), "target": "species"},
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                             {"type": "dense", "activation": "softmax"}]},
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "training": {"epochs": 5, "batch_size": 16, "seed": 0},
        "output": {"runs_dir": "runs", "name": "t"},
    }
    config.update(sections)
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config dict (or raw YAML text) to a file in tmp_path and return its path."""

    def write(config: dict[str, Any] | str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        path.write_text(text)
        return path

    return write
