"""``bp serve``'s HTTP server: a model behind FastAPI, run by uvicorn.

The only module that imports them (the optional extra ``bp[serve]``); ``bpcli.commands.serve``
imports it lazily, after checking the model file. Predictions go through ``bpcli.api``'s
``Model``, so a request gets what ``bp predict`` and ``bpcli.load(...).predict`` give for
the same rows, and bad rows get the messages bp prints. A worker loads its model once;
with several workers each process builds its app from ``app_from_environment`` (uvicorn
starts workers from an import string, so the model path travels in ``MODEL_VARIABLE``).
"""

from __future__ import annotations

import csv
import errno
import inspect
import io
import json
import math
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from uvicorn.supervisors import Multiprocess

from bpcli import __version__
from bpcli.api import Model
from bpcli.csvfile import sniff_delimiter
from bpcli.errors import BpError, UsageError
from bpcli.inference import use_unseen
from bpcli.modelfile import SavedModel, load_model

#: what ``--workers`` processes read their settings from (they are started afresh)
MODEL_VARIABLE = "BP_SERVE_MODEL"
UNSEEN_VARIABLE = "BP_SERVE_UNSEEN"
MAX_BODY_VARIABLE = "BP_SERVE_MAX_BODY"
DEFAULT_MAX_BODY = 16 << 20  # bytes; a body beyond it gets 413 before it is read whole
FACTORY = "bpcli.serving:app_from_environment"
GRACEFUL_SHUTDOWN_S = 10  # requests still running after a stop signal get this long
# JSON also without a Content-Type, and as the form curl -d sends unless told otherwise
JSON_TYPES = ("application/json", "", "application/x-www-form-urlencoded")
CSV_TYPES = ("text/csv", "application/csv")
BODY_FORMS = ('a JSON array of records ([{"column": value, ...}, ...]), {"rows": [...]}, '
              "or CSV with a header row (Content-Type: text/csv)")


@dataclass(frozen=True)
class Settings:
    """What a worker needs to build its app."""

    model_path: Path
    unseen: str | None = None  # --unseen; None: as the model was trained
    max_body: int = DEFAULT_MAX_BODY

    def to_environment(self) -> dict[str, str]:
        return {MODEL_VARIABLE: str(self.model_path.resolve()), UNSEEN_VARIABLE: self.unseen or "",
                MAX_BODY_VARIABLE: str(self.max_body)}

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(Path(os.environ[MODEL_VARIABLE]), os.environ.get(UNSEEN_VARIABLE) or None,
                   int(os.environ.get(MAX_BODY_VARIABLE, DEFAULT_MAX_BODY)))


def loaded(settings: Settings) -> SavedModel:
    """The model file, read and checked, with the ``--unseen`` policy applied."""
    saved = load_model(settings.model_path)
    use_unseen(saved.preprocessor, settings.unseen)
    return saved


def app_from_environment() -> FastAPI:
    """The app of one ``--workers`` process (uvicorn's factory)."""
    settings = Settings.from_environment()
    return build_app(loaded(settings), settings)


