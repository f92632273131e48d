"""Confidence intervals for INAL estimates that hold on the real, right-skewed estimator.

An INAL estimate is the mean over ``R`` initializations of per-initialization values ``Y_r`` (a
neuron-mean of squared correlations, :mod:`inal_core.inal`). Each ``Y_r`` is a square of a roughly
centred correlation: right-skewed, close to a scaled chi-square. The normal interval
``mean ± 1.96 se`` then misses low values too rarely and high values too often (measured, issue 10:
|z| > 2 in 6-9 % of seeds with 256 initializations, 14-20 % with 32).

Scaled chi-square interval (Welch–Satterthwaite). Model the mean as ``g chi^2_nu / nu`` and match
its first two moments: ``E = g``, ``Var = 2 g^2 / nu``, so ``nu = 2 mean^2 / se^2`` (exact when
each ``Y_r`` is ``g chi^2_1``: then ``nu = R``). Inverting ``nu mean / g ~ chi^2_nu``:

    [ nu mean / chi^2_{nu, (1+level)/2} ,  nu mean / chi^2_{nu, (1-level)/2} ].

It needs only ``(inal, inal_se)``, which every study stores, so it applies to old studies as well.
A Monte Carlo estimate can be ``<= 0`` (the U-statistic is unbiased, not positive): then the
normal interval is used (it is then an interval around a value consistent with zero anyway).

Log space (for the exponent fits). Under the same model ``log mean = log g + log(chi^2_nu/nu)``,
whose mean is ``psi(nu/2) - log(nu/2)`` (``psi`` the digamma function; about ``-1/nu``) and whose
variance is ``psi'(nu/2)`` (about ``2/nu = se^2/mean^2``, the delta method). :func:`log_inal`
returns the bias-corrected ``log g`` estimate and that standard deviation, so a weighted fit of
``log INAL`` on ``log n`` uses the right variance for small ``nu`` where the delta method does not.

The output neuron (:func:`conditioned_output_interval`, :func:`calibrated_layer_intervals`). Its INAL
is the last hidden layer's plus ``v_b E_x[f]^2`` exactly (``inal_core.inal_summary``); the jobs store
that offset (``output_offset``), and its calibrated interval is the last hidden layer's shifted by it:
the output neuron's own values are a single neuron's, with excess kurtosis up to 134 on degree-3 and
-4 parities, where its own interval missed high in 6-7 % of blocks (``docs/analysis.md``).

The reported interval (:func:`reported_interval`) is the hull of this interval and the bootstrap-t
interval the job stored (``inal_boot_lo``/``inal_boot_hi``, from the per-initialization values,
which only exist while INAL is computed), with the bootstrap-t's upper end taken at the 1 % upper
tail of ``t*`` (``inal_boot_hi99``) where the study stores it: on heavy-tailed values (parities of
degree 3-4) the truth lies above the 2.5 % limit in up to 4.5 % of blocks and below the lower one in
about 2 %, and the 1 % limit brings every hard cell to 94-97 % with at most 4 % above. Studies
written before ``inal_boot_hi99`` keep the 2.5 % limit. Coverage measured on the project's own
estimators against an independent truth: ``tests/test_analysis_inal_intervals.py``,
``inal-bench stats`` ``interval_coverage_hard``; the tables are in ``docs/analysis.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special, stats

from inal_core.inal_summary import BOOTSTRAP_LEVEL  # the level of the intervals the jobs store (numpy only)

__all__ = ["chi2_dof", "inal_interval", "normal_interval", "log_inal", "reported_interval",
           "conditioned_output_interval", "calibrated_layer_intervals", "selected_interval",
           "selection_free_upper"]


def chi2_dof(mean, se):
    """Welch–Satterthwaite degrees of freedom ``nu = 2 mean^2 / se^2`` (NaN unless mean > 0, se > 0)."""
    mean, se = np.asarray(mean, dtype=np.float64), np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = np.where((mean > 0) & (se > 0), 2.0 * mean**2 / se**2, np.nan)
    return nu


def normal_interval(mean, se, level: float = 0.95):
    """``mean ± z se`` (for comparison and for non-positive estimates)."""
    z = stats.norm.ppf(0.5 * (1.0 + level))
    mean, se = np.asarray(mean, dtype=np.float64), np.asarray(se, dtype=np.float64)
    return mean - z * se, mean + z * se


def inal_interval(mean, se, level: float = 0.95):
    """Scaled chi-square interval of INAL from its estimate and standard error (module docstring).

    Arrays broadcast; returns ``(lo, hi)``. ``se == 0`` gives ``[mean, mean]``; ``mean <= 0`` (a
    Monte Carlo estimate) gives the normal interval.

    >>> lo, hi = inal_interval(1.0, 0.25)          # nu = 32
    >>> round(float(lo), 3), round(float(hi), 3)
    (0.653, 1.748)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    mean, se = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(se, dtype=np.float64))
    nu = chi2_dof(mean, se)
    ok = np.isfinite(nu)
    nu_safe = np.where(ok, nu, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = nu_safe * mean / stats.chi2.ppf(0.5 * (1.0 + level), nu_safe)
        hi = nu_safe * mean / stats.chi2.ppf(0.5 * (1.0 - level), nu_safe)
    n_lo, n_hi = normal_interval(mean, se, level)
    lo = np.where(ok, lo, np.where(se == 0, mean, n_lo))
    hi = np.where(ok, hi, np.where(se == 0, mean, n_hi))
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def reported_interval(mean, se, boot_lo=None, boot_hi=None, level: float = 0.95, boot_hi99=None):
    """The interval the reports give: the hull of the scaled chi-square interval and the stored
    bootstrap-t interval (``inal_core.inal_summary.bootstrap_t_interval``), where one is stored;
    where the job also stored ``boot_hi99`` (the bootstrap-t upper limit at the 1 % upper tail of
    ``t*``, ``inal_boot_hi99``), that is the bootstrap-t's upper end: 2.5 % below, 1 % above.

    Why the asymmetric tails: on heavy-tailed per-initialization values (parities of degree 3-4,
    excess kurtosis 14 in a hidden layer) the bootstrap-t's error is one-sided, the truth above its
    upper limit in 3.8-4.5 % of blocks at 32 initializations (nominal 2.5 %), below its lower limit
    in 1.9-2.5 %: a sample that misses the rare large values has a low mean *and* a low spread. The
    1 % upper tail was chosen on that measurement and checked on the whole hard table and on the
    near-Gaussian degree-1 table (``docs/analysis.md``, "INAL intervals on the hard cases").

    Either alone under-covers on the heavy-tailed output neuron at 32 initializations (measured on
    the project's estimators, depth 2, 800 blocks: scaled chi-square 90-91 %, bootstrap-t
    92.6-93.4 %, their hull 93.6-94.0 %); the hull covers whenever either does. The stored
    intervals are at 95 %: at another ``level``, or where none is stored (studies written before
    they were), the scaled chi-square interval alone is returned. Coverage is tested in
    ``tests/test_analysis_inal_intervals.py``.
    """
    lo, hi = inal_interval(mean, se, level)
    if boot_lo is None or boot_hi is None:
        return lo, hi
    if not math.isclose(level, BOOTSTRAP_LEVEL):
        return lo, hi
    boot_lo, boot_hi = np.asarray(boot_lo, dtype=np.float64), np.asarray(boot_hi, dtype=np.float64)
    if boot_hi99 is not None:   # the heavy-tail upper limit, where stored (studies written before: NaN)
        boot_hi99 = np.asarray(boot_hi99, dtype=np.float64)
        boot_hi = np.where(np.isfinite(boot_hi99), np.fmax(boot_hi, boot_hi99), boot_hi)
    ok = np.isfinite(boot_lo) & np.isfinite(boot_hi)
    lo = np.where(ok, np.fmin(lo, boot_lo), lo)
    hi = np.where(ok, np.fmax(hi, boot_hi), hi)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def log_inal(mean, se):
    """``(log g, sd)`` under the scaled chi-square model: bias-corrected log INAL and its standard deviation.

    ``log g = log mean - (psi(nu/2) - log(nu/2))``, ``sd = sqrt(psi'(nu/2))``, ``nu = 2 mean^2/se^2``.
    NaN where ``mean <= 0``; ``se == 0`` gives ``(log mean, 0)``.
    """
    mean, se = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(se, dtype=np.float64))
    nu = chi2_dof(mean, se)
    ok = np.isfinite(nu)
    half = np.where(ok, nu, 2.0) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.log(np.where(mean > 0, mean, np.nan))
        bias = special.digamma(half) - np.log(half)
        value = np.where(ok, log_mean - bias, np.where((se == 0) & (mean > 0), log_mean, np.nan))
        sd = np.where(ok, np.sqrt(special.polygamma(1, half)), np.where((se == 0) & (mean > 0), 0.0, np.nan))
    return value, sd


