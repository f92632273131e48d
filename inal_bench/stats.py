"""Statistical calibration of the analysis (``inal-bench stats``): how often its verdicts and intervals are right.

Each line is a share over simulated replicates, with the replicate count in ``extra.replicates``, so
anyone can rerun it; ``value`` is the share, ``baseline`` the figure it must reach (or stay under),
``ratio`` oriented so that larger is better and ``target`` 1.

- ``bound_power_violation``: share of synthetic fixed-N studies called *violated* when ``|E corr|``
  grows like ``n^{+0.3}`` beyond the prediction (:mod:`analysis.bound_calibration`); must be >= 0.80.
- ``bound_size_equality``: the same at equality; must be <= 0.035 (nominal 0.025, one-sided).
  ``ratio = 0.035 / max(value, 1 / (2 replicates))``.
- ``slope_coverage_curved``: coverage of the reported slope interval on a cliff (a bending power
  law); must be >= 0.90.

``--smoke`` runs 20 replicates per figure instead of 1,000 (a check that the suite runs; its figures
are coarse, a binomial sd of up to 11 points). Registration: every ``(name, function)`` of
:data:`MEASUREMENTS`, then those of ``inal_bench.stats_calibration.MEASUREMENTS`` when that module exists; a function takes
``(replicates, rng_seed)`` and returns a :class:`inal_bench.common.Measurement`.
"""

from __future__ import annotations

import importlib
import time
from typing import Callable, Iterator

from .common import Measurement

FULL_REPLICATES = 1000
SMOKE_REPLICATES = 20


def bound_power_violation(replicates: int, rng_seed: int = 0) -> Measurement:
    from analysis.bound_calibration import CONTROL, violation_share
    from analysis.bound_check import POWER_EXCESS

    t0 = time.perf_counter()
    share, reps = violation_share(POWER_EXCESS, replicates, rng_seed)
    return Measurement(name="bound_power_violation", value=share, unit="share violated", baseline=0.80,
                       ratio=share / 0.80, target=1.0,
                       note=f"|E corr| ~ n^+{POWER_EXCESS:g} beyond the prediction, fixed N = {CONTROL.N}, "
                            f"c = {CONTROL.c:g}, "
                            f"n = {list(CONTROL.n_values)}, {CONTROL.seeds} seeds; must be >= 0.80",
                       extra={"replicates": reps, "excess": POWER_EXCESS, "wall_s": time.perf_counter() - t0})


def bound_size_equality(replicates: int, rng_seed: int = 0) -> Measurement:
    from analysis.bound_calibration import CONTROL, violation_share

    t0 = time.perf_counter()
    share, reps = violation_share(0.0, replicates, rng_seed)
    return Measurement(name="bound_size_equality", value=share, unit="share violated", baseline=0.035,
                       ratio=0.035 / max(share, 0.5 / reps), target=1.0,
                       note=f"slope exactly at the prediction, fixed N = {CONTROL.N}; nominal 0.025, must be <= 0.035",
                       extra={"replicates": reps, "wall_s": time.perf_counter() - t0})


def slope_coverage_curved(replicates: int, rng_seed: int = 0) -> Measurement:
    from analysis.bound_calibration import cliff_slope_coverage

    t0 = time.perf_counter()
    cov, tested, details = cliff_slope_coverage(replicates, rng_seed)
    return Measurement(name="slope_coverage_curved", value=cov, unit="coverage", baseline=0.90, ratio=cov / 0.90,
                       target=1.0, note="cliff over n = 4..16, 64 seeds; truth: least-squares slope of the true "
                                        "log |E corr|; must be >= 0.90",
                       extra={"replicates": tested, "untested": details["untested"],
                              "weighted_fit_rejected": details["not_trusted"], "mean_slope": details["mean_slope"],
                              "wall_s": time.perf_counter() - t0})


MEASUREMENTS: tuple[tuple[str, Callable[[int, int], Measurement]], ...] = (
    ("bound_power_violation", bound_power_violation),
    ("bound_size_equality", bound_size_equality),
    ("slope_coverage_curved", slope_coverage_curved),
)


def registered() -> list[tuple[str, Callable[[int, int], Measurement]]]:
    """This module's measurements, then ``inal_bench.stats_calibration.MEASUREMENTS`` if that module exists."""
    out = list(MEASUREMENTS)
    try:
        extra = importlib.import_module("inal_bench.stats_calibration")
    except ModuleNotFoundError as err:
        if err.name != "inal_bench.stats_calibration":
            raise
    else:
        out += list(getattr(extra, "MEASUREMENTS", ()))
    return out


def run(args) -> Iterator[Measurement]:
    smoke = bool(getattr(args, "smoke", False) or getattr(args, "quick", False))
    reps = SMOKE_REPLICATES if smoke else FULL_REPLICATES
    only = getattr(args, "only", None)
    for i, (name, fn) in enumerate(registered()):
        if only and only not in name:
            continue
        yield fn(reps, 1000 + i)
