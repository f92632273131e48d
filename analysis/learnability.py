"""Learnability views: does low INAL mean no learning?

The final correlation of training, averaged over seeds per configuration and ``n`` (as in
:func:`analysis.bound_check.bound_points`), beside the INAL of the same target and network at the
same ``n`` (max over layers, :func:`analysis.fits.inal_points`), and learning curves averaged over
seeds per configuration and ``n``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bound_check import BOUND_GROUP_KEYS, bound_points
from .fits import INAL_GROUP_KEYS, inal_points

__all__ = ["learnability_table", "mean_curves", "CURVE_GROUP_KEYS"]

CURVE_GROUP_KEYS = BOUND_GROUP_KEYS + ("n",)


def learnability_table(runs: pd.DataFrame, inal: pd.DataFrame, *, resolve_z: float = 2.0) -> pd.DataFrame:
    """One row per (training configuration, n): ``corr_mean, corr_se, resolved`` (correlation
    distinguishable from 0), ``acc_mean``, and ``inal, inal_se, inal_resolved`` (NaN when the study has
    no INAL for that target, network and n)."""
    pts = bound_points(runs, resolve_z=resolve_z)
    if len(pts) == 0:
        return pts
    ok = runs[runs["status"].astype(str) == "ok"]
    keys = [k for k in BOUND_GROUP_KEYS + ("n",) if k in ok.columns]
    if "acc" in ok.columns and len(ok):
        acc = ok.groupby(keys, dropna=False)["acc"].mean().rename("acc_mean").reset_index()
        pts = pts.merge(acc, on=keys, how="left")
    ipts = inal_points(inal, resolve_z=resolve_z)
    join = [k for k in INAL_GROUP_KEYS + ("n",) if k in pts.columns and k in ipts.columns]
    if len(ipts) and join:
        ipts = ipts[join + ["inal", "inal_se", "resolved"]].rename(columns={"resolved": "inal_resolved"})
        pts = pts.merge(ipts, on=join, how="left")
    else:
        pts["inal"], pts["inal_se"], pts["inal_resolved"] = np.nan, np.nan, False
    return pts


def mean_curves(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Learning curves averaged over the ``ok`` seeds of each (configuration, n) and checkpoint.

    Columns: the configuration keys and ``n``, ``step, corr_mean, corr_se`` (seed scatter
    ``sd/sqrt(S)``; the run's own ``corr_se`` when ``S = 1``), ``n_seeds``.
    """
    if len(runs) == 0 or len(curves) == 0:
        return pd.DataFrame(columns=["step", "corr_mean", "corr_se", "n_seeds"])
    keys = [k for k in CURVE_GROUP_KEYS if k in runs.columns and k != "target"]
    ok = runs[runs["status"].astype(str) == "ok"][["run_id", "target"] + keys]
    merged = curves.drop(columns=[c for c in keys if c in curves.columns]).merge(
        ok, on=["run_id", "target"] if "target" in curves.columns else ["run_id"], how="inner")
    group = ["target"] + keys + ["step"]

    def agg(g: pd.DataFrame) -> pd.Series:
        corr = g["correlation"].to_numpy(dtype=np.float64)
        se = corr.std(ddof=1) / np.sqrt(corr.size) if corr.size > 1 else float(g["correlation_se"].iloc[0])
        return pd.Series({"corr_mean": corr.mean(), "corr_se": se, "n_seeds": corr.size})

    out = merged.groupby(group, dropna=False, sort=True)[["correlation", "correlation_se"]].apply(agg).reset_index()
    out["n_seeds"] = out["n_seeds"].astype(np.int64)
    return out
