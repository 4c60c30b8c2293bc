"""The local executor: trials in worker processes on this machine, as many at once as
asked, each with its share of the cores (the BLAS threads of ``workers`` workers never
outnumber the cores, or they would wait on each other at every product).

Workers are spawned (not forked: the sweep's own process may hold threads, and a fork
copies their locks), and live for the whole sweep, taking trials from a queue. They report
each epoch, and at the scheduler's rungs wait for its word. Ctrl-C reaches this process
only; it passes the request on to each worker, whose trial then stops as ``bp train``
does on Ctrl-C, writing a checkpoint to resume from."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bpcli.signals import StopOnSignal
from bpcli.sweep.trial import TrialTask, worker_main

#: what BLAS libraries read when NumPy loads (as bp's --threads sets them)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: after a second Ctrl-C, how long trials get to write their files before being killed
GRACE_S = 30.0

OnEvent = Callable[[str, str, dict[str, Any]], None]
Decide = Callable[[str, int, "float | None"], bool]


@contextmanager
def _threads_for_children(threads: int) -> Iterator[None]:
    """The thread count in the environment the workers start with (and read when they
    load NumPy); this process's own is put back after."""
    saved = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    os.environ.update({v: str(threads) for v in THREAD_VARIABLES})
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def run_local(tasks: list[TrialTask], workers: int, threads: int, on_event: OnEvent,
              decide: Decide, more: Callable[[], list[TrialTask]] | None = None) -> bool:
    """Run ``tasks`` on ``workers`` processes; ``on_event(kind, trial, payload)`` hears
    "started", "epoch" and "done" (payload: the ``TrialOutcome``'s fields). After each
    "done", ``more()`` may hand over more tasks (a search that proposes trials from
    the scores so far). Returns whether the sweep was interrupted (the trials that were
    running then are "interrupted"; those not started yet were never reported)."""
    context = multiprocessing.get_context("spawn")
    task_queue: Any = context.Queue()
    events: Any = context.Queue()
    replies: list[Any] = [context.Queue() for _ in range(workers)]
    for task in tasks:
        task_queue.put(task)
    with _threads_for_children(threads):
        processes = [context.Process(target=worker_main, name=f"bp-sweep-worker-{i}",
                                     args=(i, task_queue, events, replies[i], os.getpid()),
                                     daemon=True) for i in range(workers)]
        for process in processes:
            process.start()
    outstanding = {task.trial_id for task in tasks}
    running: dict[str, int] = {}  # trial -> the worker training it
    interrupted, deadline = False, None
    with StopOnSignal() as stop:
        while outstanding and (not interrupted or running):
            try:
                if stop.requested and not interrupted:
                    interrupted = True
                    _drain(task_queue)  # trials not started stay pending
                    for _ in processes:
                        task_queue.put(None)
                    _signal(processes)
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    kind, index, trial_id, payload = events.get(timeout=0.2)
                except queue.Empty:
                    for trial_id, index in _lost(processes, running):
                        running.pop(trial_id)
                        outstanding.discard(trial_id)
                        on_event("done", trial_id, {
                            "status": "failed", "score": None, "best_epoch": None,
                            "epochs": 0, "seconds": None,
                            "error": f"its worker process died (exit code "
                                     f"{processes[index].exitcode})"})
                    if not any(p.is_alive() for p in processes):
                        break
                    continue
                if kind == "rung":
                    replies[index].put(interrupted or decide(trial_id, payload["epoch"],
                                                             payload["score"]))
                    continue
                if kind == "started":
                    if interrupted:  # took its task as the queue was drained: stop it too
                        _signal([processes[index]])
                    running[trial_id] = index
                elif kind == "done":
                    running.pop(trial_id, None)
                    outstanding.discard(trial_id)
                on_event(kind, trial_id, payload)
                if kind == "done" and more is not None and not interrupted:
                    for task in more():
                        task_queue.put(task)
                        outstanding.add(task.trial_id)
            except KeyboardInterrupt:  # a second Ctrl-C: the trials stop at once
                interrupted = True
                _signal(processes)
                deadline = time.monotonic() + GRACE_S
    for _ in processes:  # each worker ends at one of these
        task_queue.put(None)
    for process in processes:
        process.join(timeout=5.0 if not interrupted else 1.0)
        if process.is_alive():
            process.terminate()
            process.join()
    return interrupted


def _drain(task_queue: Any) -> None:
    while True:
        try:
            task_queue.get_nowait()
        except queue.Empty:
            return


def _signal(processes: list[Any]) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            try:
                os.kill(process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass


def _lost(processes: list[Any], running: dict[str, int]) -> list[tuple[str, int]]:
    """The trials whose worker died without a word (killed, out of memory)."""
    return [(trial, index) for trial, index in running.items()
            if not processes[index].is_alive()]
