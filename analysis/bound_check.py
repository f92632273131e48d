"""The empirical check of Theorem 1's scaling (SCIENCE.md §6).

Theorem 1 bounds ``|E[fbar(x) NN_T(x)]| = O(gamma T sqrt(E A) / sigma * n^{-(c-1)/8})``, where the
expectation is over the inputs *and* the algorithm's randomness (initialization, noise). With the
normalized correlation

    R(n) = |E[corr_T](n)| * sigma / (gamma T sqrt(E(n) A))

the bound says ``R(n) <= K n^{-(c-1)/8}``: if ``R`` follows a power law, its log-log slope is at
most ``s_pred = -(c_eff - 1)/8``, with ``c_eff = min(c, lower confidence limit of ĉ)`` (the exponent
the data entitle the bound to; ĉ from :mod:`analysis.fits` for the same target and network).

Points. A point is one ``n`` (and its ``N``, ``E``) of a group with fixed target, c, width, depth,
init, bias, T, gamma, sigma, A, precision, loss, batch and extension: ``E[corr_T]`` is estimated by
the mean of the final correlations over the seeds whose status is ``ok``, and its standard error by
the seed-to-seed scatter ``sd / sqrt(S)`` (which includes the evaluation noise; with a single
seed, that run's ``corr_se``, which misses the seed scatter, and the point says so). This is the
quantity the theorem bounds; fitting seeds one by one and dropping those at the noise floor would
keep only the luckiest seeds at large n and bias the slope upward. Diverged and failed runs are
counted, not used.

Resolution. A point with ``|mean corr| <= z * se`` is *unresolved*: its correlation is consistent
with zero, so it is an upper bound ``R_upper = (|mean| + z se) / prefactor``, plotted and counted as
such and never fitted as a value. ``z = resolve_z`` (default 2) when the error is a run's own
``corr_se``; when it is estimated from S seeds, ``z`` is the Student-t quantile with S-1 degrees of
freedom of the same tail probability (2.65 for S = 6), otherwise noise would pass for signal in
about one point in ten instead of one in twenty.

Fit. Weighted least squares of ``log R`` on ``log n`` over the resolved points with
``se(log R) = se / |mean|``, residual-scaled Student-t interval at ``level``
(:func:`analysis.regression.fit_line`) -- when the weighted fit can be trusted. It is not when its
chi-square p-value is below ``p_min`` (0.01: the points are not on a power law within their errors,
"not a power law over this range") or one point carries more than ``max_share`` (50%) of the weight
(the slope is then that point's neighbourhood). Then the slope, its interval and the power come from
a random-effects fit that adds the scatter the errors do not explain (tau^2) to every point's
variance (:func:`analysis.regression.fit_line_checked`, :func:`analysis.regression.
fit_line_random_effects`), instead of trusting the per-point errors. The diagnostics
(``chi2_p``, ``max_weight_share``, ``n_upper_below_fit``) are reported for every tested group.

Design. ``design`` says which reading applies: a group whose extension N is the same integer at
every n (``N_fixed``) has E, and the whole prefactor, fixed, so the verdict rests on ``|E corr|``;
a group with N = n² has √E(n) ∝ n, which alone gives R a slope near −1 and decides the verdict.
A fixed-N group of a family whose function does not change with n on the first bits of N (parity,
staircase: :data:`FAMILIES_FIXED_IN_N`) has an INAL that does not fall with n: it tests nothing.
``bound_table`` gives, per n, the absolute right-hand side ``gamma T sqrt(E A)/sigma *
n^{-(c_eff-1)/8}`` (the unknown constant taken as 1) beside ``|E corr|``: how vacuous the bound is.

Verdict (one-sided, because the bound is one-sided). The null hypothesis is that the bound holds,
``slope <= s_pred``. It is *violated* only when the data reject it: the lower limit of the slope's
two-sided ``level`` interval lies above ``s_pred`` (a one-sided test at ``(1 - level)/2``, 2.5% by
default). Otherwise, with at least ``min_resolved`` resolved distinct n, it is *consistent*
(``slope_hi <= s_pred`` is reported as ``decay_established``: the data show a decay at least as
fast as predicted, not merely fail to contradict it). *Unresolved* when there are too few resolved
points, or the bound cannot be tested: sigma = 0 (vacuous bound), no finite exponent, or the
INAL fit rejects the theorem's hypothesis (``ĉ_hi < 1``: INAL decays more slowly than ``n^{-1}``).
When ``c_eff < 1`` but the interval of ĉ still reaches 1 (a c = 1 target always has ``ĉ_lo``
somewhat below 1), the test proceeds with the lenient ``s_pred = -(c_eff - 1)/8 > 0``, as the rule
``min(c, ĉ_lo)`` says, and the reason notes it.

Informative or not (the test's power). With γ, T, A, σ fixed in a group, ``log R = log|E corr| -
log sqrt(E(n)) + const``. With the width fixed, √E grows about like n, which alone gives a slope near
−1 over n = 4..20: below ``-(c-1)/8`` for every c < 9. Such a verdict is carried by √E alone: the test
could only fail if the correlation itself *grew* with n. Every group therefore reports the slope
``sqrtE_slope`` that √E alone implies, the slope ``corr_slope`` of ``|E corr|`` itself (with its
interval; ``slope = corr_slope + sqrtE_slope`` exactly), whether the verdict is ``informative``
(a violation would need ``|E corr|`` not to decay: ``s_pred - sqrtE_slope <= 0``), and the power: the
smallest slope excess over ``s_pred`` the one-sided test detects with 80% probability,
``(q + z_0.8) slope_se`` (``detectable_excess``), and ``power_excess``, the power against a slope
excess of 0.3 (|E corr| growing like n^{+0.3} beyond the prediction), both from the fit actually
reported. ``decay_established`` is reported only for an
informative verdict (``decay_by_sqrtE_alone`` otherwise).

Many groups mean many tests: at 2.5% each, about one group in 40 where the bound holds exactly
at equality reads "violated" by chance; the report says how many groups it tested.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from inal_core.bound import bound_prefactor  # numpy only
from sweeps.settings import training_columns  # the table of settings: plain Python, no hydra or pyarrow

from .fits import INAL_GROUP_KEYS, group_columns
from .regression import fit_line, fit_line_checked, normal_cdf, normal_quantile, student_t_cdf, student_t_quantile

__all__ = ["BOUND_GROUP_KEYS", "VERDICTS", "FAMILIES_FIXED_IN_N", "POWER_EXCESS", "bound_points", "check_bound",
           "predicted_slope"]

#: runs agreeing on these differ only in n and seed: every setting that changes what a trained network
#: computes (``sweeps.settings.training_columns``), so a setting added to the table is grouped by too
BOUND_GROUP_KEYS = training_columns()
VERDICTS = ("consistent", "violated", "unresolved")
# Families whose f_n, read on the first n bits of a fixed N, is the same function for every n large
# enough (a parity on the first k bits; a staircase of fixed length): their INAL on the N-bit network
# does not change with n, so a fixed-N check of them tests nothing (SCIENCE.md §6).
FAMILIES_FIXED_IN_N = frozenset({"parity", "staircase"})
# The growth beyond the prediction against which every verdict's power is stated: |E corr| ~ n^{+0.3}
# times the predicted decay (the positive control of tests/test_analysis_bound_power.py).
POWER_EXCESS = 0.3


def predicted_slope(c_eff: float) -> float:
    """The bound's log-log slope of ``R(n)``: ``-(c_eff - 1) / 8``."""
    return -(c_eff - 1.0) / 8.0


