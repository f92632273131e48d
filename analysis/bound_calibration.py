"""Calibration of the bound check and of its slopes by simulation: how often each verdict is right.

Three figures, each a share over replicates with its replicate count (``inal-bench stats`` prints them;
``tests/test_analysis_bound_power.py`` asserts them at a smaller size):

- ``bound_power_violation``: synthetic studies in the design of ``+experiment=bound_check_power``
  (fixed N = 576, fixed width and depth, so E is the same at every n; n = 8, 10, 12, 16, 20, 24;
  32 seeds; a planted target with c = 2) whose ``|E corr|`` grows like ``n^{+0.3}`` beyond the
  prediction (``log R`` slope ``-(c-1)/8 + 0.3``): the share called *violated* (the power).
- ``bound_size_equality``: the same with the slope exactly at the prediction: the share called
  *violated* (the size; nominal 2.5%, one-sided).
- ``slope_coverage_curved``: a cliff, the shape of c = 2 in docs/study_bound_check_large: a share
  ``q(n)`` of the seeds learns (correlation ≈ 0.99) and the rest stay at chance, with ``q`` falling
  logistically over n = 4..16, so ``log |E corr|`` bends and the weighted fit's chi-square rejects a
  line. The share of replicates whose reported slope interval (:func:`analysis.bound_check.check_bound`,
  fixed E, so it is the slope of ``|E corr|``) covers the truth, defined as the ordinary least-squares
  slope of the true ``log |E corr|`` over the fitted n (what a fit that weights the points equally
  estimates: the effective exponent over the range).

A few replicates are written through the results store's layout
(:func:`analysis.synthetic.write_synthetic_study`) and read back with ``load_study``; the rest are
drawn in memory from the same model with numpy (:func:`control_study`), and both go through the same
analysis (:func:`analysis.fits.fit_inal_exponents`, :func:`analysis.bound_check.check_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bound_check import check_bound, predicted_slope
from .fits import fit_inal_exponents
from .load import Study
from .synthetic import SyntheticTarget, _Settings, write_synthetic_study

__all__ = ["CONTROL", "ControlDesign", "control_targets", "control_study", "violation_share",
           "cliff_runs", "cliff_slope_coverage"]


@dataclass(frozen=True)
class ControlDesign:
    """The positive control's synthetic design (module docstring)."""

    c: float = 2.0
    n_values: tuple[int, ...] = (8, 10, 12, 16, 20, 24)
    seeds: int = 32
    N: int = 576
    width: int = 32
    depth: int = 1
    T: int = 300
    gamma: float = 0.05
    sigma: float = 1e-3
    corr_at_nmax: float = 0.05
    corr_seed_scatter: float = 0.3
    corr_eval_se: float = 1e-3
    inal_rel_se: float = 0.02

    def settings(self) -> _Settings:
        return _Settings(self.n_values, tuple(range(self.seeds)), self.width, self.depth, self.T, self.gamma,
                         self.sigma, 1.0, str(self.N), "normal", self.inal_rel_se, 0.0, 256,
                         self.corr_seed_scatter, self.corr_eval_se, 2)


CONTROL = ControlDesign()


def control_targets(excess: float, replicates: int, design: ControlDesign = CONTROL, *, first: int = 0):
    """One target per replicate (``planted_r<i>``), ``log R`` slope ``-(c-1)/8 + excess``, INAL ``~ n^-c``."""
    slope = predicted_slope(design.c) + excess
    return [SyntheticTarget(f"planted_r{i:04d}", c=design.c, inal_exponent=design.c, r_slope=slope,
                            corr_at_nmax=design.corr_at_nmax) for i in range(first, first + replicates)]