def conditioned_output_interval(prev_mean, prev_se, prev_boot_lo, prev_boot_hi, output_offset,
                                level: float = 0.95, prev_boot_hi99=None):
    """Interval of the output neuron's INAL from the last hidden layer's: ``reported_interval`` of
    that layer shifted by ``output_offset = v_b E_x[f]^2``.

    Why: ``INAL_L = INAL_{L-1} + v_b E_x[f]^2`` exactly, under every init of the project
    (``inal_core.inal_summary``, "The output neuron given the hidden layers"), and the last hidden
    layer's per-init values are a mean over its neurons, far lighter-tailed than the single output
    neuron's. On degree-3 and -4 parities at 32 initializations the output neuron's own interval
    covered 91-93 % with the truth above the upper limit in 6-7 % of blocks; this one covers as its
    hidden layer does (the table in ``docs/analysis.md``). Arrays broadcast; NaN ``output_offset``
    (not stored) gives NaN limits, for the caller to fall back on :func:`reported_interval`.
    """
    lo, hi = reported_interval(prev_mean, prev_se, prev_boot_lo, prev_boot_hi, level, prev_boot_hi99)
    off = np.asarray(output_offset, dtype=np.float64)
    lo, hi = np.asarray(lo) + off, np.asarray(hi) + off
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


