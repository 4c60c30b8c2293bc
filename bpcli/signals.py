"""Graceful stops. The first Ctrl-C, SIGTERM or SIGHUP (the terminal closed) asks training
to stop at the end of the current batch, after which a checkpoint is written; a second one
acts at once. While a run is being finished (``deferred``) every signal waits until the
writes are done, so that no signal tears the model, checkpoints and summary apart."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopOnSignal:
    """Context manager and ``should_stop`` callable for the trainer."""

    def __init__(self) -> None:
        self.requested = False
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # signals need it
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and not self._deferring:
            raise KeyboardInterrupt  # the second signal: stop now
        self.requested = True

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold every signal until the block ends; ``requested`` then tells whether one came."""
        deferring, self._deferring = self._deferring, True
        try:
            yield
        finally:
            self._deferring = deferring

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
