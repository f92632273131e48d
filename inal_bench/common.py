"""Shared pieces of the benchmark suites: the measurement record, timing and machine baselines."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Measurement:
    """One benchmark line. ``ratio`` is ``value / baseline`` oriented so that larger is better
    (the suite states the orientation in ``note``), and ``target`` the ratio the project aims for."""

    name: str
    value: float
    unit: str
    baseline: float
    ratio: float
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        if d["target"] is not None:
            d["meets_target"] = bool(self.ratio >= self.target)
        return json.dumps(d, sort_keys=False)


def emit(m: Measurement, stream=None) -> None:
    print(m.to_json(), file=stream or sys.stdout, flush=True)


def best_time(fn: Callable[[], Any], *, repeats: int = 3, min_time: float = 0.2, sync: Callable[[], None] | None = None) -> float:
    """Best wall time of ``fn()`` in seconds over ``repeats`` trials (each at least ``min_time`` long by looping)."""
    best = float("inf")
    fn()  # warm-up
    if sync:
        sync()
    for _ in range(repeats):
        loops = 0
        t0 = time.perf_counter()
        while True:
            fn()
            loops += 1
            if sync:
                sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        best = min(best, elapsed / loops)
    return best


def matmul_gflops(device: str = "cpu", size: int = 1024, dtype: torch.dtype = torch.float32) -> float:
    """The machine's dense matmul throughput (GFLOP/s) for ``size``-square ``dtype`` matrices on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    t = best_time(lambda: a @ b, sync=sync)
    return 2 * size**3 / t / 1e9