_HULL = "hull of scaled chi-square and bootstrap-t (upper end at 1% where stored)"


def selection_free_upper(sf_lo, layer_hi):
    """Interval of INAL = max over layers from the selection-free value's lower limit ``sf_lo`` and the
    layers' calibrated upper limits ``layer_hi`` (last axis: layers): ``[sf_lo, max_l layer_hi]``.

    Why: INAL is the top layer's INAL, and the top layer's interval covers it from above unless that
    layer's own upper limit misses, whichever layer the data would select, so ``max_l hi_l`` is an
    upper limit for the max with at most the top layer's upper miss rate and no selection in it. The
    selection-free value's own upper limit is not: it misses high when a half chooses a lower layer
    (degree 4, depth 2: 4.0-5.0 % above at 32 initializations), and its bootstrap over a chosen
    output neuron's single-neuron values is very wide where the layers tie (degree 1, depth 1:
    98-99 %). The lower limit stays the selection-free value's (it can only err low).
    """
    hi = np.max(np.asarray(layer_hi, dtype=np.float64), axis=-1)
    lo = np.asarray(sf_lo, dtype=np.float64)
    if lo.ndim == 0 and hi.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def selected_interval(inal, level: float = 0.95):
    """Per row of the ``inal`` dataset: the interval of the selection-free value (``selected_inal``,
    the same on every row of a setting), :func:`selection_free_upper` of its own lower limit
    (:func:`reported_interval` of the stored ``selected_*`` columns) and the max over the setting's
    layers of :func:`calibrated_layer_intervals`' upper limits. Without ``inal_id`` (or the layer
    columns) the selection-free value's own :func:`reported_interval`."""
    frame = inal.reset_index(drop=True)
    col = lambda name: (frame[name].to_numpy(dtype=np.float64) if name in frame.columns  # noqa: E731
                        else np.full(len(frame), np.nan))
    lo, hi = reported_interval(col("selected_inal"), col("selected_inal_se"), col("selected_inal_boot_lo"),
                               col("selected_inal_boot_hi"), level, col("selected_inal_boot_hi99"))
    lo = np.atleast_1d(np.asarray(lo, dtype=np.float64)).copy()
    hi = np.atleast_1d(np.asarray(hi, dtype=np.float64)).copy()
    if not len(frame) or not {"inal_id", "layer", "depth"} <= set(frame.columns):
        return lo, hi
    _, layer_hi, _ = calibrated_layer_intervals(frame, level)
    top = pd.Series(layer_hi).groupby(frame["inal_id"].to_numpy()).transform("max").to_numpy(np.float64)
    ok = np.isfinite(top)
    hi = np.where(ok, np.fmax(top, col("selected_inal")), hi)
    return lo, hi