def _control_frames(excess: float, replicates: int, rng: np.random.Generator,
                    design: ControlDesign) -> Study:
    """The control model of :func:`analysis.synthetic.synthetic_tables`, drawn with numpy for many
    replicates at once: the columns the store writes that the analysis reads, one target per replicate.

    Per replicate, n and seed: ``corr = E[corr](n) (1 + scatter z1) + eval_se z2`` with ``E[corr](n) =
    corr_at_nmax (n / n_max)^{r_slope}`` (E fixed, so R's slope is the correlation's); INAL per layer
    ``0.2 f_l n^-c (1 + rel_se z)`` with ``f = (1, 0.6)`` and the selection-free value that of layer 1.
    """
    n = np.asarray(design.n_values, dtype=np.int64)
    slope = predicted_slope(design.c) + excess
    mean = design.corr_at_nmax * (n / n.max()) ** slope                        # (n,)
    shape = (replicates, n.size, design.seeds)
    z1, z2 = rng.standard_normal(shape), rng.standard_normal(shape)
    corr = mean[None, :, None] * (1.0 + design.corr_seed_scatter * z1) + design.corr_eval_se * z2
    rep, ni, seed = (a.ravel() for a in np.meshgrid(np.arange(replicates), np.arange(n.size),
                                                    np.arange(design.seeds), indexing="ij"))
    names = np.char.add("planted_r", np.char.zfill(np.arange(replicates).astype(str), 4))
    E = (design.N + 1) * design.width + design.width + 1
    pref = design.gamma * design.T * math.sqrt(E) / design.sigma
    common = {"c": design.c, "width": design.width, "depth": design.depth, "init": "normal", "bias": True}
    runs = pd.DataFrame({
        "target": names[rep], **common, "n_steps": design.T, "gamma": design.gamma, "sigma": design.sigma,
        "A": 1.0, "precision": "clip", "loss": "squared", "batch": 0, "gamma_schedule": "constant",
        "N_spec": str(design.N), "n": n[ni], "N": design.N, "E": E, "seed": seed,
        "run_id": np.char.add(np.char.add(names[rep], "-"), (ni * design.seeds + seed).astype(str)),
        "correlation": corr.ravel(), "correlation_se": design.corr_eval_se, "status": "ok",
        "bound_prefactor": pref})
    factors = np.array([1.0, 0.6])
    truth = 0.2 * factors[None, :] * n[:, None].astype(np.float64) ** (-design.c)   # (n, layers)
    se = design.inal_rel_se * truth
    est = truth[None] + se[None] * rng.standard_normal((replicates,) + truth.shape)
    r_i, n_i, l_i = (a.ravel() for a in np.meshgrid(np.arange(replicates), np.arange(n.size), np.arange(2),
                                                    indexing="ij"))
    inal = pd.DataFrame({
        "target": names[r_i], **common, "n": n[n_i], "layer": l_i + 1, "inal": est.ravel(),
        "inal_se": se[n_i, l_i], "is_max": est.argmax(axis=2)[r_i, n_i] == l_i,
        "inal_id": np.char.add(np.char.add(names[r_i], "-"), n[n_i].astype(str)),
        "selected_inal": est[r_i, n_i, 0], "selected_inal_se": se[n_i, 0], "selected_layer_a": 1,
        "selected_layer_b": 1, "n_inits": 256, "estimator": "synthetic"})
    return Study(runs=runs, inal=inal, curves=pd.DataFrame())


def control_study(excess: float, replicates: int, rng_seed: int, design: ControlDesign = CONTROL, *,
                  root: str | None = None, study: str = "control") -> Study:
    """``replicates`` control studies (one target each) in one :class:`analysis.load.Study`.

    With ``root``: written in the results store's layout under ``root/study`` by
    :func:`analysis.synthetic.write_synthetic_study` and read back with ``load_study`` (the path of
    a real study; about 0.1 s per replicate). Without: the same model drawn in memory
    (:func:`_control_frames`, for hundreds of replicates).
    """
    if root is None:
        return _control_frames(excess, replicates, np.random.default_rng(rng_seed), design)
    from .load import load_study

    s = design.settings()
    path = write_synthetic_study(root, study, control_targets(excess, replicates, design), n_values=s.n_values,
                                 seeds=s.seeds, width=s.width, depth=s.depth, T=s.T, gamma=s.gamma, sigma=s.sigma,
                                 A=s.A, N_spec=s.N_spec, inal_rel_se=s.inal_rel_se, n_inits=s.n_inits,
                                 corr_seed_scatter=s.corr_seed_scatter, corr_eval_se=s.corr_eval_se,
                                 n_checkpoints=s.n_checkpoints, rng_seed=rng_seed)
    return load_study(path)


def verdicts(study: Study) -> pd.DataFrame:
    """The bound check of every replicate of a control study (INAL fits from the same study)."""
    return check_bound(study.runs, fit_inal_exponents(study.inal))


