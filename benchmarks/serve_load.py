"""Load on `bp serve`: requests per second and latency, beside the Python API in a loop.

    pip install '.[serve]'
    python benchmarks/serve_load.py                 # about 2 minutes
    python benchmarks/serve_load.py --duration 3    # shorter cases

Loopback only. The iris and digits-cnn example configs are trained briefly into a temporary
directory; each model is served by `bp serve --workers 2` on a free 127.0.0.1 port, and a
few client threads (http.client, one keep-alive connection each) send POST /predict with
1 or 100 rows (JSON records) for a bounded time per case. The baseline is what the server
wraps: `bpcli.load(model).predict_proba(rows)` called in a bare loop in this process, on
the same rows, so the difference is the server's overhead (HTTP, JSON, the worker hand-off).
Every request's answer is checked against the baseline's labels once, before timing.
"""

from __future__ import annotations

import os

# one BLAS thread, as each bp serve worker has by default (set before NumPy loads)
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# config, the epochs it is trained for here, its data file and target
MODELS = {"iris": ("iris.yaml", 20, "iris.csv", "species"),
          "digits-cnn": ("digits-cnn.yaml", 2, "digits.csv", "digit")}
ROWS_PER_REQUEST = (1, 100)
WORKERS = 2


def train(name: str, where: Path) -> Path:
    config, epochs, _, _ = MODELS[name]
    subprocess.run([sys.executable, "-m", "bpcli", "train", str(REPO / "configs" / config),
                    "--set", f"training.epochs={epochs}",
                    "--set", f"output.runs_dir={where / name}"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    (model,) = (where / name).glob("*/model.npz")
    return model


def records(name: str) -> list[dict[str, Any]]:
    """The data file's rows as JSON records (numbers as numbers), without the target."""
    _, _, data, target = MODELS[name]
    with (REPO / "datasets" / data).open() as f:
        return [{k: float(v) for k, v in row.items() if k != target}
                for row in csv.DictReader(f)]


def batches(rows: list[dict[str, Any]], size: int, count: int = 50) -> list[list[dict[str, Any]]]:
    """``count`` requests of ``size`` consecutive rows, walking through the data."""
    return [[rows[(i * size + j) % len(rows)] for j in range(size)] for i in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(connection: http.client.HTTPConnection, body: bytes) -> dict[str, Any]:
    connection.request("POST", "/predict", body=body,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {data[:200]!r}")
    answer: dict[str, Any] = json.loads(data)
    return answer


@contextmanager
def server(model: Path) -> Iterator[int]:
    """``bp serve model --workers 2`` on a free loopback port, answering /health."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bpcli", "serve", str(model), "--port",
                                str(port), "--workers", str(WORKERS)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError("bp serve exited")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


def summary(latencies: list[float], seconds: float, rows: int) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    return {"requests/s": len(ms) / seconds, "rows/s": len(ms) * rows / seconds,
            "p50 ms": float(np.percentile(ms, 50)), "p99 ms": float(np.percentile(ms, 99))}


def load(port: int, bodies: list[bytes], rows: int, clients: int, duration: float
         ) -> dict[str, float]:
    """``clients`` threads posting ``bodies`` in turn for ``duration`` seconds."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    ready, go = threading.Barrier(clients + 1), threading.Event()
    stop_at = [0.0]

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        post(connection, bodies[0])  # connected and warm before the clock starts
        ready.wait()
        go.wait()
        i = k
        while time.perf_counter() < stop_at[0]:
            began = time.perf_counter()
            try:
                post(connection, bodies[i % len(bodies)])
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                errors.append(str(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latencies[k].append(time.perf_counter() - began)
            i += clients
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    stop_at[0] = began + duration
    go.set()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    result = summary([x for per in latencies for x in per], seconds, rows)
    result["errors"] = len(errors)
    return result


def baseline(call: Callable[[list[dict[str, Any]]], Any], batches_: list[list[dict[str, Any]]],
             rows: int, duration: float) -> dict[str, float]:
    """The Python API on the same rows in a bare loop, for ``duration`` seconds."""
    call(batches_[0])  # warm
    latencies = []
    began = time.perf_counter()
    i = 0
    while time.perf_counter() - began < duration:
        t = time.perf_counter()
        call(batches_[i % len(batches_)])
        latencies.append(time.perf_counter() - t)
        i += 1
    result = summary(latencies, time.perf_counter() - began, rows)
    result["errors"] = 0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per server case")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import bpcli

    columns = ["model", "rows/request", "how", "requests/s", "rows/s", "p50 ms", "p99 ms",
               "errors"]
    lines = []
    with tempfile.TemporaryDirectory(prefix="bp-serve-load-") as tmp:
        for name in MODELS:
            model_path = train(name, Path(tmp))
            model = bpcli.load(model_path)
            rows = records(name)
            with server(model_path) as port:
                for size in ROWS_PER_REQUEST:
                    requests = batches(rows, size)
                    bodies = [json.dumps(r).encode() for r in requests]
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    for request, body in zip(requests[:5], bodies[:5], strict=True):
                        answer = [p[model.targets[0]] for p in post(connection, body)[
                            "predictions"]]
                        if answer != list(model.predict(request)):
                            raise RuntimeError(f"{name}: the server's labels differ")
                    connection.close()
                    cases = {
                        f"bp serve, {WORKERS} workers, {args.clients} clients":
                            load(port, bodies, size, args.clients, args.duration),
                        "API loop (bpcli.load(...).predict_proba)":
                            baseline(model.predict_proba, requests, size,
                                     max(args.duration / 2, 1.0)),
                    }
                    for how, result in cases.items():
                        line = [name, str(size), how, f"{result['requests/s']:.0f}",
                                f"{result['rows/s']:.0f}", f"{result['p50 ms']:.2f}",
                                f"{result['p99 ms']:.2f}", f"{result['errors']:.0f}"]
                        lines.append(line)
                        print(" | ".join(line), file=sys.stderr, flush=True)
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for line in lines:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
