"""INAL exponent fits: the measured ``ĉ`` of ``INAL(n) ~ n^{-c}`` with a confidence interval.

For each group (target, c, width, depth, init, bias; or ``config_id`` where the study stores it)
the points are the INAL estimates at each ``n``: by default the selection-free estimate
(``layer="selected"``: the layer chosen on one half of the initializations and measured on the
other, :mod:`inal_core.inal_summary`), or the plug-in max over layers (``"max"``, biased upward),
or one given layer. Studies written before the selection-free columns existed fall back to
``"max"`` and the report says so (:func:`resolve_layer`).

The fit is weighted least squares of ``log INAL`` on ``log n`` and ``ĉ = -slope``
(:func:`analysis.regression.fit_line`). INAL estimates are means of right-skewed per-initialization
values (squares of roughly Gaussian correlations), so each point is modelled as a scaled chi-square
``g chi^2_nu / nu`` with ``nu = 2 INAL^2 / se^2`` (:mod:`analysis.inal_intervals`): its logarithm is
bias-corrected by ``psi(nu/2) - log(nu/2)`` and weighted by ``1 / psi'(nu/2)``, which is the delta
method's ``se / INAL`` for large ``nu`` and larger for small ``nu`` (few initializations, output
neurons). The per-point interval shown and stored (``inal_lo``, ``inal_hi``) is the calibrated one
of :func:`analysis.inal_intervals.calibrated_layer_intervals` for a single estimate (scaled
chi-square hull the stored bootstrap-t limits; the output neuron's from its last hidden layer) and
the scaled chi-square interval for a combination of estimates; its coverage on the project's own
estimators is measured in ``tests/test_analysis_inal_intervals.py``.

What the standard errors do not cover is lack of fit: INAL is a power law only asymptotically, and
a curved pre-asymptotic range makes the points scatter about the line by more than their errors.
The default interval therefore scales the covariance by the residual ``chi^2/dof`` (floored at 1:
never narrower than the errors allow) and uses the Student-t quantile with ``m - 2`` degrees of
freedom. The interval that trusts the errors as exact (normal quantile, no scaling) is reported
beside it (``c_hat_ci_known``); ``chi2_per_dof`` far above 1 says the two disagree.

Points and their resolution: several estimates of the same ``(group, n)`` (e.g. exact at small n and
Monte Carlo at large n, or two runs of the estimator) are combined by inverse-variance weighting.
A point with ``INAL <= resolve_z * se`` (default 2) is *unresolved*: consistent with zero, so its
logarithm is meaningless; it is counted and shown as an upper bound ``INAL + resolve_z * se``,
never fitted. ``ĉ`` is an effective exponent over the fitted range of n, not a limit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .inal_intervals import calibrated_layer_intervals, log_inal, reported_interval, selected_interval
from .regression import fit_line, fit_line_checked, holm_adjust, normal_cdf, student_t_cdf

__all__ = ["INAL_GROUP_KEYS", "LAYER_CHOICES", "inal_points", "fit_inal_exponents", "group_label", "group_columns",
           "has_selected", "resolve_layer"]

INAL_GROUP_KEYS = ("target", "c", "width", "depth", "init", "bias")


def _present(frame: pd.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in frame.columns]


def group_columns(frame: pd.DataFrame, keys) -> list[str]:
    """The columns that identify a group: ``config_id`` (every config value except n and seed, when
    the study stores it) first, then the named keys present (constant within a ``config_id``; they
    label the group). Studies without ``config_id`` group by the named keys alone."""
    return (["config_id"] if "config_id" in frame.columns and "config_id" not in keys else []) + _present(frame, keys)


LAYER_CHOICES = ("selected", "max")
SELECTED_COLUMNS = ("selected_inal", "selected_inal_se", "selected_layer_a", "selected_layer_b")


def has_selected(inal: pd.DataFrame) -> bool:
    """Whether the study stores the selection-free estimate (:mod:`inal_core.inal_summary`)."""
    return all(c in inal.columns for c in SELECTED_COLUMNS) and bool(
        len(inal) and np.isfinite(inal["selected_inal"].astype(np.float64)).any())


def resolve_layer(inal: pd.DataFrame, layer) -> tuple[object, str]:
    """``(layer actually used, note)``: ``"selected"`` falls back to ``"max"`` on studies without the
    selection-free columns, and the note says so."""
    if layer == "selected" and len(inal) and not has_selected(inal):
        return "max", ("this study predates the selection-free columns: the headline is the max over layers, "
                       "biased upward by the choice of layer (+5% at 256 initializations, +16% at 32, depth 1)")
    if layer == "selected":
        return "selected", ("selection-free: the layer chosen on one half of the initializations, its INAL "
                            "measured on the other half, both directions averaged (inal_core.inal_summary)")
    if layer == "max":
        return "max", "max over layers (biased upward by the choice of layer)"
    return int(layer), f"layer {int(layer)}"


def group_label(row, keys) -> str:
    """Short human label ``target c=2 w8 d2 normal`` of a group row."""
    parts = []
    for k in keys:
        if k not in row:
            continue
        v = row[k]
        if k == "target":
            parts.insert(0, str(v))
        elif k == "c":
            parts.append(f"c={v:g}" if isinstance(v, float) else f"c={v}")
        elif k == "width":
            parts.append(f"w{v}")
        elif k == "depth":
            parts.append(f"d{v}")
        elif k == "bias":
            parts.append("" if bool(v) else "nobias")
        else:
            parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(p for p in parts if p)


def inal_rows(inal: pd.DataFrame, layer="selected") -> pd.DataFrame:
    """One ``inal`` row per INAL setting with ``inal, inal_se`` those of ``layer`` (see
    :func:`inal_points`; ``"selected"`` falls back to ``"max"`` as :func:`resolve_layer` says)."""
    layer, _ = resolve_layer(inal, layer)
    if layer == "max":
        rows = inal[inal["is_max"].astype(bool)]
    elif layer == "selected":
        rows = inal[inal["is_max"].astype(bool)].copy()       # one row per setting, carrying the columns
        rows["inal"], rows["inal_se"] = rows["selected_inal"], rows["selected_inal_se"]
        for end in ("lo", "hi", "hi99"):  # the selection-free value's bootstrap-t interval, where stored
            rows[f"inal_boot_{end}"] = rows.get(f"selected_inal_boot_{end}", np.nan)
    else:
        rows = inal[inal["layer"] == int(layer)]
    if "inal_id" in rows.columns:  # one setting stored in two studies of a root: the same numbers, once
        rows = rows.drop_duplicates(["inal_id", "layer"])
    return rows


def inal_points(inal: pd.DataFrame, *, layer="selected", group_keys=INAL_GROUP_KEYS,
                resolve_z: float = 2.0) -> pd.DataFrame:
    """One row per (group, n): combined estimate and whether it is resolved.

    Parameters
    ----------
    inal : DataFrame
        The ``inal`` dataset (:func:`analysis.load.load_inal`).
    layer : "selected", "max" or int
        ``"selected"`` (default): the selection-free estimate (``selected_inal``; falls back to
        ``"max"`` on studies without it, :func:`resolve_layer`); ``"max"``: the rows flagged
        ``is_max`` (the plug-in max over layers, biased upward); an int: that layer (1-based; the
        output layer is ``depth + 1``).
    group_keys : sequence of str
        Columns identifying a curve ``INAL(n)``; absent ones are ignored.
    resolve_z : float
        A point is resolved when ``inal > resolve_z * inal_se``.

    Returns
    -------
    DataFrame with the group keys and ``n, inal, inal_se, n_estimates, resolved, upper``
    (``upper = inal + resolve_z * inal_se``), ``inal_lo, inal_hi`` (95 %: a single estimate's
    calibrated interval, :func:`analysis.inal_intervals.calibrated_layer_intervals` — for the output
    neuron the last hidden layer's shifted by ``output_offset`` — or, for ``"selected"``, the
    selection-free value's :func:`analysis.inal_intervals.reported_interval`; a combination of
    estimates: the scaled chi-square interval), ``log_n, log_inal, log_se`` (bias-corrected
    log INAL and its standard deviation under the same model, :func:`analysis.inal_intervals.log_inal`;
    NaN when unresolved).
    """
    keys = group_columns(inal, group_keys)
    cols = keys + ["n", "inal", "inal_se"]
    if len(inal) == 0:
        return pd.DataFrame(columns=cols + ["n_estimates", "resolved", "upper", "inal_lo", "inal_hi", "log_n",
                                            "log_inal", "log_se"])
    resolved_layer, _ = resolve_layer(inal, layer)
    inal = inal.copy()   # each row's calibrated interval: its layer's, or the selection-free value's
    if len(inal):
        inal["_cal_lo"], inal["_cal_hi"] = (selected_interval(inal) if resolved_layer == "selected"
                                            else calibrated_layer_intervals(inal)[:2])
    else:
        inal["_cal_lo"] = inal["_cal_hi"] = np.nan
    rows = inal_rows(inal, layer).copy()
    rows = rows[np.isfinite(rows["inal"]) & np.isfinite(rows["inal_se"])]

    def combine(g: pd.DataFrame) -> pd.Series:
        se = g["inal_se"].to_numpy(dtype=np.float64)
        val = g["inal"].to_numpy(dtype=np.float64)
        cal = (np.nan, np.nan)
        if len(g) == 1:  # a single estimate keeps its calibrated interval; a combination has the chi-square one
            cal = (float(g["_cal_lo"].iloc[0]), float(g["_cal_hi"].iloc[0]))
        if np.all(se > 0):
            w = 1.0 / se**2
            est, est_se = float(np.sum(w * val) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w)))
        else:  # an exact (zero-variance) estimate wins
            exact = val[se == 0]
            est, est_se = float(np.mean(exact)), 0.0
        return pd.Series({"inal": est, "inal_se": est_se, "n_estimates": len(g), "cal_lo": cal[0],
                          "cal_hi": cal[1]})

    pts = (rows.groupby(keys + ["n"], dropna=False, sort=True)[["inal", "inal_se", "_cal_lo", "_cal_hi"]]
           .apply(combine).reset_index())
    pts["n_estimates"] = pts["n_estimates"].astype(np.int64)
    pts["resolved"] = pts["inal"] > resolve_z * pts["inal_se"]
    pts["upper"] = pts["inal"].clip(lower=0.0) + resolve_z * pts["inal_se"]
    chi_lo, chi_hi = reported_interval(pts["inal"].to_numpy(np.float64), pts["inal_se"].to_numpy(np.float64))
    cal_lo, cal_hi = pts.pop("cal_lo").to_numpy(np.float64), pts.pop("cal_hi").to_numpy(np.float64)
    single = np.isfinite(cal_lo) & np.isfinite(cal_hi)
    pts["inal_lo"], pts["inal_hi"] = np.where(single, cal_lo, chi_lo), np.where(single, cal_hi, chi_hi)
    pts["log_n"] = np.log(pts["n"].astype(np.float64))
    log_g, log_sd = log_inal(pts["inal"].to_numpy(np.float64), pts["inal_se"].to_numpy(np.float64))
    pts["log_inal"] = np.where(pts["resolved"], log_g, np.nan)
    pts["log_se"] = np.where(pts["resolved"], log_sd, np.nan)
    return pts


def fit_inal_exponents(inal: pd.DataFrame, *, layer="selected", level: float = 0.95,
                       group_keys=INAL_GROUP_KEYS, resolve_z: float = 2.0,
                       min_points: int = 3, ci: str = "residual", p_min: float = 0.01) -> pd.DataFrame:
    """Fit ``log INAL = a - ĉ log n`` per group; one row per group.

    Columns: the group keys, ``c_nominal``, ``c_hat``, ``c_hat_lo``, ``c_hat_hi`` (interval at
    ``level``, residual-scaled t; see the module docstring), ``c_hat_se``, ``c_hat_ci_known``
    (``[lo, hi]`` trusting the errors), ``intercept``, ``chi2_per_dof``, ``dof``, ``n_points``
    (resolved, fitted), ``n_unresolved``, ``n_fit_min``, ``n_fit_max``, ``status`` (``"fitted"``,
    or why not: fewer than ``min_points`` resolved distinct n), ``method``, ``level``, ``layer``.
    A group with fewer than ``min_points`` resolved points gets NaN exponents. ``ci`` is the
    interval's treatment of the error scale (:data:`analysis.regression.SCALES`; default
    ``"residual"``); exact estimates (zero standard errors) always use the residual scatter.

    Curvature: ``chi2_p_all`` is the chi-square p-value of the weighted line over every resolved n.
    When it is below ``p_min`` (a power law is rejected) the fit is redone from the smallest ``n_min``
    for which the points ``n >= n_min`` (at least ``min_points`` of them) pass; ``fit_rule`` says which
    (``"all n"``, ``"n >= 8: ..."``); ``n_min`` and ``chi2_p`` belong to the fit reported. When no
    ``n_min`` passes, the random-effects fit over all n is reported (``power_law = False``, "not a power
    law over this range"; :func:`analysis.regression.fit_line_random_effects`).

    Multiplicity: ``p_c_nominal`` is the two-sided p-value of ``ĉ = c_nominal`` from the reported fit,
    ``p_c_nominal_holm`` the same after Holm's step-down correction over every fitted group of this
    call (:func:`analysis.regression.holm_adjust`): read at 0.05, the chance of calling any nominal c
    wrong when all are right is at most 5%.
    """
    pts = inal_points(inal, layer=layer, group_keys=group_keys, resolve_z=resolve_z)
    layer, _ = resolve_layer(inal, layer)
    keys = group_columns(pts, group_keys)
    records = []
    if len(pts) == 0:
        return pd.DataFrame(records)
    for key, g in pts.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(keys, key))
        rec["c_nominal"] = float(rec["c"]) if "c" in rec else math.nan
        res = g[g["resolved"]]
        rec.update(n_points=int(len(res)), n_unresolved=int((~g["resolved"]).sum()),
                   n_fit_min=int(res["n"].min()) if len(res) else None,
                   n_fit_max=int(res["n"].max()) if len(res) else None,
                   level=level, layer=str(layer))
        nan_fit = dict(c_hat=math.nan, c_hat_lo=math.nan, c_hat_hi=math.nan, c_hat_se=math.nan,
                       c_hat_ci_known=[math.nan, math.nan], intercept=math.nan,
                       chi2_per_dof=math.nan, dof=0, method="", chi2_p=math.nan, chi2_p_all=math.nan,
                       n_min=None, fit_rule="", power_law=True)
        if res["n"].nunique() < max(min_points, 2):
            rec.update(nan_fit, status=f"too few resolved points ({res['n'].nunique()} < {min_points})")
            records.append(rec)
            continue
        fit, known, p_all, rule = _fit_with_range(res, level=level, ci=ci, p_min=p_min, min_points=min_points)
        rec.update(c_hat=-fit.slope, c_hat_lo=-fit.slope_ci[1], c_hat_hi=-fit.slope_ci[0],
                   c_hat_se=fit.slope_se,
                   c_hat_ci_known=[-known.slope_ci[1], -known.slope_ci[0]] if known else [math.nan] * 2,
                   intercept=fit.intercept,
                   chi2_per_dof=(fit.chi2 / fit.dof) if fit.dof > 0 else math.nan,
                   dof=fit.dof, method=fit.method, status="fitted", chi2_p_all=p_all, **rule)
        records.append(rec)
    out = pd.DataFrame(records)
    if len(out):
        out["p_c_nominal"] = [_p_nominal(r) for _, r in out.iterrows()]
        out["p_c_nominal_holm"] = holm_adjust(out["p_c_nominal"].to_numpy(np.float64))
    return out


def _p_nominal(r) -> float:
    """Two-sided p-value of ``ĉ = c_nominal`` from the reported fit (t with its dof, or normal)."""
    if r.get("status") != "fitted" or not all(math.isfinite(float(r[k])) for k in ("c_hat", "c_hat_se", "c_nominal")) \
            or not r["c_hat_se"] > 0:
        return math.nan
    t = abs(r["c_hat"] - r["c_nominal"]) / r["c_hat_se"]
    dof = r["dof"] if str(r["method"]).endswith("-t") and r["dof"] > 0 else math.inf
    return 2.0 * (1.0 - (student_t_cdf(t, dof) if math.isfinite(dof) else normal_cdf(t)))


def _fit_with_range(res: pd.DataFrame, *, level: float, ci: str, p_min: float, min_points: int):
    """The fit over all resolved n when a power law passes (chi-square p >= ``p_min``); else over the
    smallest ``n >= n_min`` that passes with at least ``min_points`` n; else the random-effects fit over
    all n. Returns ``(fit, known-scale fit or None, chi-square p over all n, rule columns)``."""
    res = res.sort_values("n")
    se = res["log_se"].to_numpy()
    if np.any(se <= 0):  # exact values: no sampling error, the residual scale alone
        fit = fit_line(res["log_n"], res["log_inal"], None, level=level)
        return fit, None, math.nan, dict(chi2_p=math.nan, n_min=int(res["n"].min()), fit_rule="all n (exact values)",
                                         power_law=True)
    fit, diag = fit_line_checked(res["log_n"], res["log_inal"], se, level=level, scale=ci, p_min=p_min,
                                 max_share=1.0)
    p_all = diag.chi2_p
    n_min = int(res["n"].min())
    if diag.trusted:
        known = fit_line(res["log_n"], res["log_inal"], se, level=level, scale="known")
        return fit, known, p_all, dict(chi2_p=p_all, n_min=n_min, fit_rule="all n", power_law=True)
    for cut in sorted(res["n"].unique())[1:]:
        sub = res[res["n"] >= cut]
        if sub["n"].nunique() < max(min_points, 3):
            break
        sub_se = sub["log_se"].to_numpy()
        sub_fit, sub_diag = fit_line_checked(sub["log_n"], sub["log_inal"], sub_se, level=level, scale=ci,
                                             p_min=p_min, max_share=1.0)
        if sub_diag.trusted:
            known = fit_line(sub["log_n"], sub["log_inal"], sub_se, level=level, scale="known")
            return sub_fit, known, p_all, dict(
                chi2_p=sub_diag.chi2_p, n_min=int(cut), power_law=True,
                fit_rule=f"n >= {int(cut)}: over all n a power law is rejected (chi-square p = {p_all:.2g})")
    return fit, None, p_all, dict(chi2_p=p_all, n_min=n_min, power_law=False,
                                  fit_rule=f"not a power law over this range (chi-square p = {p_all:.2g}, and from "
                                           "every n_min): random-effects fit over all n")