def _present(frame: pd.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in frame.columns]


def bound_points(runs: pd.DataFrame, *, group_keys=BOUND_GROUP_KEYS, resolve_z: float = 2.0) -> pd.DataFrame:
    """One row per (group, n, N, E): seed-mean correlation, its error, ``R`` and its resolution.

    Columns: group keys, ``n, N, E, n_runs, n_ok, n_diverged, n_failed, corr_mean, corr_se,
    se_source`` (``"seeds"`` or ``"single-run"``), ``prefactor, R, R_se, resolved, resolve_threshold``
    (the z used), ``R_upper`` (the upper bound ``(|corr_mean| + z corr_se) / prefactor``, for every point), ``log_n,
    log_R, log_R_se`` (NaN when unresolved), ``runs_resolved`` (runs with ``|corr| > resolve_z
    corr_se`` on their own, for information).
    """
    keys = group_columns(runs, group_keys)
    point_keys = keys + [k for k in ("n", "N", "E") if k in runs.columns]
    if len(runs) == 0:
        return pd.DataFrame(columns=point_keys)
    # the same run_id in two studies of one results root is the same computation: count it once
    frame = runs.drop_duplicates("run_id") if "run_id" in runs.columns else runs.copy()
    status = frame["status"].astype(str)
    corr = frame["correlation"].astype(np.float64)
    ok = (status == "ok") & np.isfinite(corr)
    frame["_ok"] = ok.astype(np.int64)
    frame["_diverged"] = (status == "diverged").astype(np.int64)
    frame["_failed"] = (status == "failed").astype(np.int64)
    frame["_corr"] = corr.where(ok)                                     # NaN unless ok: skipped by mean/std
    frame["_corr_se1"] = frame["correlation_se"].astype(np.float64).where(ok)
    frame["_run_resolved"] = (ok & (corr.abs() > resolve_z * frame["correlation_se"].astype(np.float64))).astype(np.int64)
    for col in ("gamma", "n_steps", "A", "sigma"):
        frame[f"_{col}"] = frame[col].astype(np.float64)
    grouped = frame.groupby(point_keys, dropna=False, sort=True)
    pts = grouped.agg(n_runs=("_ok", "size"), n_ok=("_ok", "sum"), n_diverged=("_diverged", "sum"),
                      n_failed=("_failed", "sum"), corr_mean=("_corr", "mean"), _sd=("_corr", "std"),
                      _se1=("_corr_se1", "max"), runs_resolved=("_run_resolved", "sum"),
                      _gamma=("_gamma", "first"), _T=("_n_steps", "first"), _A=("_A", "first"),
                      _sigma=("_sigma", "first"), _E=("E", "first")).reset_index()
    n_ok = pts["n_ok"].to_numpy()
    # a single seed carries only its evaluation error, not the seed-to-seed scatter, and would then
    # dominate a weighted fit: floor its error at the pooled seed scatter of its group (the
    # within-point standard deviation pooled over the group's multi-seed points)
    pts["_dfw"] = np.where(n_ok >= 2, n_ok - 1, 0)
    pts["_ssw"] = np.where(n_ok >= 2, pts["_dfw"] * pts["_sd"].fillna(0.0) ** 2, 0.0)
    pooled = pts.groupby(keys, dropna=False, sort=False)[["_dfw", "_ssw"]].transform("sum") if keys \
        else pts[["_dfw", "_ssw"]].sum().to_frame().T.reindex(pts.index, method="ffill")
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled_sd = np.where(pooled["_dfw"].to_numpy() > 0,
                             np.sqrt(pooled["_ssw"].to_numpy() / pooled["_dfw"].to_numpy()), np.nan)
    single_se = np.where(np.isfinite(pooled_sd), np.fmax(pts["_se1"].to_numpy(), pooled_sd), pts["_se1"])
    pts["corr_se"] = np.where(n_ok >= 2, pts["_sd"] / np.sqrt(np.maximum(n_ok, 1)),
                              np.where(n_ok == 1, single_se, np.nan))
    pts["se_source"] = np.where(n_ok >= 2, "seeds",
                                np.where(n_ok == 1, np.where(np.isfinite(pooled_sd), "single-run+pooled-seed-sd",
                                                             "single-run"), "none"))
    pref = np.asarray(bound_prefactor(pts["_gamma"], pts["_T"], pts["_E"], pts["_A"], pts["_sigma"]),
                      dtype=np.float64)
    usable = np.isfinite(pref) & (pref > 0)
    pts["prefactor"] = pref
    # resolve_z is on the normal scale; a standard error estimated from S seeds has S-1 dof,
    # so the same two-sided tail probability needs the Student-t quantile (2 -> 2.65 at S=6).
    tail = normal_cdf(resolve_z)
    z = np.array([student_t_quantile(tail, int(k) - 1) if k >= 2 else resolve_z for k in n_ok])
    abs_mean, se = pts["corr_mean"].abs().to_numpy(), pts["corr_se"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        pts["R"] = np.where(usable, abs_mean / pref, np.nan)
        pts["R_se"] = np.where(usable, se / pref, np.nan)
        pts["R_upper"] = np.where(usable, (abs_mean + z * se) / pref, np.nan)
    pts["resolve_threshold"] = z
    pts["resolved"] = np.isfinite(abs_mean) & np.isfinite(se) & (abs_mean > z * se) & usable
    pts = pts.drop(columns=[c for c in pts.columns if c.startswith("_")])
    pts["log_n"] = np.log(pts["n"].astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        pts["log_R"] = np.where(pts["resolved"], np.log(pts["R"]), np.nan)
        pts["log_R_se"] = np.where(pts["resolved"], pts["corr_se"] / pts["corr_mean"].abs(), np.nan)
    return pts


def _exponent_lookup(inal_fits: pd.DataFrame | None) -> tuple[list[str], dict[tuple, tuple]]:
    """Keys and ``{(target, c, width, depth, init, bias): (c_hat_lo, c_hat_hi)}`` from ``fit_inal_exponents``."""
    if inal_fits is None or len(inal_fits) == 0:
        return [], {}
    keys = _present(inal_fits, [k for k in INAL_GROUP_KEYS if k != "config_id"])
    return keys, {tuple(_norm(row[k]) for k in keys): (float(row["c_hat_lo"]), float(row["c_hat_hi"]))
                  for _, row in inal_fits.iterrows()}


def _norm(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return str(v)


def _power(res: pd.DataFrame, fit, s_pred: float, *, level: float, ci: str, robust: bool,
           inal_falls: bool) -> dict:
    """What the test could see: the slope √E alone implies, the slope of |E corr|, the smallest violation.

    ``log R = log|E corr| - log sqrt(E) + const`` (γ, T, A, σ fixed in a group), and a least-squares
    slope (weighted or not) is linear in the ordinates, so with the same points and weights ``slope =
    corr_slope + sqrtE_slope`` exactly. ``violation_needs_corr_slope = s_pred - sqrtE_slope`` is the
    log-log slope of ``|E corr|`` in n at which the bound would be met with equality: a violation needs
    the correlation to change faster than that. When it is ``> 0`` the verdict is carried by √E alone
    (*uninformative*): with the width fixed and N = n², √E grows like n and the test can only fail if
    the correlation itself *grows* with n. A fixed-N design of a target whose INAL does not change with
    n (``inal_falls = False``, :data:`FAMILIES_FIXED_IN_N`) is uninformative too. Power, from the fit
    actually reported (weighted, or the random-effects fit when the weighted one is not trusted):
    ``detectable_excess = (q + z_0.8) slope_se`` is the slope excess over ``s_pred`` that the
    one-sided test (quantile ``q`` of the fit) detects with 80 % probability, ``detectable_corr_slope``
    the same on the scale of ``|E corr|``; ``power_excess`` the probability of a *violated* verdict if
    the slope were ``s_pred +`` :data:`POWER_EXCESS` (``P(t_dof > q - excess / slope_se)``, the normal
    when the fit's quantile is normal).
    """
    weighted = bool(np.all(res["log_R_se"] > 0))
    w = 1.0 / res["log_R_se"].to_numpy(dtype=np.float64) ** 2 if weighted else np.ones(len(res))
    if robust:  # the random-effects weights of the reported fit
        w = 1.0 / (res["log_R_se"].to_numpy(dtype=np.float64) ** 2 + fit.tau2)
    x = res["log_n"].to_numpy(dtype=np.float64)
    log_sqrt_e = -0.5 * np.log(res["E"].to_numpy(dtype=np.float64))
    xs = x - np.average(x, weights=w)
    sqrt_e_slope = float(np.sum(w * xs * log_sqrt_e) / np.sum(w * xs * xs))
    if np.ptp(log_sqrt_e) == 0:  # E the same at every n: exactly 0, not rounding noise
        sqrt_e_slope = 0.0
    y = np.log(res["corr_mean"].abs().to_numpy(dtype=np.float64))
    if robust:  # the same weights as the reported fit (its tau^2), so the slopes still add up exactly
        corr = fit_line(x, y, 1.0 / np.sqrt(w), level=level, scale="residual")
    else:
        corr = fit_line(x, y, res["log_R_se"].to_numpy(dtype=np.float64) if weighted else None, level=level,
                        scale=ci if weighted else "residual")
    needs = s_pred - sqrt_e_slope
    q = fit.quantile if math.isfinite(fit.quantile) else math.inf
    excess = (q + normal_quantile(0.8)) * fit.slope_se
    if math.isfinite(fit.slope_se) and fit.slope_se > 0 and math.isfinite(q):
        shift = q - POWER_EXCESS / fit.slope_se
        dof = fit.dof if fit.method.endswith("-t") and fit.dof > 0 else math.inf
        power = 1.0 - student_t_cdf(shift, dof)
    else:
        power = 0.0
    return dict(sqrtE_slope=sqrt_e_slope, corr_slope=corr.slope, corr_slope_lo=corr.slope_ci[0],
                corr_slope_hi=corr.slope_ci[1], violation_needs_corr_slope=needs,
                informative=bool(needs <= 0 and inal_falls), detectable_excess=excess,
                detectable_corr_slope=needs + excess, power_excess=power)


def _design(g: pd.DataFrame, target) -> tuple[str, bool, int | None]:
    """``(design text, INAL of the trained target falls with n, the fixed N or None)`` of one group."""
    n_vals = sorted(set(int(v) for v in g["N"])) if "N" in g else []
    if len(n_vals) == 1 and g["n"].nunique() > 1:
        N = n_vals[0]
        if str(target) in FAMILIES_FIXED_IN_N:
            return (f"fixed N = {N}, but {target} on the first bits of a fixed N is the same function at every n: "
                    "its INAL does not fall with n, so the check tests nothing", False, N)
        return f"fixed N = {N}: E and the prefactor are the same at every n; the verdict rests on |E corr|", True, N
    spec = str(g["N_spec"].iloc[0]) if "N_spec" in g else "varying"
    return (f"N = {spec} grows with n: √E(n) moves the prefactor, and with the width fixed it alone gives R a "
            "slope near −1 (no c < 9 can be violated)", True, None)


def informativeness_text(rec) -> str:
    """One sentence: is the verdict carried by √E alone, and the smallest violation the data could see."""
    if not math.isfinite(rec.get("sqrtE_slope", math.nan)):
        return ""
    if rec["informative"]:
        head = "informative"
    elif rec.get("inal_falls_with_n", True) is False:
        head = "uninformative (the target's INAL on the fixed-N network does not change with n)"
    elif rec["sqrtE_slope"] == 0.0:
        head = ("uninformative (E is fixed, but the predicted slope is > 0: only a |E corr| growing with n "
                "could fail it)")
    else:
        head = "uninformative (carried by √E alone)"
    power = rec.get("power_excess", math.nan)
    power_text = (f"; power against |E corr| growing n^+{POWER_EXCESS:g} beyond the prediction: {power:.0%}"
                  if isinstance(power, float) and math.isfinite(power) else "")
    return (f"{head}: √E alone implies slope {rec['sqrtE_slope']:.3f}, |E corr| has slope "
            f"{rec['corr_slope']:.3f} [{rec['corr_slope_lo']:.3f}, {rec['corr_slope_hi']:.3f}]; a violation "
            f"needs |E corr| to scale faster than n^{rec['violation_needs_corr_slope']:+.3f}; the smallest "
            f"violation detectable with 80% power is a slope excess of {rec['detectable_excess']:.3f} "
            f"(|E corr| ~ n^{rec['detectable_corr_slope']:+.3f}){power_text}")


def _bound_table(g: pd.DataFrame, c_eff: float) -> list[dict]:
    """Per n of a group: ``|E corr|``, its error, and the bound's right-hand side with constant 1."""
    out = []
    for _, p in g.sort_values("n").iterrows():
        rhs = float(p["prefactor"]) * float(p["n"]) ** (-(c_eff - 1.0) / 8.0) if math.isfinite(c_eff) else math.nan
        corr = abs(float(p["corr_mean"]))
        out.append(dict(n=int(p["n"]), corr_mean=float(p["corr_mean"]), corr_se=float(p["corr_se"]),
                        resolved=bool(p["resolved"]), bound_rhs=rhs,
                        bound_over_corr=rhs / corr if corr > 0 and math.isfinite(rhs) else math.nan))
    return out


def check_bound(runs: pd.DataFrame, inal_fits: pd.DataFrame | None = None, *, level: float = 0.95,
                group_keys=BOUND_GROUP_KEYS, resolve_z: float = 2.0, min_resolved: int = 3,
                ci: str = "residual", p_min: float = 0.01, max_share: float = 0.5) -> pd.DataFrame:
    """The verdict per group (see the module docstring for every rule; ``ci`` as in
    :func:`analysis.fits.fit_inal_exponents`).

    Returns one row per group: the group keys, ``c_nominal, c_hat_lo, c_eff, c_source``
    (``"inal_fit"``: ĉ's lower limit is below c and is used; ``"nominal_within_fit"``: the INAL fit
    allows the nominal c, which is used; ``"nominal_no_fit"``: no INAL fit for this group, the nominal
    c is used untested), ``predicted_slope, slope, slope_lo, slope_hi, slope_se,
    compensated_slope`` (``slope + (c_eff - 1)/8``: ``<= 0`` is the bound's shape),
    ``chi2_per_dof, dof, n_resolved, n_unresolved, n_resolved_values`` (list of n),
    ``n_unresolved_values, runs_ok, runs_diverged, runs_failed, decay_established``,
    ``sqrtE_slope, corr_slope, corr_slope_lo, corr_slope_hi, violation_needs_corr_slope, informative,
    decay_by_sqrtE_alone, detectable_excess, detectable_corr_slope`` (:func:`_power`;
    ``decay_established`` is true only for an informative verdict),
    ``power_excess`` (power against a slope excess of :data:`POWER_EXCESS`),
    ``n_upper_below_fit`` (unresolved points whose upper bound lies below the fitted line: in the
    reason whatever the verdict), the weighted fit's diagnostics ``chi2_p, max_weight_share,
    max_weight_n, weighted_fit_trusted, not_trusted_because, power_law`` (``False``: chi-square
    p-value below ``p_min``), ``tau2`` and ``fit_method`` (:func:`analysis.regression.fit_line_checked`:
    when the weighted fit is not trusted, the slope, interval and power come from the random-effects fit),
    ``design, inal_falls_with_n, N_fixed`` (:func:`_design`), ``bound_table`` (per n: ``n, corr_mean,
    corr_se, resolved, bound_rhs`` = the right-hand side ``gamma T sqrt(E A)/sigma * n^{-(c_eff-1)/8}``
    with constant 1, and ``bound_over_corr`` = how many times larger it is than ``|E corr|``),
    ``bound_over_corr_min, bound_over_corr_max`` (over resolved points), ``verdict, reason``.
    """
    pts = bound_points(runs, group_keys=group_keys, resolve_z=resolve_z)
    keys = group_columns(runs, group_keys)
    fit_keys, lookup = _exponent_lookup(inal_fits)
    records = []
    if len(pts) == 0:
        return pd.DataFrame(records)
    for key, g_all in pts.groupby(keys, dropna=False, sort=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        g = g_all
        c_nom = float(rec.get("c", math.nan))
        c_hat_lo, c_hat_hi = lookup.get(tuple(_norm(rec.get(k)) for k in fit_keys), (math.nan, math.nan))
        if math.isfinite(c_hat_lo):
            c_eff, src = min(c_nom, c_hat_lo), ("inal_fit" if c_hat_lo < c_nom else "nominal_within_fit")
        else:
            c_eff, src = c_nom, "nominal_no_fit"
        g = g[g["n_ok"] > 0]  # an n whose runs all failed or diverged is no point at all
        res, unres = g[g["resolved"]], g[~g["resolved"]]
        rec.update(c_nominal=c_nom, c_hat_lo=c_hat_lo, c_hat_hi=c_hat_hi, c_eff=c_eff, c_source=src,
                   predicted_slope=predicted_slope(c_eff) if math.isfinite(c_eff) else math.nan,
                   n_resolved=int(len(res)), n_unresolved=int(len(unres)),
                   n_resolved_values=sorted(int(v) for v in res["n"]),
                   n_unresolved_values=sorted(int(v) for v in unres["n"]),
                   runs_ok=int(g_all["n_ok"].sum()), runs_diverged=int(g_all["n_diverged"].sum()),
                   runs_failed=int(g_all["n_failed"].sum()), level=level,
                   slope=math.nan, slope_lo=math.nan, slope_hi=math.nan, slope_se=math.nan,
                   intercept=math.nan, compensated_slope=math.nan, chi2_per_dof=math.nan, dof=0,
                   decay_established=False, n_upper_below_fit=0,
                   sqrtE_slope=math.nan, corr_slope=math.nan, corr_slope_lo=math.nan, corr_slope_hi=math.nan,
                   violation_needs_corr_slope=math.nan, informative=False, decay_by_sqrtE_alone=False,
                   detectable_excess=math.nan, detectable_corr_slope=math.nan, power_excess=math.nan,
                   chi2_p=math.nan, max_weight_share=math.nan, max_weight_n=math.nan, weighted_fit_trusted=True,
                   not_trusted_because="", power_law=True, fit_method="", tau2=math.nan)
        design, inal_falls, fixed_n = _design(g_all, rec.get("target", ""))
        rec.update(design=design, inal_falls_with_n=inal_falls, N_fixed=fixed_n)
        rec["bound_table"] = _bound_table(g, c_eff)
        resolved_ratio = [p["bound_over_corr"] for p in rec["bound_table"]
                          if p["resolved"] and math.isfinite(p["bound_over_corr"])]
        rec["bound_over_corr_min"] = min(resolved_ratio) if resolved_ratio else math.nan
        rec["bound_over_corr_max"] = max(resolved_ratio) if resolved_ratio else math.nan
        sigma = float(rec["sigma"]) if "sigma" in rec else math.nan
        reason = None
        if not np.all(np.isfinite(g["prefactor"])) or sigma == 0:
            reason = "sigma = 0: the bound is vacuous"
        elif not math.isfinite(c_eff):
            reason = "no finite INAL exponent (fit INAL over n for this target and network)"
        elif c_hat_hi < 1 or (c_nom < 1 and not math.isfinite(c_hat_hi)):
            reason = (f"the theorem needs INAL = O(n^-c) with c >= 1; the INAL fit gives c_hat <= "
                      f"{c_hat_hi if math.isfinite(c_hat_hi) else c_nom:.3g}")
        elif res["n"].nunique() < max(min_resolved, 3):
            reason = f"{res['n'].nunique()} resolved n values < {max(min_resolved, 3)}"
        if reason is None:
            se = res["log_R_se"].to_numpy(dtype=np.float64)
            fit, diag = fit_line_checked(res["log_n"], res["log_R"], se if np.all(se > 0) else None, level=level,
                                         scale=ci, p_min=p_min, max_share=max_share,
                                         names=[f"n = {int(v)}" for v in res["n"]])
            robust = not diag.trusted
            s_pred = rec["predicted_slope"]
            lo, hi = fit.slope_ci
            # upper bounds that contradict the fitted line (the line extrapolated above them)
            below = unres[np.isfinite(unres["R_upper"])]
            n_below = int((np.log(below["R_upper"]) < fit.predict(below["log_n"])).sum())
            rec["n_upper_below_fit"] = n_below
            rec.update(slope=fit.slope, slope_lo=lo, slope_hi=hi, slope_se=fit.slope_se,
                       intercept=fit.intercept, compensated_slope=fit.slope - s_pred,
                       chi2_per_dof=(fit.chi2 / fit.dof) if fit.dof > 0 and not robust else rec["chi2_per_dof"],
                       dof=fit.dof, chi2_p=diag.chi2_p, max_weight_share=diag.max_weight_share,
                       max_weight_n=float(math.exp(diag.max_weight_x)), weighted_fit_trusted=diag.trusted,
                       not_trusted_because=diag.why, power_law=not (math.isfinite(diag.chi2_p) and diag.chi2_p < p_min),
                       fit_method=fit.method, tau2=fit.tau2)
            if robust:  # the weighted fit's chi-square still says how far from a line the points are
                known = fit_line(res["log_n"], res["log_R"], se, level=level, scale="known") if np.all(se > 0) else None
                rec["chi2_per_dof"] = (known.chi2 / known.dof) if known is not None and known.dof > 0 else math.nan
            rec.update(_power(res, fit, s_pred, level=level, ci=ci, robust=robust, inal_falls=inal_falls))
            rec["decay_established"] = bool(hi <= s_pred and rec["informative"])
            rec["decay_by_sqrtE_alone"] = bool(hi <= s_pred and not rec["informative"])
            lenient = (f"; c_eff = {c_eff:.3f} < 1 (c_hat's interval reaches 1): lenient predicted slope"
                       if c_eff < 1 else "")
            fit_note = ""
            if robust:
                fit_note = ((" (not a power law over this range: " if not rec["power_law"] else " (")
                            + f"{diag.why}; random-effects fit, tau^2 = {fit.tau2:.3g})")
            if lo > s_pred:
                verdict = "violated"
                reason = (f"slope {fit.slope:.3f}, {level:.0%} CI [{lo:.3f}, {hi:.3f}]{fit_note} lies above the "
                          f"predicted {s_pred:.3f}{lenient}")
            else:
                verdict = "consistent"
                reason = (f"slope {fit.slope:.3f}, {level:.0%} CI [{lo:.3f}, {hi:.3f}]{fit_note} reaches "
                          f"the predicted {s_pred:.3f} or below{lenient}")
            if n_below:
                reason += (f"; {n_below} unresolved point(s) have upper bounds below the fitted line"
                           + (", so the rise does not continue there" if verdict == "violated" else ""))
            reason += "; " + informativeness_text(rec)
        else:
            verdict = "unresolved"
        rec.update(verdict=verdict, reason=reason)
        records.append(rec)
    return pd.DataFrame(records)
