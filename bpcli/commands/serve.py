"""``bp serve``: a model's predictions over HTTP (the optional extra ``bp[serve]``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bpcli.errors import UsageError

INSTALL_HINT = "pip install 'bp[serve]'"
#: what the extra brings; a missing one of these means the extra is not installed
SERVE_PACKAGES = ("fastapi", "uvicorn", "starlette")


class ServeUnavailable(UsageError):
    """FastAPI or uvicorn is not installed, so no server can run."""

    def __init__(self, missing: str) -> None:
        super().__init__(f"bp serve needs FastAPI and uvicorn ({missing} is not installed): "
                         f"{INSTALL_HINT} (from a clone: pip install '.[serve]')")


def serve(model_path: Path, host: str, port: int, workers: int = 1,
          unseen: str | None = None, max_body_mb: float = 16,
          announce: Callable[[str], None] = print) -> None:
    """Serve ``model_path`` at ``host:port`` until stopped; ``announce`` is told the
    address once the socket listens. The model file, the extra and the address are
    checked before the server starts, so that each fails as one line of bp's."""
    try:
        from bpcli import serving
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in SERVE_PACKAGES:
            raise ServeUnavailable(exc.name or "") from None
        raise
    settings = serving.Settings(model_path, unseen, int(max_body_mb * (1 << 20)))
    saved = serving.loaded(settings)
    sock = serving.bind(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    url = f"http://{shown}:{address[1]}"
    what = (f"classes {', '.join(saved.preprocessor.classes)}"
            if saved.preprocessor.task == "classification"
            else f"predicts {', '.join(saved.preprocessor.targets)}")
    announce(f"serving {model_path} ({what}) at {url} with {workers} worker"
             f"{'s' if workers > 1 else ''}: POST {url}/predict, API docs at {url}/docs; "
             "Ctrl-C or SIGTERM stops it")
    with sock:
        serving.run(saved, settings, sock, workers)
