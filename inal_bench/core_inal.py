"""INAL engine benchmarks (``inal-bench core --only inal``), each against a baseline timed in the same run.

- ``inal_exact_n20``: neuron-inputs per second of exact INAL at n = 20 (depth 1, width 128, majority,
  the hardest family for the split engine: its truth table has ~n/2 distinct patterns over the low
  half of the bits) against the straightforward method (``engine="plain"``: one matrix product of the
  inputs with the weights per chunk, ReLU, reduce). Target ratio 10. A second line does the same for
  parity k = 2 (one or two patterns).
- ``inal_junta_vs_mc_k3``: parity k = 3 at n = 20, depth 1, the same inits and the same number of
  network inputs per init for both estimators. The standard error here is the estimator's own noise
  (std of the first-layer estimate over input seeds with the inits held fixed; the spread over inits
  is common to both estimators). ``value`` is the junta-aware precision per second
  ``1 / (SE^2 * time)``, ``baseline`` the same for plain Monte Carlo, so ``ratio`` is how many times
  longer Monte Carlo needs for the same standard error. Target 1000. ``extra`` also has the literal
  ``SE x time`` ratio at equal inputs.

``--quick`` uses n = 16 and smaller samples. Timings on a shared, oversubscribed machine favour
fewer threads for the split engine (many medium-sized ops); ``OMP_NUM_THREADS=1 inal-bench core``
gives a load-robust comparison, and ``extra.torch_threads`` records what was used.
"""

from __future__ import annotations

import statistics
import time
from typing import Iterator

import numpy as np
import torch

from inal_core.inal import estimate_inal
from inal_core.networks import NetworkSpec
from inal_core.targets import make_target

from .common import Measurement


def _timed(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _exact_measurement(name: str, target_name: str, c, n: int, width: int, n_inits: int, device: str) -> Measurement:
    target, spec = make_target(target_name, n, c=c), NetworkSpec(n, width, 1)
    neuron_inputs = n_inits * (width + 1) * 2**n
    estimate_inal(make_target(target_name, 8, c=c), NetworkSpec(8, width, 1), n_inits=1, method="exact", device=device)
    t_fast, fast = _timed(lambda: estimate_inal(target, spec, n_inits=n_inits, method="exact", device=device), 2)
    t_plain, plain = _timed(lambda: estimate_inal(target, spec, n_inits=n_inits, method="exact", device=device, engine="plain"), 1)
    rel_diff = float(np.max(np.abs(fast.per_layer - plain.per_layer) / np.abs(plain.per_layer)))
    value, baseline = neuron_inputs / t_fast, neuron_inputs / t_plain
    return Measurement(
        name=name,
        value=value,
        unit="neuron-inputs/s",
        baseline=baseline,
        ratio=value / baseline,
        target=10.0,
        note=f"exact INAL, {target_name} n={n}, depth 1, width {width}, {n_inits} inits; baseline: plain "
        "matmul+ReLU+reduce over all 2^n inputs; larger is better",
        extra={"n": n, "width": width, "n_inits": n_inits, "t_split_s": t_fast, "t_plain_s": t_plain,
               "inal": fast.value, "max_rel_diff_vs_plain": rel_diff, "device": device,
               "torch_threads": torch.get_num_threads()},
    )


def _noise(target, spec, method: str, n_inits: int, n_inputs: int, reps: int, device: str) -> tuple[float, float, float]:
    """(std over input seeds of the first-layer estimate, median seconds per call, mean estimate)."""
    vals, times = [], []
    for s in range(reps):
        t0 = time.perf_counter()
        res = estimate_inal(target, spec, n_inits=n_inits, method=method, n_inputs=n_inputs, seed=0,
                            input_seed=1000 + s, device=device)
        times.append(time.perf_counter() - t0)
        vals.append(res.per_layer[0])
    return float(np.std(vals, ddof=1)), statistics.median(times), float(np.mean(vals))


def _junta_measurement(n: int, width: int, n_inits: int, n_inputs: int, reps: int, device: str) -> Measurement:
    target, spec = make_target("parity", n, c=3), NetworkSpec(n, width, 1)
    _noise(target, spec, "junta", n_inits, 1024, 2, device)  # warm-up
    se_mc, t_mc, mean_mc = _noise(target, spec, "mc", n_inits, n_inputs, reps, device)
    se_j, t_j, mean_j = _noise(target, spec, "junta", n_inits, n_inputs, reps, device)
    value, baseline = 1.0 / (se_j**2 * t_j), 1.0 / (se_mc**2 * t_mc)
    return Measurement(
        name="inal_junta_vs_mc_k3",
        value=value,
        unit="1/(SE^2 s)",
        baseline=baseline,
        ratio=value / baseline,
        target=1000.0,
        note=f"parity k=3, n={n}, depth 1, width {width}, {n_inits} inits x {n_inputs} inputs; SE = std over "
        f"{reps} input seeds (inits fixed) of the first-layer estimate; ratio = (SE^2 t)_mc / (SE^2 t)_junta; "
        "larger is better",
        extra={"se_mc": se_mc, "se_junta": se_j, "t_mc_s": t_mc, "t_junta_s": t_j, "mean_mc": mean_mc,
               "mean_junta": mean_j, "se_times_time_ratio": (se_mc * t_mc) / (se_j * t_j), "device": device,
               "torch_threads": torch.get_num_threads()},
    )


def run(args) -> Iterator[Measurement]:
    only = getattr(args, "only", None)
    quick = bool(getattr(args, "quick", False))
    device = getattr(args, "device", "cpu")
    n = 16 if quick else 20
    if only is None or only in "inal_exact_n20":
        yield _exact_measurement("inal_exact_n20", "majority", None, n, 64 if quick else 256, 2 if quick else 8, device)
    if only is None or only in "inal_exact_n20_parity2":
        yield _exact_measurement("inal_exact_n20_parity2", "parity", 2, n, 64 if quick else 256, 2 if quick else 8, device)
    if only is None or only in "inal_junta_vs_mc_k3":
        yield _junta_measurement(n, 64, 4, 2**12 if quick else 2**14, 6 if quick else 10, device)
