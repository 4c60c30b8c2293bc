"""Shared fixtures: paths into the repository and small configs written to tmp_path.

Test files follow the modules they specify: ``test_nn_X.py`` for ``bpcli/nn/X.py``,
``test_X.py`` for ``bpcli/X.py`` or for the command ``bp X`` (``bpcli/commands/X.py``). A
few suites check a property across modules instead, and say so in their first line:
test_cli.py (the command line as a whole), test_nn_gradients.py (every backward pass
against finite differences), test_cnn.py (image models end to end), test_fuzz.py and
test_hostile_input.py (bad input anywhere), test_processes.py (bp among other processes),
test_docs.py and test_model_format.py (documents against the code), test_layering.py (the
package's import rules).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"
CONFIGS = REPO / "configs"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    """In CI (CI=true) a skipped test fails: a missing test dependency (torch for the
    PyTorch comparisons) must not pass for a green run. Only tests marked
    ``needs_hardware`` (something CI machines lack) may skip there."""
    outcome = yield
    report = outcome.get_result()
    if (os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("needs_hardware") is None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI, where every test must run: {reason}; install "
                           "what it needs in .ci/run, or mark it needs_hardware")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    """The same for a whole module skipped while collecting (a module-level importorskip)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid} skipped in CI, where every test must run"


#: Test files whose tests pytest-xdist runs on one worker, one after another, because of
#: what their module-scoped fixtures do: on two workers each would do it twice.
ONE_WORKER = {
    "tests/test_sweep_ray.py",  # starts a Ray head: two at once would crowd 2 cores
    "tests/test_hostile_input.py",  # runs its 19 hostile cases, each a bp process
    "tests/test_onnx_export.py",  # trains every example config
}


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n N`` (README, Development), each test goes to whichever worker is
    free, except that the tests of each file in ``ONE_WORKER`` go to one worker together
    (first: xdist hands out the units of work with the most tests first).
    (pytest-xdist's own ``--dist loadgroup`` would do this by the ``xdist_group`` mark, but
    pytest-xdist 3.8 marks the group in a node id that pytest 9 no longer reads, and the
    groups silently stop.)"""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None  # another --dist asked for: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):  # a scope is a unit of work for one worker
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER else nodeid

    return Scheduling(config, log)


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


def train_iris_model(root: Path) -> Path:
    """Train the small iris config into ``root/runs`` (through the CLI); its model.npz."""
    from bpcli.cli import app

    config = root / "c.yaml"
    config.write_text(yaml.safe_dump(iris_config(output={"runs_dir": str(root / "runs"),
                                                         "name": "m"})))
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    (model,) = (root / "runs").glob("*/model.npz")
    return model


def assert_clean_failure(result: object, code: int = 2) -> str:
    """The output of a command that failed with ``code`` (2: bad input) and no traceback."""
    output = getattr(result, "output", "")
    assert getattr(result, "exit_code", None) == code, output
    assert "Traceback" not in output
    return str(output)
