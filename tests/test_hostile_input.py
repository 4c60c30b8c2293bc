"""Hostile and mistaken inputs, through the real command line (``python -m bpcli`` in a
subprocess, with a time limit): YAML bombs and deep nesting, numbers far out of range,
device files and FIFOs where files are expected, corrupt and hostile model files, and
outputs that would destroy something. Each must end in one ``bp:`` line and exit 2,
quickly, without a traceback; a few valid inputs must still pass (so that refusing
everything would fail here too).

The cases run concurrently in one fixture (each a process of its own), which keeps the
suite to a few seconds.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.errors import ConfigError, ModelFileError
from tests.conftest import CONFIGS, DATASETS, REPO, iris_config

# seconds per case. Each takes about one alone; four run at once here, beside another
# pytest-xdist worker and whatever else keeps the machine busy, and a case cut off there
# would pass for a hang. A real hang (the regression these catch) still fails, later.
TIME_LIMIT = 60.0
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


@dataclass
class Outcome:
    code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float


def bp(*args: str, cwd: Path) -> Outcome:
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run([sys.executable, "-m", "bpcli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIME_LIMIT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""), TIME_LIMIT)
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


# -- the inputs ------------------------------------------------------------------------
def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def with_meta(model: Path, out: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of ``model`` whose metadata is ``change(meta)`` (a dict, or raw text)."""
    with np.load(model) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = change(json.loads(str(arrays["meta"])))
    arrays["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    with out.open("wb") as f:
        np.savez(f, **arrays)
    return out


def first_units(units: Any) -> Callable[[dict[str, Any]], Any]:
    def change(meta: dict[str, Any]) -> dict[str, Any]:
        meta["layers"][0]["units"] = units
        return meta
    return change


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a trained iris model, inputs, and the hostile files."""
    root = tmp_path_factory.mktemp("hostile")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        config = root / "iris.yaml"
        config.write_text(yaml.safe_dump(iris_config(training={"epochs": 1, "seed": 0})))
        result = CliRunner().invoke(app, ["train", str(config)])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    (run,) = root.glob("runs/*")
    model = run.rename(root / "runs" / "t") / "model.npz"
    (root / "M.npz").write_bytes(model.read_bytes())
    (root / "victim.npz").write_bytes(model.read_bytes())
    lines = (DATASETS / "iris.csv").read_text().splitlines()
    (root / "in.csv").write_text("\n".join(lines[:6]) + "\n")
    (root / "victim.csv").write_text("\n".join(lines[:6]) + "\n")
    (root / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (root / "self_alias.yaml").write_text("a: &a [*a]\n")
    (root / "laughs.yaml").write_text(billion_laughs())
    (root / "keys.yaml").write_text(config.read_text()
                                    + "".join(f"k{i}: 1\n" for i in range(20_000)))
    (root / "features.yaml").write_text(yaml.safe_dump(iris_config(data={
        "path": str(DATASETS / "iris.csv"), "target": "species",
        "features": [f"f{i}" for i in range(20_000)]}), default_flow_style=True))
    (root / "huge.yaml").write_text("# padding\n" * 40_000)
    for name, path in (("zero_data", "/dev/zero"), ("fifo_data", str(root / "fifo"))):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(iris_config(
            data={"path": path, "target": "species"})))
    cnn = (CONFIGS / "digits-cnn.yaml").read_text().replace("../datasets", str(DATASETS))
    (root / "cnn.yaml").write_text(cnn)
    (root / "cnn_wide.yaml").write_text(cnn.replace("filters: 16", "filters: 65536")
                                        .replace("filters: 32", "filters: 65536"))
    (root / "cnn_huge.yaml").write_text(cnn.replace("filters: 16", "filters: 1000000000"))
    (root / "cnn_kernel.yaml").write_text(cnn.replace("kernel_size: 3", "kernel_size: 99999999"))
    (root / "dense_wide.yaml").write_text(yaml.safe_dump(iris_config(model={"layers": [
        {"type": "dense", "units": 1_000_000}, {"type": "dense", "units": 1_000_000},
        {"type": "dense"}]})))
    with_meta(model, root / "deep_meta.npz", lambda m: '{"a": ' + "[" * 100_000
              + "]" * 100_000 + "}")
    with_meta(model, root / "units_1e12.npz", first_units(10**12))
    with_meta(model, root / "units_float.npz", first_units(1e12))
    with_meta(model, root / "units_text.npz", first_units("many"))
    with_meta(model, root / "big_meta.npz", lambda m: {**m, "x": "y" * (17 << 20)})
    (root / "random.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "truncated.npz").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    (root / "adir").mkdir()
    # Written through a link: were bp to rename its output over the device (a regression,
    # run as root), the link would be replaced, not the machine's /dev/null.
    (root / "null").symlink_to("/dev/null")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo")
        os.mkfifo(root / "fifo.png")
        (root / "fifo_run").mkdir()
        os.mkfifo(root / "fifo_run" / "metrics.csv")
    return root


# name: command line. Each must fail with exactly one bp: line. These run in processes of
# their own: a regression would block, never end, recurse in C or exhaust memory.
ISOLATED: dict[str, list[str]] = {
    "10^9 units": ["validate", "iris.yaml", "--set", "model.layers.0.units=1000000000"],
    "two layers of 10^6 units": ["validate", "dense_wide.yaml"],
    "65536 filters twice": ["validate", "cnn_wide.yaml"],
    "100k-deep YAML": ["validate", "deep.yaml"],
    "billion laughs": ["validate", "laughs.yaml"],
    "config /dev/zero": ["validate", "/dev/zero"],
    "config FIFO": ["validate", "fifo"],
    "data /dev/zero": ["validate", "zero_data.yaml"],
    "data FIFO": ["validate", "fifo_data.yaml"],
    "predict input /dev/zero": ["predict", "M.npz", "/dev/zero"],
    "evaluate input FIFO": ["evaluate", "M.npz", "fifo"],
    "model FIFO": ["predict", "fifo", "in.csv"],
    "model /dev/zero": ["inspect", "/dev/zero"],
    "init-from FIFO": ["train", "iris.yaml", "--init-from", "fifo"],
    "meta 100k deep": ["predict", "deep_meta.npz", "in.csv"],
    "meta units 10^12": ["predict", "units_1e12.npz", "in.csv"],
    "plot a FIFO metrics.csv": ["plot", "fifo_run", "--out", "c.png"],
}
# The same for inputs whose regressions fail fast (a Python RecursionError, a file
# replaced in the test's directory): run in this process, for speed.
IN_PROCESS: dict[str, list[str]] = {
    "negative split seed": ["validate", "iris.yaml", "--set", "data.split_seed=-1"],
    "negative training seed": ["validate", "iris.yaml", "--set", "training.seed=-1"],
    "seed past 2^32": ["validate", "iris.yaml", "--set", "training.seed=4294967296"],
    "infinite l2": ["validate", "iris.yaml", "--set", "regularization.l2=.inf"],
    "nan learning rate": ["validate", "iris.yaml", "--set", "optimizer.learning_rate=.nan"],
    "10^9 filters": ["validate", "cnn_huge.yaml"],
    "10^21 epochs": ["validate", "iris.yaml", "--set", "training.epochs=1000000000000000000000"],
    "self-referencing alias": ["validate", "self_alias.yaml"],
    "deep --set value": ["validate", "iris.yaml", "--set", "training.seed=" + "[" * 5000],
    "config over 256 KiB": ["validate", "huge.yaml"],
    "config directory": ["validate", "adir"],
    "random bytes as a model": ["predict", "random.npz", "in.csv"],
    "truncated model": ["inspect", "truncated.npz"],
    "meta units 1e12 (float)": ["inspect", "units_float.npz"],
    "meta units text": ["evaluate", "units_text.npz", "in.csv"],
    "meta over 16 Mi characters": ["inspect", "big_meta.npz"],
    "--out the model": ["predict", "victim.npz", "in.csv", "--out", "victim.npz"],
    "--out the input": ["predict", "M.npz", "victim.csv", "--out", "victim.csv"],
    "--out a directory": ["predict", "M.npz", "in.csv", "--out", "adir"],
    "--out /dev/null": ["predict", "M.npz", "in.csv", "--out", "null"],
    "--out a FIFO": ["predict", "M.npz", "in.csv", "--out", "fifo"],
    "schema --out /dev/null": ["schema", "--out", "null"],
    "plot --out a FIFO": ["plot", "runs/t", "--out", "fifo.png"],
}
FIFO_CASES = {name for name, args in {**ISOLATED, **IN_PROCESS}.items()
              if any(a in ("fifo", "fifo.png", "fifo_data.yaml", "fifo_run") for a in args)}

# name: command line; each must succeed
ACCEPTED: dict[str, list[str]] = {
    "predict to stdout": ["predict", "M.npz", "in.csv", "--out", "-"],
    "predict to a new file": ["predict", "M.npz", "in.csv", "--out", "new.csv"],
}
ACCEPTED_IN_PROCESS: dict[str, list[str]] = {
    "valid config": ["validate", "iris.yaml", "--set", "training.seed=4294967295"],
    "valid conv config": ["validate", "cnn.yaml"],
    "schema to a file": ["schema", "--out", "schema.json"],
}


@pytest.fixture(scope="module")
def outcomes(work: Path) -> dict[str, Outcome]:
    cases = {**ISOLATED, **ACCEPTED}
    if not hasattr(os, "mkfifo"):
        cases = {k: v for k, v in cases.items() if k not in FIFO_CASES}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(bp, *args, cwd=work) for name, args in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def invoke(work: Path, args: list[str]) -> Outcome:
    """``bp args`` in this process, from ``work``."""
    cwd = Path.cwd()
    os.chdir(work)
    start = time.monotonic()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr, time.monotonic() - start)


def one_line(outcome: Outcome) -> None:
    """Exit 2 with exactly one bp: line and no traceback."""
    assert outcome.code is not None, f"still running after {TIME_LIMIT}s"
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.code == 2, outcome.stderr
    lines = [line for line in outcome.stderr.splitlines() if line.startswith("bp:")]
    assert len(lines) == 1, outcome.stderr


@pytest.mark.parametrize("case", sorted(ISOLATED))
def test_refused_in_one_line(outcomes: dict[str, Outcome], case: str) -> None:
    if case not in outcomes:
        pytest.skip("no FIFOs here")
    one_line(outcomes[case])


@pytest.mark.parametrize("case", sorted(IN_PROCESS))
def test_refused_in_one_line_in_process(work: Path, case: str) -> None:
    if case in FIFO_CASES and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    one_line(invoke(work, IN_PROCESS[case]))


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_valid_inputs_still_pass(outcomes: dict[str, Outcome], case: str) -> None:
    outcome = outcomes[case]
    assert outcome.code == 0, outcome.stderr


@pytest.mark.parametrize("case", sorted(ACCEPTED_IN_PROCESS))
def test_valid_inputs_still_pass_in_process(work: Path, case: str) -> None:
    outcome = invoke(work, ACCEPTED_IN_PROCESS[case])
    assert outcome.code == 0, outcome.stderr


def test_a_negative_gradcheck_seed_is_a_usage_error(work: Path) -> None:
    outcome = invoke(work, ["gradcheck", "iris.yaml", "--seed", "-1"])
    assert outcome.code == 2 and "Traceback" not in outcome.stderr, outcome.stderr


def test_a_window_too_large_is_refused(work: Path) -> None:
    outcome = invoke(work, ["validate", "cnn_kernel.yaml"])
    assert outcome.code == 2 and "Traceback" not in outcome.stderr, outcome.stderr
    assert "model.layers[0].kernel_size" in outcome.stderr
    assert "each at most 1024 (got 99999999)" in outcome.stderr


def test_the_refusals_say_what_and_where(outcomes: dict[str, Outcome]) -> None:
    said = {name: outcome.stderr for name, outcome in outcomes.items()}
    assert "model.layers[1]: the network needs about" in said["two layers of 10^6 units"]
    assert "more than 200000 values" in said["billion laughs"]
    assert "/dev/zero: is a character device, not a regular file" in said["data /dev/zero"]
    assert "nested more than 64 levels deep" in said["meta 100k deep"]
    assert "layer 0 (dense): the network needs about" in said["meta units 10^12"]
    if "config FIFO" in said:
        assert "fifo: is a named pipe (FIFO)" in said["config FIFO"]


def test_the_in_process_refusals_say_what_and_where(work: Path) -> None:
    def said(case: str) -> str:
        return invoke(work, IN_PROCESS[case]).stderr

    assert "training.seed: Input should be greater than or equal to 0" in said(
        "negative training seed")
    assert "regularization.l2: Input should be a finite number" in said("infinite l2")
    assert "the alias *a is inside the node &a names" in said("self-referencing alias")
    assert "is the input file victim.npz" in said("--out the model")
    assert "--out null: is a character device" in said("--out /dev/null")
    assert "huge.yaml: the config file is 390.6 KiB, more than bp reads (256.0 KiB)" in said(
        "config over 256 KiB")


def test_nothing_was_overwritten(work: Path, outcomes: dict[str, Outcome]) -> None:
    for case in ("--out the model", "--out the input", "--out /dev/null", "--out a FIFO"):
        invoke(work, IN_PROCESS[case])
    assert (work / "victim.npz").read_bytes() == (work / "M.npz").read_bytes()
    assert (work / "victim.csv").read_text() == (work / "in.csv").read_text()
    assert stat.S_ISCHR(os.stat(work / "null").st_mode)
    if hasattr(os, "mkfifo"):
        assert stat.S_ISFIFO(os.stat(work / "fifo").st_mode)
    assert outcomes["predict to stdout"].stdout.startswith("species,")
    assert (work / "new.csv").read_text().startswith("species,")


def test_many_unknown_keys_are_counted_not_all_listed(work: Path) -> None:
    outcome = invoke(work, ["validate", "keys.yaml"])
    assert outcome.code == 2, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert len(lines) == 21 and all(line.startswith("bp: ") for line in lines)
    assert "unknown key 'k0'" in lines[0]
    assert lines[-1].startswith("bp: 20000 problems in keys.yaml (the first 20 shown)")
    assert outcome.seconds < 10


def test_many_missing_columns_are_counted_not_all_listed(work: Path) -> None:
    outcome = invoke(work, ["validate", "features.yaml"])
    lines = outcome.stderr.splitlines()
    assert outcome.code == 2 and len(lines) == 21, outcome.stderr[:1000]
    assert "data.features[0]: no column 'f0' in iris.csv" in lines[0]
    assert lines[-1].startswith("bp: 20000 problems in features.yaml (the first 20 shown)")
    assert outcome.seconds < 10


# -- in-process checks of the limits themselves ------------------------------------------
def test_an_archive_too_big_for_memory_is_refused_before_reading(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bpcli import memory, modelfile

    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(ModelFileError, match="its arrays hold .* more than the memory "
                                             "available"):
        modelfile.load_model(work / "M.npz")
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # then only 1 TiB is refused
    assert modelfile.load_model(work / "M.npz").network.n_params > 0


def test_a_zip_bomb_member_counts_at_its_unpacked_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bpcli import memory, modelfile

    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("param/0.W.npy", b"\0" * (8 << 20))  # 8 MiB, packed to a few KiB
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(memory, "available_memory", lambda: 4 << 20)
    with pytest.raises(ModelFileError, match="8.0 MiB, more than the memory available"):
        modelfile.load_model(bomb)


def test_a_network_too_big_for_memory_is_refused_at_its_biggest_layer(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bpcli import memory

    # 4 -> 64 -> 3 units: the first layer has 320 parameters, the second 195; with
    # gradients and optimizer state and batches of 16 the first needs most
    config = ["validate", "iris.yaml", "--set", "model.layers.0.units=64"]
    assert invoke(work, config).code == 0
    monkeypatch.setattr(memory, "available_memory", lambda: 20_000)
    outcome = invoke(work, config)
    assert outcome.code == 2
    assert "model.layers[0]: the network needs about" in outcome.stderr
    assert "more than the 19.5 KiB of memory available" in outcome.stderr


def test_available_memory_reads_meminfo_and_falls_back(tmp_path: Path) -> None:
    from bpcli.memory import available_memory, too_big

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683772 kB\nMemAvailable:    2000 kB\n")
    assert available_memory(meminfo) == 2000 * 1024
    fallback = available_memory(tmp_path / "missing")
    assert fallback is None or fallback > 0
    assert too_big([100, 300, 200], available=1000) is None
    index, message = too_big([100, 700, 300], available=1000) or (None, "")
    assert index == 1 and "1.1 KiB" in message and "700 bytes" in message


def test_config_limits_are_reported_at_their_place(write_config: Callable[..., Path]) -> None:
    from bpcli.config import MAX_YAML_DEPTH, load_config

    nested = "data: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n"
    with pytest.raises(ConfigError, match=f"c.yaml:1:{MAX_YAML_DEPTH + 6}: nested more than"):
        load_config(write_config(nested, "c.yaml"))
    # within the limits, aliases work as YAML says
    config = iris_config()
    config["model"] = "MODEL"
    text = yaml.safe_dump(config).replace("MODEL", """
  layers:
    - &hidden {type: dense, units: 8, activation: tanh}
    - *hidden
    - {type: dense, activation: softmax}""")
    layers = load_config(write_config(text, "c.yaml")).config.model.layers
    assert [getattr(layer, "units", None) for layer in layers] == [8, 8, None]
