"""bp serve: the real server in a subprocess on a free loopback port, talked to over HTTP."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import bpcli
from bpcli.cli import THREAD_VARIABLES, app
from tests.conftest import DATASETS, REPO, iris_config

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

MAX_BODY_MB = 0.05  # the module's server takes bodies up to 52,428 bytes
START_TIMEOUT_S = 60  # the machine may be busy; a server usually answers in 2-4 s
HEADER = ["sepal_length", "sepal_width", "petal_length", "petal_width", "garden", "species"]


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, body: bytes | str | None = None,
                content_type: str | None = "application/json") -> tuple[int, Any]:
        """The status and the body (parsed if JSON) of one request."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read().decode()
            if response.getheader("content-type", "").startswith("application/json"):
                return response.status, json.loads(data)
            return response.status, data
        finally:
            connection.close()

    def predict(self, rows: Any) -> tuple[int, Any]:
        return self.request("POST", "/predict", json.dumps(rows))

    def stop(self, sig: int) -> tuple[int, float]:
        """Send ``sig``; the exit code and the seconds the server took to exit."""
        start = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        return code, time.monotonic() - start


def serve_command(model: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "bpcli", "serve", str(model), *options]


def announced_port(log: Path) -> int | None:
    """The port in bp serve's "serving ... at http://127.0.0.1:PORT ..." line, once written."""
    found = re.search(r" at http://127\.0\.0\.1:(\d+) ", log.read_text())
    return int(found[1]) if found else None