def calibrated_layer_intervals(inal, level: float = 0.95):
    """Per row of the ``inal`` dataset (every layer of every setting): ``(lo, hi, method)``, the interval
    the reports give for that layer's INAL.

    Hidden layers: :func:`reported_interval` (scaled chi-square hull bootstrap-t, the 1 % upper limit
    ``inal_boot_hi99`` where stored). Output neuron
    (``layer == depth + 1``, depth >= 1) of a setting that stores ``output_offset``:
    :func:`conditioned_output_interval` from the last hidden layer's row (its hull with the output
    neuron's own interval over-covers: 98.8-99.7 % measured, docs/analysis.md). Studies written before
    ``output_offset`` existed (or settings where it is NaN) keep :func:`reported_interval` on the
    output neuron too, ``method`` saying so: that interval under-covers there on hard targets.
    """
    frame = inal.reset_index(drop=True)
    col = lambda name: (frame[name].to_numpy(dtype=np.float64) if name in frame.columns  # noqa: E731
                        else np.full(len(frame), np.nan))
    lo, hi = reported_interval(col("inal"), col("inal_se"), col("inal_boot_lo"), col("inal_boot_hi"), level,
                               col("inal_boot_hi99"))
    lo = np.atleast_1d(np.asarray(lo, dtype=np.float64)).copy()
    hi = np.atleast_1d(np.asarray(hi, dtype=np.float64)).copy()
    if "depth" not in frame.columns or "layer" not in frame.columns:    # no layer structure: every row its own
        return lo, hi, np.full(len(frame), _HULL, dtype=object)
    method = np.where(frame["layer"].to_numpy() > frame["depth"].to_numpy(), "output neuron's own values (hull)",
                      _HULL)
    if "output_offset" in frame.columns and len(frame):
        key = "inal_id" if "inal_id" in frame.columns else None
        layer, depth = frame["layer"].to_numpy(dtype=np.int64), frame["depth"].to_numpy(dtype=np.int64)
        is_out = (layer == depth + 1) & (depth >= 1) & np.isfinite(col("output_offset"))
        if key is not None and is_out.any():
            prev = frame.assign(_layer=layer + 1).set_index([key, "_layer"])
            idx = pd.MultiIndex.from_arrays([frame[key].to_numpy(), layer])
            found = idx.isin(prev.index) & is_out
            if found.any():
                p = prev.loc[idx[found]]
                p = p[~p.index.duplicated()] if p.index.has_duplicates else p
                p_lo, p_hi = conditioned_output_interval(
                    p["inal"].to_numpy(np.float64), p["inal_se"].to_numpy(np.float64),
                    p.get("inal_boot_lo", pd.Series(np.nan, index=p.index)).to_numpy(np.float64),
                    p.get("inal_boot_hi", pd.Series(np.nan, index=p.index)).to_numpy(np.float64),
                    col("output_offset")[found], level,
                    p.get("inal_boot_hi99", pd.Series(np.nan, index=p.index)).to_numpy(np.float64))
                lo[found], hi[found] = p_lo, p_hi
                method = np.where(found, "last hidden layer's interval + v_b E[f]^2", method)
    return lo, hi, method
