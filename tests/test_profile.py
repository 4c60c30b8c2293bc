"""bp validate's column profile: kinds, counts, examples, and what looks wrong, shown
beside the problems when the data is messy and as JSON with --json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import load_config
from bpcli.profile import profile
from tests.conftest import CONFIGS, DATASETS

Writer = Callable[..., Path]
NAIVE = {"data": {"path": str(DATASETS / "rentals.csv"), "target": "rent"},
         "model": {"layers": [{"type": "dense", "units": 4}, {"type": "dense"}]}}


@pytest.fixture
def naive(write_config: Writer) -> Path:
    return write_config(NAIVE)


def test_the_profile_flags_what_a_messy_file_holds(naive: Path) -> None:
    columns = {c.name: c for c in profile(load_config(naive))}
    assert list(columns) == ["listing_id", "listed", "city", "rooms", "area_m2", "balcony",
                             "rent"]
    assert columns["listing_id"].flags == [
        "looks like an identifier: 600 distinct values in 600 rows"]
    assert columns["listed"].flags == ["looks like dates"]
    assert columns["city"].flags == ["differ only in case or spaces: 'BERLIN', 'Berlin', "
                                     "'berlin'; 'Hamburg', 'hamburg'; 'Leipzig', 'leipzig'"]
    rooms = columns["rooms"]
    assert (rooms.kind, rooms.missing, rooms.distinct) == ("numeric", 21, 6)
    assert rooms.flags == ["21 cells not numeric: '?' (lines 7, 36, 65, 94, 123)"]
    assert columns["area_m2"].flags[0].startswith("10 cells not numeric: '-', 'unknown'")
    rent = columns["rent"]
    assert (rent.role, rent.kind, rent.missing) == ("target", "numeric", 12)
    assert columns["balcony"].examples == ["false", "true"] and not columns["balcony"].flags
    assert columns["rooms"].examples == ["1", "2", "4"]


def test_the_shipped_config_answers_every_flag(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(CONFIGS / "rentals.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["valid"] is True and document["parameters"] > 0
    columns = {c["name"]: c for c in document["columns"]}
    assert columns["listing_id"]["role"] == "dropped"
    assert columns["city"]["flags"] == []  # fold_case: one value each


def test_a_messy_file_gets_its_profile_beside_its_problems(runner: CliRunner,
                                                           naive: Path) -> None:
    result = runner.invoke(app, ["validate", str(naive)])
    assert result.exit_code == 2
    assert "looks like an identifier" in result.stdout and "looks like dates" in result.stdout
    assert "5 problems in" in result.stderr
    result = runner.invoke(app, ["validate", str(naive), "--json"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["valid"] is False and len(document["problems"]) == 8
    assert document["problems"][-1].endswith("fix them and run again")