def violation_share(excess: float, replicates: int, rng_seed: int = 0, design: ControlDesign = CONTROL, *,
                    root: str | None = None, written: int = 0) -> tuple[float, int]:
    """``(share of replicates called violated, replicates)`` at a slope ``excess`` over the prediction;
    ``written`` of them (with ``root``) through the store and ``load_study``, the rest in memory."""
    written = min(written, replicates) if root is not None else 0
    parts = []
    if written:
        parts.append(verdicts(control_study(excess, written, rng_seed, design, root=root,
                                            study=f"control_{excess:g}_{rng_seed}")))
    if replicates > written:
        parts.append(verdicts(control_study(excess, replicates - written, rng_seed + 1, design)))
    checks = pd.concat(parts, ignore_index=True)
    return float((checks["verdict"] == "violated").mean()), int(len(checks))


# ------------------------------------------------------------------------------ the cliff

CLIFF_N = (4, 6, 8, 10, 12, 14, 16)


def cliff_truth(n_values=CLIFF_N) -> np.ndarray:
    """``|E corr|(n)`` of the cliff: a share ``q(n) = max(0.1, 1/(1 + exp((n - 10.5)/1.6)))`` of seeds at 0.99."""
    n = np.asarray(n_values, dtype=np.float64)
    return 0.99 * np.maximum(0.1, 1.0 / (1.0 + np.exp((n - 10.5) / 1.6)))


def cliff_runs(replicates: int, rng: np.random.Generator, *, seeds: int = 64, n_values=CLIFF_N,
               N: int = 576, width: int = 32) -> pd.DataFrame:
    """Runs of ``replicates`` cliff groups (target ``cliff_r<i>``, fixed N): per seed, 0.99 + 0.005 z if it
    learned, else 0.01 z (chance with evaluation noise)."""
    n = np.asarray(n_values)
    share = cliff_truth(n) / 0.99
    shape = (replicates, n.size, seeds)
    learned = rng.random(shape) < share[None, :, None]
    corr = np.where(learned, 0.99 + 0.005 * rng.standard_normal(shape), 0.01 * rng.standard_normal(shape))
    E = (N + 1) * width + width + 1
    rep, ni, seed = np.meshgrid(np.arange(replicates), np.arange(n.size), np.arange(seeds), indexing="ij")
    return pd.DataFrame({
        "target": np.char.add("cliff_r", rep.ravel().astype(str)), "c": 2.0, "width": width, "depth": 1,
        "init": "normal", "bias": True, "n_steps": 300, "gamma": 0.05, "sigma": 1e-3, "A": 1.0,
        "precision": "clip", "loss": "squared", "batch": 512, "gamma_schedule": "constant", "N_spec": str(N),
        "n": n[ni.ravel()], "N": N, "E": E, "seed": seed.ravel(), "correlation": corr.ravel(),
        "correlation_se": 0.01, "status": "ok"})


def cliff_slope_coverage(replicates: int, rng_seed: int = 0, *, level: float = 0.95) -> tuple[float, int, dict]:
    """``(coverage, replicates tested, details)`` of the reported slope interval on the cliff.

    Replicates whose check is unresolved are not counted (``details["untested"]``); ``details`` also has
    the share whose weighted fit was replaced (``not_trusted``) and the mean reported slope.
    """
    runs = cliff_runs(replicates, np.random.default_rng(rng_seed))
    truth_curve = np.log(cliff_truth())
    checks = check_bound(runs, level=level)
    covered, tested, untrusted, slopes = 0, 0, 0, []
    for _, r in checks.iterrows():
        if r["verdict"] == "unresolved":
            continue
        idx = [CLIFF_N.index(v) for v in r["n_resolved_values"]]
        truth = float(np.polyfit(np.log(np.asarray(CLIFF_N, dtype=float)[idx]), truth_curve[idx], 1)[0])
        tested += 1
        covered += int(r["slope_lo"] <= truth <= r["slope_hi"])
        untrusted += int(not r["weighted_fit_trusted"])
        slopes.append(r["slope"])
    cov = covered / tested if tested else math.nan
    return cov, tested, {"untested": int(len(checks) - tested),
                         "not_trusted": untrusted / tested if tested else math.nan,
                         "mean_slope": float(np.mean(slopes)) if slopes else math.nan}