@contextmanager
def serving(model: Path, log: Path, *options: str) -> Iterator[Server]:
    """``bp serve model --port 0`` until the block ends; answering /health. The server
    binds a free port itself and says which: a port picked here and handed over could be
    taken by another test (pytest-xdist runs two at once) before the server binds it."""
    with log.open("wb") as err:
        process = subprocess.Popen(serve_command(model, "--port", "0", *options),
                                   stdout=subprocess.DEVNULL, stderr=err, cwd=REPO,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (port := announced_port(log)) is None:
            assert process.poll() is None, f"bp serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"no address announced: {log.read_text()}"
            time.sleep(0.05)
        server = Server(port, process, log)
        while True:
            assert process.poll() is None, f"bp serve exited: {log.read_text()}"
            try:
                if server.request("GET", "/health") == (200, {"status": "ok"}):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer: {log.read_text()}"
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def garden_rows() -> list[dict[str, str]]:
    """The iris rows with a categorical column, 'garden' (a, b or c)."""
    with (DATASETS / "iris.csv").open() as f:
        rows = list(csv.DictReader(f))
    return [{**row, "garden": "abc"[i % 3]} for i, row in enumerate(rows)]


def as_csv(rows: list[dict[str, Any]], columns: list[str], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, delimiter=delimiter, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def features(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """JSON records: numbers as numbers, without the target."""
    return [{k: v if k == "garden" else float(v) for k, v in row.items() if k != "species"}
            for row in rows]


def train(root: Path, config: dict[str, Any]) -> Path:
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    (model,) = (root / "runs").glob("*/model.npz")
    return model


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An iris model with a categorical input (trained once), and its data file."""
    root = tmp_path_factory.mktemp("garden")
    data = root / "garden.csv"
    data.write_text(as_csv(garden_rows(), HEADER))
    model = train(root, iris_config(data={"path": str(data), "target": "species"},
                                    output={"runs_dir": str(root / "runs"), "name": "g"}))
    return model, data


@pytest.fixture(scope="module")
def server(garden: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with serving(garden[0], log, "--unseen", "error", "--max-body", str(MAX_BODY_MB)) as s:
        yield s


@pytest.fixture
def thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """bp serve in this process sets the BLAS thread variables unless one is set: set
    them here, so that the test leaves the environment as it found it."""
    for variable in THREAD_VARIABLES:
        monkeypatch.setenv(variable, os.environ.get(variable, "1"))


# -- predictions -------------------------------------------------------------------------


def bp_predict(model: Path, data: Path) -> list[dict[str, str]]:
    result = CliRunner().invoke(app, ["predict", str(model), str(data)])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_predictions_are_bp_predicts_in_the_rows_order(server: Server,
                                                       garden: tuple[Path, Path]) -> None:
    model_path, data = garden
    expected = bp_predict(model_path, data)
    model = bpcli.load(model_path)
    records = features(garden_rows())
    status, body = server.predict(records)
    assert status == 200, body
    answered = body["predictions"]
    assert [p["species"] for p in answered] == [row["species"] for row in expected]
    assert [p["species"] for p in answered] == list(model.predict(records))
    assert len({p["species"] for p in answered}) == 3  # not one class for every row
    probabilities = np.array([[p["probabilities"][c] for c in model.classes or []]
                              for p in answered])
    np.testing.assert_array_equal(probabilities, model.predict_proba(records))
    for c, label in enumerate(model.classes or []):
        np.testing.assert_allclose(probabilities[:, c],
                                   [float(row[f"prob_{label}"]) for row in expected],
                                   atol=1e-6)
    # the same rows under "rows", and in reverse order: answers in the order asked
    status, reversed_body = server.predict({"rows": records[::-1]})
    assert status == 200 and reversed_body["predictions"] == answered[::-1]


def test_a_csv_body_is_read_as_bp_predict_reads_a_file(server: Server,
                                                       garden: tuple[Path, Path]) -> None:
    rows = garden_rows()[40:60]
    status, from_json = server.predict(features(rows))
    assert status == 200
    for delimiter in (",", ";"):  # detected, as in a file
        status, from_csv = server.request("POST", "/predict",
                                          as_csv(rows, HEADER, delimiter),
                                          "text/csv; charset=utf-8")
        assert (status, from_csv) == (200, from_json)
    assert server.request("POST", "/predict", "sepal_length\n", "text/csv") == (
        200, {"predictions": []})


def test_a_regressor_answers_in_the_targets_units_and_ctrl_c_stops_it(
        tmp_path: Path) -> None:
    model_path = train(tmp_path, iris_config(
        data={"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
        model={"layers": [{"type": "dense", "units": 8}, {"type": "dense"}]},
        output={"runs_dir": str(tmp_path / "runs"), "name": "d"}))
    with (DATASETS / "diabetes.csv").open() as f:
        records = [{k: float(v) for k, v in row.items() if k != "progression"}
                   for row in csv.DictReader(f)][:50]
    with serving(model_path, tmp_path / "serve.log") as server:
        status, body = server.predict(records)
        assert status == 200, body
        values = [p["progression"] for p in body["predictions"]]
        np.testing.assert_array_equal(values, bpcli.load(model_path).predict(records))
        assert np.std(values) > 1  # in the target's units, not standardised
        assert server.request("GET", "/model")[1]["classes"] is None
        code, seconds = server.stop(signal.SIGINT)
    log = server.log.read_text()
    assert code == 130 and log.rstrip().endswith("bp: interrupted"), log
    assert seconds < 10 and "Traceback" not in log


# -- refusals --------------------------------------------------------------------------------

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2,
       "garden": "b"}


@pytest.mark.parametrize(("rows", "message"), [
    ([{k: v for k, v in ROW.items() if k != "sepal_width"}],
     "rows: missing column 'sepal_width'"),
    ([ROW, {**ROW, "sepal_width": "wide"}],
     "row 2: column 'sepal_width': 'wide' is not a number"),
    ([ROW, ROW, {**ROW, "garden": "kew"}],
     "row 3: column 'garden': category 'kew' was not in the training data"),
    ([ROW, {**ROW, "petal_width": None}], "row 2: column 'petal_width': missing value"),
])
def test_rows_the_model_cannot_read_get_422_with_bps_message(
        server: Server, rows: list[dict[str, Any]], message: str) -> None:
    status, body = server.predict(rows)
    assert status == 422, body
    assert body["detail"].startswith(message), body
    assert "Traceback" not in body["detail"] and "rows.csv" not in body["detail"]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    ('[{"sepal_length": 5.1,', "application/json", 400, "the body is not valid JSON"),
    (b"\xff\xfe[]", "application/json", 400, "the body is not valid JSON"),
    ("[" * 20_000 + "]" * 20_000, "application/json", 400, "the body is not valid JSON"),
    ('{"records": []}', "application/json", 422, "the body must be a JSON array"),
    ("[1, 2]", "application/json", 422, "row 1: 1 is not an object"),
    ("a,b\n1,2,3\n", "text/csv", 422, "row 1: 3 fields where the header has 2"),
    ("a,a\n1,2\n", "text/csv", 422, "header: the column 'a' appears more than once"),
    (b"a\n\xff\n", "text/csv", 400, "the CSV body is not UTF-8 text"),
    ("<rows/>", "application/xml", 415, "Content-Type 'application/xml'"),
])
def test_malformed_bodies_are_refused_without_a_traceback(
        server: Server, body: str | bytes, content_type: str, status: int,
        message: str) -> None:
    answer = server.request("POST", "/predict", body, content_type)
    assert answer[0] == status, answer
    assert answer[1]["detail"].startswith(message), answer
    assert "Traceback" not in answer[1]["detail"]
    assert server.request("GET", "/health")[0] == 200


def test_odd_cells_are_answered_or_refused_never_a_server_error(server: Server) -> None:
    cells = ["1e400", "-1e400", "true", '{"a": 1}', "[1, 2]", '"line\\nbreak"', '""',
             "null", '"\\u0000"', '"\\"quoted\\", comma"']
    for column in ("sepal_width", "garden", "", "a,b", 'q"q'):
        for cell in cells:
            record = json.dumps({k: v for k, v in ROW.items() if k != column})[:-1]
            body = f'[{record}, {json.dumps(column)}: {cell}}}]'
            status, answer = server.request("POST", "/predict", body)
            assert status in (200, 422), (body, answer)
            assert "Traceback" not in json.dumps(answer)


def raw_request(port: int, head: str, body_parts: list[bytes]) -> str:
    """Send a request byte for byte; the response's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            sock.sendall(part)
        return sock.makefile("rb").readline().decode()


def test_a_body_too_large_gets_413(server: Server) -> None:
    limit = int(MAX_BODY_MB * (1 << 20))
    head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    # refused on its declared length, before the body is sent
    assert raw_request(server.port, head + f"Content-Length: {limit + 1}\r\n\r\n",
                       []).startswith("HTTP/1.1 413")
    # and, sent in chunks without a length, as soon as it passes the limit
    chunk = b" " * 10_000
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (limit // len(chunk) + 1)
    assert raw_request(server.port, head + "Transfer-Encoding: chunked\r\n\r\n",
                       chunks).startswith("HTTP/1.1 413")
    # a body within the limit is read
    status, body = server.request("POST", "/predict", json.dumps([ROW]) + " " * 40_000)
    assert status == 200, body


def test_answers_do_not_wait_for_delayed_acks(server: Server) -> None:
    """Without TCP_NODELAY a response's second segment waits for the client's delayed ACK:
    40 ms or more a request on a keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    times = []
    for _ in range(21):
        start = time.perf_counter()
        connection.request("GET", "/health")
        connection.getresponse().read()
        times.append(time.perf_counter() - start)
    connection.close()
    assert sorted(times)[10] < 0.02, times


# -- the model and the API -------------------------------------------------------------------


def test_model_describes_inputs_outputs_and_provenance(server: Server,
                                                       garden: tuple[Path, Path]) -> None:
    status, body = server.request("GET", "/model")
    assert status == 200
    assert body["task"] == "classification" and body["targets"] == ["species"]
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["outputs"] == ["species", "probabilities"]
    inputs = {column["name"]: column for column in body["inputs"]}
    assert list(inputs) == HEADER[:-1]
    assert inputs["garden"]["kind"] == "categorical"
    assert inputs["garden"]["categories"] == ["a", "b", "c"]
    assert inputs["garden"]["unseen"] == "error"  # as --unseen says
    assert inputs["sepal_length"]["kind"] == "numeric"
    provenance = body["provenance"]
    assert provenance["bp_version"] == bpcli.__version__
    assert provenance["created"][:4].isdigit() and provenance["epoch"] >= 1
    assert provenance["config"]["data"]["path"] == str(garden[1])
    assert "val_accuracy" in json.dumps(provenance["metrics"])


def test_the_openapi_page_describes_both_bodies(server: Server) -> None:
    status, spec = server.request("GET", "/openapi.json")
    assert status == 200
    assert {"/predict", "/model", "/health"} <= set(spec["paths"])
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    assert set(content["application/json"]["example"]["rows"][0]) == set(HEADER[:-1])
    status, page = server.request("GET", "/docs")
    assert status == 200 and "swagger" in page.lower()


# -- starting and stopping -------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "sig", "code"), [
    (2, signal.SIGTERM, 0), (2, signal.SIGINT, 130), (1, signal.SIGTERM, 0)])
def test_sigterm_stops_cleanly_and_ctrl_c_is_interrupted(
        garden: tuple[Path, Path], tmp_path: Path, workers: int, sig: int, code: int) -> None:
    """SIGTERM is how service managers stop a server: exit 0. Ctrl-C is bp's 130."""
    with serving(garden[0], tmp_path / "serve.log", "--workers", str(workers)) as server:
        answers = [server.predict([ROW]) for _ in range(4)]
        assert answers[0][0] == 200 and all(a == answers[0] for a in answers)
        exit_code, seconds = server.stop(sig)
    log = server.log.read_text()
    assert exit_code == code and seconds < 15, log
    assert log.count("Finished server process") == workers and "Traceback" not in log
    assert log.rstrip().endswith("bp: interrupted") == (code == 130)


def test_a_second_server_cannot_take_the_port_while_the_first_starts() -> None:
    from bpcli import serving
    from bpcli.errors import UsageError

    with serving.bind("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        with pytest.raises(UsageError, match="address already in use"):
            serving.bind("127.0.0.1", port)


def test_a_bad_model_path_is_one_line_before_any_server(runner: CliRunner, tmp_path: Path,
                                                        thread_variables: None) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path / "nope.npz"), "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr == f"bp: {tmp_path / 'nope.npz'}: model file not found\n"


def test_a_port_in_use_is_one_line(runner: CliRunner, garden: tuple[Path, Path],
                                   thread_variables: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(garden[0]), "--port", str(port)])
    assert result.exit_code == 2
    assert result.stderr == (f"bp: --host 127.0.0.1 --port {port}: address already in use; "
                             "stop what listens there, or choose another --port\n")


def test_without_the_extra_bp_says_what_to_install(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        thread_variables: None) -> None:
    monkeypatch.delitem(sys.modules, "bpcli.serving", raising=False)
    monkeypatch.delattr(bpcli, "serving", raising=False)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    # checked first; with no model file, a server never starts in this process
    result = runner.invoke(app, ["serve", str(tmp_path / "model.npz")])
    assert result.exit_code == 2
    assert result.stderr == ("bp: bp serve needs FastAPI and uvicorn (fastapi is not "
                             "installed): pip install 'bp[serve]' (from a clone: pip "
                             "install '.[serve]')\n")