class _Refused(Exception):
    """A request bp will not answer with predictions: the status and the reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def build_app(saved: SavedModel, settings: Settings) -> FastAPI:
    """The FastAPI app serving ``saved``."""
    model = Model(saved)
    description = describe(saved, settings.model_path)
    # the network keeps per-layer caches across a forward pass: one request at a time
    # runs it in each worker (workers give the parallelism)
    lock = threading.Lock()
    app = FastAPI(title=f"bp model {settings.model_path.name}", version=__version__,
                  description=f"Predictions of a bp {model.task} model (predicts "
                  f"{', '.join(model.targets)}) from the columns {', '.join(model.inputs)}. "
                  f"Send rows to POST /predict as {BODY_FORMS}.")

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(BpError)
    async def bad_rows(request: Request, exc: BpError) -> JSONResponse:
        return JSONResponse({"detail": "\n".join(exc.lines())}, status_code=422)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/health", summary="Whether the server is up, with its model loaded")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", summary="The model: inputs, outputs, classes and provenance")
    def model_description() -> dict[str, Any]:
        return description

    def predictions(rows: dict[str, list[Any]]) -> list[dict[str, Any]]:
        with lock:
            if model.classes is None:
                values = np.asarray(model.predict(rows), dtype=np.float64)
                return [{t: _number(v) for t, v in zip(model.targets, row, strict=True)}
                        for row in values.reshape(len(values), -1)]
            probabilities = model.predict_proba(rows)
        # as Model.predict chooses the label, from the same probabilities
        labels = np.argmax(probabilities, axis=1)
        target = model.targets[0]
        return [{target: model.classes[label],
                 "probabilities": dict(zip(model.classes, map(_number, p), strict=True))}
                for label, p in zip(labels, probabilities, strict=True)]

    @app.post("/predict", summary="Predict rows: a label and class probabilities, or values",
              openapi_extra=_predict_openapi(saved),
              responses={400: {"description": "The body is not valid JSON or UTF-8 CSV"},
                         413: {"description": "The body is larger than the server takes"},
                         415: {"description": "Neither JSON nor CSV"},
                         422: {"description": "Rows the model cannot read; the detail says "
                                              "which row and column, and what to do"}})
    async def predict(request: Request) -> dict[str, Any]:
        """One prediction per row, in the rows' order. A classifier answers the label
        (under the target's name) and each class's probability; a regressor the value in
        the target's units. Rows are counted from 1 in error messages."""
        body = await _body(request, settings.max_body)
        rows = _rows(body, request.headers.get("content-type", ""), saved)
        if not rows:
            return {"predictions": []}
        return {"predictions": await run_in_threadpool(predictions, rows)}

    return app


def describe(saved: SavedModel, path: Path) -> dict[str, Any]:
    """``GET /model``: what the model reads and answers, and where it came from."""
    pre, meta = saved.preprocessor, saved.meta
    recorded = meta.get("environment")
    environment: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    classifier = pre.task == "classification"
    return {
        "file": path.name,
        "task": pre.task,
        "inputs": [column.to_json() for column in pre.inputs],
        "targets": list(pre.targets),
        "classes": list(pre.classes) if classifier else None,
        "outputs": ([pre.targets[0], "probabilities"] if classifier else list(pre.targets)),
        "provenance": {
            "bp_version": environment.get("bp"),
            "created": meta.get("created"),
            "epoch": meta.get("epoch"),
            "metrics": meta.get("metrics"),
            "environment": environment,
            "config": meta.get("config"),
            "format_version": meta.get("format_version"),
        },
        "served_by": {"bp_version": __version__},
    }


def _predict_openapi(saved: SavedModel) -> dict[str, Any]:
    """The request body of ``POST /predict`` for the OpenAPI page: both content types,
    with a row of this model's columns as the example."""
    example = {column.name: _example_value(column.kind, column.categories, column.fill)
               for column in saved.preprocessor.inputs}
    records = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {
            "schema": {"oneOf": [records, {"type": "object", "required": ["rows"],
                                           "properties": {"rows": records}}]},
            "example": {"rows": [example]}},
        "text/csv": {"schema": {"type": "string"},
                     "example": ",".join(example) + "\n"
                     + ",".join(str(v) for v in example.values()) + "\n"},
    }}}


def _example_value(kind: str, categories: list[str], fill: Any) -> Any:
    if kind == "categorical":
        return categories[0] if categories else ""
    if kind == "date":
        return "2024-01-31"
    if kind == "boolean":
        return True
    return fill if isinstance(fill, (int, float)) and math.isfinite(fill) else 0.0


