"""Calibration of the analysis' intervals, measured by simulation: one JSON object per figure.

- ``interval_coverage_hard``: coverage of the reported INAL interval (``analysis.inal_intervals``)
  on degree-3 and degree-4 parities at n = 8 (width 32, depth 1 and 2, 32 and 256 initializations),
  every layer and the selection-free value, against the exact mean over a disjoint set of
  initializations; the line gives the worst cell, ``upper_miss`` (truth above the upper limit) and
  the whole table.
- ``aft_coverage``: coverage of the time-to-learn exponent interval (``analysis.aft``, log-normal AFT
  on log n) on simulated censored times with a known exponent, censored at a fixed step.

Each function returns the dict that is printed; ``replicates`` says how many blocks / data sets it
rests on. ``smoke=True`` is the size CI runs (seconds); the full size is the one docs/analysis.md
quotes.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

__all__ = ["aft_coverage", "interval_coverage_hard", "hard_interval_table", "LINES", "main"]

NOMINAL = 0.95


def _line(name: str, value: float, replicates: int, wall_s: float, note: str, **extra) -> dict:
    """A calibration line in the shape of the other suites' lines (``value`` a coverage, ``baseline``
    the nominal level, ``ratio`` value / nominal), with ``replicates`` and the extra figures at top level."""
    return {"name": name, "value": float(value), "unit": "coverage", "baseline": NOMINAL,
            "ratio": float(value) / NOMINAL, "target": None, "note": note, "replicates": int(replicates),
            "wall_s": round(wall_s, 2), **extra}


# --------------------------------------------------------------------------- time to learn (AFT)

AFT_DESIGN = {"n": (4, 6, 8, 12, 16), "runs_per_n": 8, "exponent": 1.5, "intercept": 1.5, "sigma": 0.6,
              "censor_at": 150.0, "grid": 10.0}


def simulate_aft_coverage(replicates: int, *, seed: int = 0, distribution: str = "lognormal", level: float = 0.95,
                          design: dict | None = None) -> dict:
    """Share of simulated data sets whose AFT exponent interval covers the true exponent.

    Each data set: ``runs_per_n`` runs at each ``n``, ``log T = intercept + exponent log n + sigma W``
    (``W`` standard normal, or minimum extreme value for ``"weibull"``), observed on a checkpoint grid
    (every ``grid`` steps: an event is known to lie in ``(k grid, (k+1) grid]``) and right-censored at
    ``censor_at``; fitted by :func:`analysis.aft.fit_aft` with the same distribution.
    Returns coverage, the misses on each side, and the mean censored share.
    """
    from analysis.aft import fit_aft

    d = {**AFT_DESIGN, **(design or {})}
    rng = np.random.default_rng(seed)
    n = np.repeat(np.asarray(d["n"], dtype=np.float64), d["runs_per_n"])
    b, T, grid = d["exponent"], d["censor_at"], d["grid"]
    hits = below = above = 0
    censored = []
    for _ in range(replicates):
        w = rng.standard_normal(n.size) if distribution == "lognormal" else np.log(rng.standard_exponential(n.size))
        t = np.exp(d["intercept"] + b * np.log(n) + d["sigma"] * w)
        event = t <= T
        seen = np.minimum(np.ceil(t / grid) * grid, T)          # the first checkpoint at or after the passage
        t_obs = np.where(event, seen, T)
        lower = np.where(event, seen - grid, 0.0)
        fit = fit_aft(t_obs, event, {"log_n": np.log(n)}, lower=lower, distribution=distribution, level=level)
        _, _, lo, hi = fit.term("log_n")
        hits += lo <= b <= hi
        below += hi < b
        above += lo > b
        censored.append(fit.n_censored / fit.n_runs)
    return {"coverage": hits / replicates, "upper_miss": below / replicates, "lower_miss": above / replicates,
            "censored_share": float(np.mean(censored)), "runs_per_set": int(n.size)}


def aft_coverage(smoke: bool = False) -> dict:
    """The ``aft_coverage`` line: log-normal and Weibull AFT, the worse of the two as ``value``."""
    reps = 100 if smoke else 1000
    t0 = time.perf_counter()
    res = {dist: simulate_aft_coverage(reps, seed=11, distribution=dist) for dist in ("lognormal", "weibull")}
    worst = min(res, key=lambda k: res[k]["coverage"])
    return _line("aft_coverage", res[worst]["coverage"], reps, time.perf_counter() - t0,
                 "95% Wald interval (Student quantile) of the exponent of T* in n, log-normal and Weibull AFT "
                 f"fitted to simulated censored times with exponent {AFT_DESIGN['exponent']} (value: the worse "
                 "model); replicates per model", worst=worst, by_model=res, design=AFT_DESIGN)


# --------------------------------------------------------------------------- INAL intervals, hard cases

HARD_CELLS = {"n": 8, "width": 32, "degrees": (3, 4), "depths": (1, 2), "inits": (32, 256)}


def _block_coverage(Y: np.ndarray, truth: np.ndarray, output_offset: float) -> dict:
    """Coverage and misses over blocks ``Y`` (blocks, R, L) of the interval the report gives
    (``analysis.inal_intervals``: hidden layers :func:`reported_interval` with the stored bootstrap-t
    limits, the 1 % upper one included; the output neuron :func:`conditioned_output_interval`; the
    selection-free value :func:`selection_free_upper`), per layer and for the selection-free value
    against ``max(truth)``, last; ``previous_*`` the same for the interval before (each value's own
    :func:`reported_interval` with the 2.5 % bootstrap-t upper limit)."""
    from analysis.inal_intervals import conditioned_output_interval, reported_interval, selection_free_upper
    from inal_core.inal_summary import UPPER_TAIL, bootstrap_t_interval, selection_free_max

    R, L = Y.shape[1], Y.shape[2]
    targets = np.append(truth, truth.max())
    counts = {k: np.zeros(L + 1) for k in ("hit", "above", "below", "prev_hit", "prev_above", "prev_below")}
    for b, y in enumerate(Y):
        mean, se = y.mean(0), y.std(0, ddof=1) / math.sqrt(R)
        boot_lo, boot_hi, boot_hi99 = bootstrap_t_interval(y, seed=b, upper_tail=UPPER_TAIL)
        sf = selection_free_max(y, level=NOMINAL, seed=b)
        prev_lo, prev_hi = reported_interval(mean, se, boot_lo, boot_hi)
        sf_prev = reported_interval(sf.value, sf.se, sf.boot_lo, sf.boot_hi)
        prev_lo, prev_hi = np.append(prev_lo, sf_prev[0]), np.append(prev_hi, sf_prev[1])
        lo, hi = reported_interval(mean, se, boot_lo, boot_hi, boot_hi99=boot_hi99)
        lo, hi = lo.copy(), hi.copy()
        lo[-1], hi[-1] = conditioned_output_interval(mean[-2], se[-2], boot_lo[-2], boot_hi[-2], output_offset,
                                                     prev_boot_hi99=boot_hi99[-2])
        sf_lo, sf_hi = selection_free_upper(reported_interval(sf.value, sf.se, sf.boot_lo, sf.boot_hi)[0], hi)
        lo, hi = np.append(lo, sf_lo), np.append(hi, sf_hi)
        for pre, (l, h) in (("", (lo, hi)), ("prev_", (prev_lo, prev_hi))):
            counts[pre + "hit"] += (l <= targets) & (targets <= h)
            counts[pre + "above"] += targets > h
            counts[pre + "below"] += targets < l
    n = len(Y)
    return {"coverage": counts["hit"] / n, "upper_miss": counts["above"] / n, "lower_miss": counts["below"] / n,
            "previous_coverage": counts["prev_hit"] / n, "previous_upper_miss": counts["prev_above"] / n}


def hard_interval_table(blocks_256: int = 500, truth_inits: int = 150_000) -> list[dict]:
    """Coverage of the reported INAL interval on the hard cells (``HARD_CELLS``), one row per cell.

    Blocks: ``256 * blocks_256`` initializations of one ``estimate_inal`` call (exact over the 2^n inputs,
    seed 1; init ``r`` has its own derived seed, so a block is what a job with those inits computes, and
    blocks are independent), cut into ``blocks_256`` blocks of 256 and ``8 * blocks_256`` blocks of 32
    (the same initializations: the two columns of a cell are not independent of each other). Truth: the
    exact estimator's mean over ``truth_inits`` other initializations (seed 999), per layer; the
    selection-free value is checked against its maximum.
    """
    import torch

    from inal_core.cube import enumerate_cube
    from inal_core.inal import estimate_inal
    from inal_core.networks import NetworkSpec, output_bias_variance
    from inal_core.targets import make_target

    n, width = HARD_CELLS["n"], HARD_CELLS["width"]
    rows = []
    for k in HARD_CELLS["degrees"]:
        for depth in HARD_CELLS["depths"]:
            target, spec = make_target("parity", n, c=k), NetworkSpec(n, width, depth)
            target_mean = float(target(enumerate_cube(n, dtype=torch.float64)).double().mean())
            offset = output_bias_variance(spec) * target_mean ** 2          # 0 for a parity
            truth = estimate_inal(target, spec, n_inits=truth_inits, method="exact", seed=999).per_layer
            Y = estimate_inal(target, spec, n_inits=256 * blocks_256, method="exact", seed=1).per_init
            for R in HARD_CELLS["inits"]:
                blocks = len(Y) // R
                cov = _block_coverage(Y[: blocks * R].reshape(blocks, R, -1), np.asarray(truth), offset)
                names = [f"layer {i + 1}" for i in range(depth)] + ["output", "selection-free"]
                for j, name in enumerate(names):
                    rows.append({"degree": k, "depth": depth, "inits": R, "blocks": blocks, "cell": name,
                                 "coverage": float(cov["coverage"][j]), "upper_miss": float(cov["upper_miss"][j]),
                                 "lower_miss": float(cov["lower_miss"][j]),
                                 "previous_coverage": float(cov["previous_coverage"][j]),
                                 "previous_upper_miss": float(cov["previous_upper_miss"][j])})
    return rows


def interval_coverage_hard(smoke: bool = False) -> dict:
    """The ``interval_coverage_hard`` line: the worst cell (lowest coverage) of :func:`hard_interval_table`,
    the largest ``upper_miss``, and every cell; the target is every cell in [93 %, 97 %] with
    ``upper_miss`` <= 4 %."""
    t0 = time.perf_counter()
    rows = hard_interval_table(blocks_256=8, truth_inits=4_000) if smoke else hard_interval_table()
    worst = min(rows, key=lambda r: r["coverage"])
    worst_upper = max(rows, key=lambda r: r["upper_miss"])
    ok = all(0.93 <= r["coverage"] <= 0.97 and r["upper_miss"] <= 0.04 for r in rows)
    return _line("interval_coverage_hard", worst["coverage"], min(r["blocks"] for r in rows),
                 time.perf_counter() - t0,
                 "coverage of the reported 95% INAL interval on parities of degree 3-4, n=8, width 32, depth 1-2, "
                 "32 and 256 inits, every layer and the selection-free value (value: the worst cell; replicates: "
                 "the fewest blocks of any cell)", upper_miss=worst_upper["upper_miss"], worst_cell=worst,
                 worst_upper_cell=worst_upper, meets_calibration=ok, cells=rows, design=HARD_CELLS)


LINES = (interval_coverage_hard, aft_coverage)


def main(smoke: bool = False) -> int:
    """Print every line (``python -m inal_bench.stats_calibration [--quick]``)."""
    for fn in LINES:
        print(json.dumps(fn(smoke=smoke)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(smoke="--quick" in sys.argv[1:]))


def _measurement(fn):
    """``fn`` as an entry of ``inal-bench stats`` (``inal_bench.stats.MEASUREMENTS``): a smoke run when the
    suite asks for its smoke replicate count, the line's extra figures kept in ``extra``."""
    def measure(replicates: int, rng_seed: int):
        from .common import Measurement
        from .stats import FULL_REPLICATES

        line = fn(smoke=replicates < FULL_REPLICATES)
        core = {k: line.pop(k) for k in ("name", "value", "unit", "baseline", "ratio", "target", "note")}
        return Measurement(**core, extra=line)
    return measure


#: the lines ``inal-bench stats`` adds from this module
MEASUREMENTS = tuple((fn.__name__, _measurement(fn)) for fn in LINES)
