"""Time to learn: ``T*(n)``, the first checkpoint at which a run's correlation passes a threshold.

The theorem is about how long noisy GD needs before it correlates with the target. From the curves
(the correlation at every checkpoint), each ``ok`` run gives an event time ``T* = first step with
correlation >= threshold``, or, when it never passes, a right-censored time (its last checkpoint: it
had not learned by then). A mean over the runs that did pass would ignore the ones that did not and
so understate ``T*``; the Kaplan–Meier estimator uses both.

Kaplan–Meier (Kaplan & Meier 1958). With distinct event times ``t_1 < t_2 < ...``, ``d_j`` events
at ``t_j`` and ``r_j`` runs still at risk just before ``t_j`` (not yet passed, not censored before
``t_j``; a run censored at ``t_j`` counts as at risk at ``t_j``),

    S(t) = prod_{t_j <= t} (1 - d_j / r_j),

the probability of not having learned by step ``t``. The median ``T*`` is the first ``t`` with
``S(t) <= 1/2`` (undefined, reported as ``> last step``, when S stays above 1/2).

Interval (Greenwood's variance with the log-log transform, Kalbfleisch & Prentice 2002, §1.4):
``V(t) = sum_{t_j <= t} d_j / (r_j (r_j - d_j))``, ``sigma(t) = sqrt(V(t)) / |log S(t)|``, and the
pointwise band ``S(t)^{exp(± z sigma(t))}``. The median's interval (Brookmeyer & Crowley 1982) is
the set of t at which the band contains 1/2: lower limit the first t whose lower band is
``<= 1/2``, upper limit the first t whose upper band is ``<= 1/2`` (``inf`` when it never is).

Threshold: ``threshold`` (default 0.5) on the correlation, and optionally ``se_multiple``: a
checkpoint passes only if also ``correlation > se_multiple * correlation_se`` (distinguishable from
0). The exponent of ``T*`` in n per group is the least-squares slope of ``log median T*`` on
``log n`` over the n whose median is defined. Each median's standard error on the log scale
combines its interval, ``(log hi - log lo) / (2 z)`` (finite limits only), with the checkpoint
grid's resolution: a run seen passing at checkpoint ``t_j`` passed somewhere in ``(t_{j-1}, t_j]``,
a rounding error of standard deviation ``(t_j - t_{j-1}) / sqrt(12)`` (``resolution`` below), so
``se^2 = se_interval^2 + (resolution / (sqrt(12) median))^2``. Without the second term a median
that every run reaches at the same checkpoint has a zero-width interval, and medians on a regular
grid can fit a line exactly: an exponent with a zero-width interval, which the data do not support.

That exponent drops every n whose median is beyond the last step. :func:`time_to_learn_aft` uses
every run instead, censored ones included: a censored log-normal (and, as a check, Weibull)
accelerated failure time model of ``log T*`` on ``log n`` (:mod:`analysis.aft`); its coefficient is
the exponent the report gives beside Kaplan–Meier.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .aft import fit_aft
from .regression import fit_line

__all__ = ["kaplan_meier", "km_median", "first_passage", "time_to_learn_table", "time_to_learn_fits",
           "time_to_learn_aft"]


def kaplan_meier(times, events):
    """``(t_j, S(t_j), greenwood V(t_j))`` at the distinct event times (module docstring).

    ``times``: event or censoring time per run; ``events``: 1 if the run passed at that time, 0 if
    censored there.
    """
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(events, dtype=bool)
    if t.shape != e.shape:
        raise ValueError("times and events must have the same length")
    uniq = np.unique(t[e])
    surv, var = [], []
    s, v = 1.0, 0.0
    for tj in uniq:
        r = int(np.sum(t >= tj))
        d = int(np.sum((t == tj) & e))
        s *= 1.0 - d / r
        v += d / (r * (r - d)) if r > d else math.inf
        surv.append(s)
        var.append(v)
    return uniq, np.asarray(surv), np.asarray(var)


def km_median(times, events, level: float = 0.95) -> tuple[float, float, float]:
    """``(median, lo, hi)`` of the Kaplan–Meier curve with the log-log Greenwood interval; ``inf``
    where undefined (the curve, or its band, never reaches 1/2)."""
    tj, s, v = kaplan_meier(times, events)
    z = stats.norm.ppf(0.5 * (1.0 + level))
    if tj.size == 0:
        return math.inf, math.inf, math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(s)
        sig = np.sqrt(v) / np.abs(logs)
        upper = np.where(s > 0, s ** np.exp(-z * sig), 0.0)      # s in (0,1): a smaller exponent -> larger
        lower = np.where(s > 0, s ** np.exp(z * sig), 0.0)
    upper = np.where(np.isfinite(upper), upper, np.where(s <= 0, 0.0, 1.0))
    lower = np.where(np.isfinite(lower), lower, 0.0)

    def first(mask):
        idx = np.nonzero(mask)[0]
        return float(tj[idx[0]]) if idx.size else math.inf

    return first(s <= 0.5), first(lower <= 0.5), first(upper <= 0.5)


def first_passage(curves: pd.DataFrame, *, threshold: float = 0.5, se_multiple: float = 0.0) -> pd.DataFrame:
    """Per ``run_id``: ``t_star`` (first passing step, or the last step when censored) and ``event``.

    Vectorized: one sort, then per run the first passing row (``groupby().first()`` on the passing
    rows) and the last row; no Python loop over runs (10^5 runs in about a second).
    """
    if len(curves) == 0:
        return pd.DataFrame(columns=["run_id", "t_star", "event"])
    c = curves[["run_id", "step", "correlation", "correlation_se"]].sort_values(["run_id", "step"], kind="stable")
    corr = c["correlation"].to_numpy(dtype=np.float64)
    se = c["correlation_se"].to_numpy(dtype=np.float64)
    passed = (corr >= threshold) & (corr > se_multiple * np.nan_to_num(se, nan=0.0))
    step = c["step"].to_numpy(dtype=np.float64)
    run_id = c["run_id"].to_numpy()
    last = np.append(run_id[1:] != run_id[:-1], True)                # the last row of each run
    out = pd.DataFrame({"run_id": run_id[last], "t_star": step[last], "event": False})
    hit_rows = pd.DataFrame({"run_id": run_id[passed], "step": step[passed]}).drop_duplicates("run_id")
    first_hit = out["run_id"].map(hit_rows.set_index("run_id")["step"])
    has_hit = first_hit.notna().to_numpy()
    out.loc[has_hit, "t_star"] = first_hit[has_hit].to_numpy(dtype=np.float64)
    out["event"] = has_hit
    return out


def _run_passages(runs: pd.DataFrame, curves: pd.DataFrame, group_keys, *, threshold: float,
                  se_multiple: float) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    """The group keys present, the ``ok`` runs' curves, and per ``ok`` run with a curve its keys,
    ``n``, ``t_star`` and ``event`` (:func:`first_passage`)."""
    ok = runs[runs["status"].astype(str) == "ok"]
    keys = [k for k in group_keys if k in ok.columns]
    mine = curves[curves["run_id"].isin(ok["run_id"])]
    fp = first_passage(mine, threshold=threshold, se_multiple=se_multiple)
    merged = ok[["run_id", *keys, "n"]].drop_duplicates("run_id").merge(fp, on="run_id", how="inner")
    return keys, mine, merged


def time_to_learn_table(runs: pd.DataFrame, curves: pd.DataFrame, group_keys, *, threshold: float = 0.5,
                        se_multiple: float = 0.0, level: float = 0.95) -> pd.DataFrame:
    """One row per (group, n): ``n_runs, n_learned, median, median_lo, median_hi, last_step``,
    ``resolution`` (the median's checkpoint minus the one before it, 0 before the first) and
    ``first_checkpoint``."""
    if len(runs) == 0 or len(curves) == 0:
        return pd.DataFrame()
    keys, mine, merged = _run_passages(runs, curves, group_keys, threshold=threshold, se_multiple=se_multiple)
    positive = mine.loc[mine["step"] > 0, "step"]
    first_checkpoint = float(positive.min()) if len(positive) else math.nan
    grid = np.unique(np.concatenate([[0.0], mine["step"].to_numpy(dtype=np.float64)]))  # the checkpoint steps
    rows = []
    for key, g in merged.groupby(keys + ["n"], dropna=False, sort=True):
        rec = dict(zip(keys + ["n"], key if isinstance(key, tuple) else (key,)))
        med, lo, hi = km_median(g["t_star"], g["event"], level=level)
        below = grid[grid < med] if math.isfinite(med) else grid[:0]
        resolution = float(med - below[-1]) if below.size else math.nan
        rec.update(n_runs=int(len(g)), n_learned=int(g["event"].sum()), median=med, median_lo=lo, median_hi=hi,
                   last_step=float(g["t_star"].max()), first_checkpoint=first_checkpoint, threshold=threshold,
                   resolution=resolution)
        rows.append(rec)
    return pd.DataFrame(rows)


def time_to_learn_fits(table: pd.DataFrame, group_keys, *, level: float = 0.95, min_points: int = 3) -> pd.DataFrame:
    """Per group: exponent of the median ``T*`` in n (module docstring)."""
    if len(table) == 0:
        return pd.DataFrame()
    keys = [k for k in group_keys if k in table.columns]
    z = stats.norm.ppf(0.5 * (1.0 + level))
    out = []
    for key, g in table.groupby(keys, dropna=False, sort=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        ok = g[np.isfinite(g["median"]) & (g["median"] > 0)]
        rec.update(n_defined=int(len(ok)), n_censored=int(len(g) - len(ok)),
                   n_learned_values=sorted(int(v) for v in ok["n"]),
                   exponent=math.nan, exponent_lo=math.nan, exponent_hi=math.nan, status="too few n with a median")
        if ok["n"].nunique() >= min_points:
            se = np.where(np.isfinite(ok["median_lo"]) & np.isfinite(ok["median_hi"]) & (ok["median_lo"] > 0),
                          (np.log(ok["median_hi"].clip(lower=1e-300)) - np.log(ok["median_lo"].clip(lower=1e-300)))
                          / (2 * z), np.nan)
            if "resolution" in ok:  # the checkpoint grid's rounding (module docstring)
                rounding = ok["resolution"].to_numpy(dtype=np.float64) / (math.sqrt(12.0) * ok["median"].to_numpy(
                    dtype=np.float64))
                se = np.where(np.isfinite(se), np.sqrt(np.nan_to_num(se) ** 2 + rounding ** 2), np.nan)
            x, y = np.log(ok["n"].astype(float)), np.log(ok["median"].astype(float))
            good = np.isfinite(se) & (se > 0)
            fit = fit_line(x, y, se if good.all() else None, level=level)
            status = "fitted" + ("" if good.all() else " (unweighted: some medians lack a finite interval)")
            if "first_checkpoint" in ok and np.all(ok["median"] <= ok["first_checkpoint"]):
                status = ("resolution-limited: every run learned by the first checkpoint "
                          f"({float(ok['first_checkpoint'].iloc[0]):.0f}); T* is below it, its exponent unmeasured")
            if status.startswith("resolution-limited"):
                rec.update(status=status)
            else:
                rec.update(exponent=fit.slope, exponent_lo=fit.slope_ci[0], exponent_hi=fit.slope_ci[1], status=status)
        out.append(rec)
    return pd.DataFrame(out)


def _previous_checkpoints(curves: pd.DataFrame, passages: pd.DataFrame) -> np.ndarray:
    """Per row of ``passages``: the run's last checkpoint strictly before its ``t_star`` (0 if none)."""
    c = curves[["run_id", "step"]].merge(passages[["run_id", "t_star"]], on="run_id", how="inner")
    before = c[c["step"].to_numpy(dtype=np.float64) < c["t_star"].to_numpy(dtype=np.float64)]
    prev = before.groupby("run_id", sort=False)["step"].max()
    return passages["run_id"].map(prev).fillna(0.0).to_numpy(dtype=np.float64)


def _no_exponent(n: np.ndarray, event: np.ndarray, lower: np.ndarray, first_checkpoint: float,
                 min_points: int) -> str:
    """Why a group's runs cannot give an exponent of ``T*`` in n before any fit ("" when they can)."""
    if np.unique(n).size < min_points:
        return "too few n"
    if not event.any():
        return "no run learned: every run censored, T* beyond the last step at every n"
    if event.all() and np.all(lower <= 0):  # interval (0, first checkpoint] for every run: no information in n
        return (f"resolution-limited: every run learned by the first checkpoint ({first_checkpoint:.0f}); "
                "T* is below it, its exponent unmeasured")
    learned_at = np.unique(n[event])
    if learned_at.size < 2:  # passages at one n and bounds elsewhere: the slope in log n is not identified
        return (f"too few runs learned: {int(event.sum())} of {len(event)}, all at n = {int(learned_at[0])}; "
                "the exponent is not identified (passages at 2 or more n needed)")
    return ""


def time_to_learn_aft(runs: pd.DataFrame, curves: pd.DataFrame, group_keys, *, inal: pd.DataFrame | None = None,
                      threshold: float = 0.5, se_multiple: float = 0.0, level: float = 0.95,
                      min_points: int = 3) -> pd.DataFrame:
    """Per group: censored accelerated-failure-time fits of ``T*`` on every ``ok`` run (:mod:`analysis.aft`).

    Each run is an event in ``(previous checkpoint, t_star]`` when it passed, right-censored at its
    last step when it did not (a run already passing at step 0 is taken as passing in ``(0, first
    checkpoint]``: ``log T*`` needs ``T* > 0``). Models, each on every run of the group:

    - ``exponent``: log-normal AFT on ``log n`` (the coefficient is the exponent of ``T*`` in n),
      with its Wald interval; ``weibull_exponent`` the same under a Weibull AFT, as a check of the
      distributional assumption (``loglik_*``: both have the same number of parameters).
    - ``inal_exponent``: log-normal AFT on ``log INAL`` instead (``T* ∝ INAL^b``), where ``inal``
      (``analysis.fits.inal_points``: ``target, c, n, inal``) gives a positive INAL at every n of the
      group. Within a group INAL is a function of n, so log n and log INAL are not fitted together.

    A group gets no exponent (``status`` says why) when every run passed by the first checkpoint
    (resolution-limited), when runs passed at fewer than 2 values of n, or when the fit's Wald
    interval is not finite. ``aft_scale`` is the log-normal model's scale of ``log T*``.

    ``n_runs`` counts the runs used (every ``ok`` run with a learning curve, censored ones included);
    ``n_ok_runs`` the group's ``ok`` runs (equal when every run has a curve).
    """
    if len(runs) == 0 or len(curves) == 0:
        return pd.DataFrame()
    keys, mine, merged = _run_passages(runs, curves, group_keys, threshold=threshold, se_multiple=se_multiple)
    if len(merged) == 0:
        return pd.DataFrame()
    positive = mine.loc[mine["step"] > 0, "step"]
    first_checkpoint = float(positive.min()) if len(positive) else math.nan
    merged = merged.assign(lower=_previous_checkpoints(mine, merged))
    at_zero = merged["event"].to_numpy() & (merged["t_star"].to_numpy(dtype=np.float64) <= 0)
    merged.loc[at_zero, "t_star"] = first_checkpoint
    merged.loc[at_zero, "lower"] = 0.0
    inal_at = {}
    if inal is not None and len(inal) and {"target", "c", "n", "inal"} <= set(inal.columns):
        for _, p in inal.iterrows():
            inal_at[(str(p["target"]), float(p["c"]), int(p["n"]))] = float(p["inal"])
    ok = runs[runs["status"].astype(str) == "ok"].drop_duplicates("run_id")
    ok_counts = ok.groupby(keys, dropna=False, sort=True).size() if keys else pd.Series([len(ok)])
    out = []
    for key, g in merged.groupby(keys, dropna=False, sort=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        t = g["t_star"].to_numpy(dtype=np.float64)
        e = g["event"].to_numpy(dtype=bool)
        lo = np.where(e, g["lower"].to_numpy(dtype=np.float64), 0.0)
        n = g["n"].to_numpy(dtype=np.float64)
        rec.update(n_runs=int(len(g)), n_ok_runs=int(ok_counts.get(key, len(g))), n_events=int(e.sum()),
                   n_censored=int((~e).sum()),
                   n_values=sorted(int(v) for v in np.unique(n)), aft_scale=math.nan,
                   exponent=math.nan, exponent_se=math.nan, exponent_lo=math.nan, exponent_hi=math.nan,
                   weibull_exponent=math.nan, weibull_lo=math.nan, weibull_hi=math.nan,
                   loglik_lognormal=math.nan, loglik_weibull=math.nan,
                   inal_exponent=math.nan, inal_exponent_lo=math.nan, inal_exponent_hi=math.nan,
                   status="")
        reason = _no_exponent(n, e, lo, first_checkpoint, min_points)
        if reason:
            rec.update(status=reason)
            out.append(rec)
            continue
        try:
            ln = fit_aft(t, e, {"log_n": np.log(n)}, lower=lo, distribution="lognormal", level=level)
            wb = fit_aft(t, e, {"log_n": np.log(n)}, lower=lo, distribution="weibull", level=level)
        except ValueError as err:
            rec.update(status=f"not fitted: {err}")
            out.append(rec)
            continue
        b, se, b_lo, b_hi = ln.term("log_n")
        wb_b, _, wb_lo, wb_hi = wb.term("log_n")
        if not (math.isfinite(b_lo) and math.isfinite(b_hi)):  # a flat likelihood in b: no interval, no number
            rec.update(status="not identified: the likelihood gives the exponent no finite interval")
            out.append(rec)
            continue
        rec.update(exponent=b, exponent_se=se, exponent_lo=b_lo, exponent_hi=b_hi, aft_scale=ln.sigma,
                   weibull_exponent=wb_b, weibull_lo=wb_lo, weibull_hi=wb_hi,
                   loglik_lognormal=ln.log_likelihood, loglik_weibull=wb.log_likelihood,
                   status="fitted" if ln.converged else "fitted (optimizer did not report convergence)")
        target, c = rec.get("target"), rec.get("c")
        vals = np.array([inal_at.get((str(target), float(c), int(v)), math.nan) for v in n]) \
            if target is not None and c is not None else np.full(n.shape, math.nan)
        if np.all(np.isfinite(vals) & (vals > 0)) and np.unique(vals).size >= min_points:
            try:
                fi = fit_aft(t, e, {"log_inal": np.log(vals)}, lower=lo, distribution="lognormal", level=level)
                _, _, i_lo, i_hi = fi.term("log_inal")
                rec.update(inal_exponent=fi.term("log_inal")[0], inal_exponent_lo=i_lo, inal_exponent_hi=i_hi)
            except ValueError:
                pass
        out.append(rec)
    return pd.DataFrame(out)