def _number(value: Any) -> float | None:
    """A float for JSON, which has no NaN or infinity: those become null."""
    number = float(value)
    return number if math.isfinite(number) else None


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it passes ``limit`` bytes."""
    too_big = _Refused(413, f"the body is larger than this server takes ({limit:,} bytes; "
                       "bp serve --max-body); send the rows in smaller requests")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _rows(body: bytes, content_type: str, saved: SavedModel) -> dict[str, list[Any]]:
    """The body's rows as {column: values}; a body that holds no rows gives {}."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind in CSV_TYPES:
        return _csv_rows(body, saved.preprocessor.delimiter)
    if kind in JSON_TYPES or kind.endswith("+json"):
        return _json_rows(body)
    raise _Refused(415, f"Content-Type {kind!r}: send {BODY_FORMS}")


def _json_rows(body: bytes) -> dict[str, list[Any]]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _Refused(400, f"the body is not valid JSON ({exc}); send {BODY_FORMS}"
                       ) from None
    records = document.get("rows") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise _Refused(422, f"the body must be {BODY_FORMS}")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise _Refused(422, f"row {number}: {json.dumps(record)[:40]} is not an object "
                           'of column: value ({"sepal_length": 5.1, ...})')
    names = list(dict.fromkeys(name for record in records for name in record))
    # a key left out of one record is a missing value there, as an empty CSV cell is
    return {name: [record.get(name) for record in records] for name in names}


def _csv_rows(body: bytes, delimiter: str | None) -> dict[str, list[Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Refused(400, f"the CSV body is not UTF-8 text ({exc})") from None
    if delimiter is None:
        delimiter = sniff_delimiter(text[:65536])
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
                   if r]
    except csv.Error as exc:
        raise _Refused(400, f"the CSV body cannot be read ({exc})") from None
    if not records:
        return {}
    header, data = records[0], records[1:]
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise _Refused(422, f"header: the column {twice[0]!r} appears more than once; name "
                       "each column once")
    for number, record in enumerate(data, start=1):
        if len(record) != len(header):
            raise _Refused(422, f"row {number}: {len(record)} fields where the header has "
                           f"{len(header)}; give every row one field per column")
    if not data:
        return {}
    return {name: [record[j] for record in data] for j, name in enumerate(header)}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket at ``host:port``, bound before the server starts so that an
    address in use is one line of bp's, not a server log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it a response's headers and body wait for the client's delayed ACK (40 ms a request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        what = exc.strerror or str(exc)
        hint = ("stop what listens there, or choose another --port"
                if exc.errno == errno.EADDRINUSE else "check --host and --port")
        raise UsageError(f"--host {host} --port {port}: {what.lower()}; {hint}") from None
    # listening now, not when the server starts: a second bp serve on the same port then
    # fails here, even while this one's workers are still starting
    sock.listen(2048)
    sock.set_inheritable(True)  # the --workers processes serve on it
    return sock


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of ``--workers`` processes, remembering a Ctrl-C."""

    interrupted = False

    def handle_int(self) -> None:
        self.interrupted = True
        super().handle_int()


def run(saved: SavedModel, settings: Settings, sock: socket.socket, workers: int) -> None:
    """Serve until a signal stops the server gracefully (requests in flight finish).
    Returns after SIGTERM (how service managers stop a server); raises KeyboardInterrupt
    after Ctrl-C, which bp reports as interrupted."""
    common: dict[str, Any] = {"timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
                              "log_level": "info"}
    if workers == 1:
        config = uvicorn.Config(build_app(saved, settings), workers=1, **common)
        signals: list[int] = []

        def remember(signum: int, frame: FrameType | None) -> None:
            signals.append(signum)

        # uvicorn takes the signals while it serves and, once stopped, raises each again
        # with the handler it found: this one
        previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT,
                                                                  signal.SIGTERM)}
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        interrupted = signal.SIGINT in signals
    else:
        os.environ.update(settings.to_environment())
        config = uvicorn.Config(FACTORY, factory=True, workers=workers, **common)
        # uvicorn before 0.50 or so took the workers' entry point; later ones build it
        target = ({"target": uvicorn.Server(config).run}
                  if "target" in inspect.signature(Multiprocess).parameters else {})
        supervisor = _Supervisor(config, sockets=[sock], **target)
        supervisor.run()
        interrupted = supervisor.interrupted
    if interrupted:
        raise KeyboardInterrupt

