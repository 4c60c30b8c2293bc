"""How many threads the matrix products get, when ``--threads`` does not say.

BLAS threads wait for each other at the end of every product, spinning. When another
program keeps a core busy, a thread that lost its core holds the others up, every product:
training ran 15-30x slower with the default two threads than with one beside a single busy
process. Threads also cost more than they give on products too small to share. So bp picks
the count itself: one for small products, and never more than the cores that other
processes leave free, measured from /proc/stat while the data loads (work running at a
lower priority, niced, gives way to bp and leaves its core free).

The count is chosen once per run and kept, and a resumed run takes the count it was started
with: OpenBLAS sums some products (784 inputs, for one) in another order on one thread than
on two, so changing the count would change the numbers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: products with fewer multiply-adds than this are not worth a second thread
#: (benchmarks/busy_machine.py measures where a second thread starts to pay)
SMALL_PRODUCT = 2_000_000
#: a core counts as free when others use less than this share of it
FREE_SHARE = 0.75


def usable_cores() -> int:
    """The cores this process may run on (its affinity, under a container's limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class CpuMeter:
    """How many cores other processes kept busy since the last reading: the busy time of
    the CPUs this process may use (/proc/stat) less this process's own CPU time."""

    def __init__(self) -> None:
        self.cores = usable_cores()
        self._mark = self._read()

    @staticmethod
    def _busy_seconds(cpus: set[int]) -> float | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                stat = f.read()
        except OSError:
            return None
        return busy_ticks(stat, cpus, niced=os.nice(0) > 0) / os.sysconf("SC_CLK_TCK")

    def _read(self) -> tuple[float, float, float] | None:
        try:
            cpus = os.sched_getaffinity(0)
        except AttributeError:
            return None
        busy = self._busy_seconds(cpus)
        if busy is None:
            return None
        own = os.times()
        return time.monotonic(), busy, own.user + own.system

    def others(self) -> float | None:
        """Cores used by other processes on average since the last call (or since the
        meter was made); ``None`` where the machine does not say."""
        now = self._read()
        mark, self._mark = self._mark, now
        if now is None or mark is None or now[0] - mark[0] < 0.05:
            return None
        return max(0.0, (now[1] - mark[1]) - (now[2] - mark[2])) / (now[0] - mark[0])


def busy_ticks(stat: str, cpus: set[int], niced: bool) -> int:
    """The busy time of ``cpus`` in ``/proc/stat``'s text, in clock ticks. Work at a lower
    priority than ours (the "nice" column) gives way to us and leaves its core free, so
    it is not counted, unless bp itself runs ``niced``: then its own time is there, and
    must be counted to be taken off again."""
    ticks = 0
    for line in stat.splitlines():
        name, _, values = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        # user nice system idle iowait irq softirq steal ...: busy is all but idle and
        # iowait (and nice, above)
        user, nice, system, _, _, irq, softirq, steal = map(int, values.split()[:8])
        ticks += user + system + irq + softirq + steal + (nice if niced else 0)
    return ticks


def largest_product(layers: list[Any], batch: int) -> int:
    """Multiply-adds of the largest matrix product in a training step of ``batch`` rows:
    a dense layer's ``batch x fan_in x fan_out``; a convolution's per output position."""
    largest = 0
    for layer in layers:
        W = getattr(layer, "params", {}).get("W")
        if W is None:
            continue
        positions = math.prod(layer.output_shape[1:]) if W.ndim == 4 else 1
        largest = max(largest, batch * positions * W.size)
    return largest


def threads_for(free_cores: float, cap: int) -> int:
    """As many threads as free cores, at most ``cap``, at least one."""
    return max(1, min(cap, math.floor(free_cores + 1 - FREE_SHARE)))


def set_threads(count: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count, user_api="blas")


@dataclass
class ThreadChoice:
    """The thread count bp chose, and why."""

    threads: int
    cap: int
    reason: str

    def record(self) -> dict[str, Any]:
        return {"threads": self.threads, "chosen_by": "bp", "reason": self.reason}


def choose_threads(meter: CpuMeter, work: int, apply: Callable[[int], None] = set_threads
                   ) -> ThreadChoice:
    """Set the BLAS threads for products of ``work`` multiply-adds on this machine now."""
    if work < SMALL_PRODUCT or meter.cores == 1:
        cap, reason = 1, ("one core" if meter.cores == 1 else
                          f"small products ({work:,} multiply-adds at most)")
    else:
        cap, reason = meter.cores, f"{meter.cores} cores"
    others = meter.others()
    threads = cap if others is None else threads_for(meter.cores - others, cap)
    if others is not None and threads < cap:
        reason += f"; other programs keep {others:.1f} of them busy"
    apply(threads)
    return ThreadChoice(threads, cap, reason)
