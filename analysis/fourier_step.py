"""The Fourier step of the proof (SCIENCE.md §4), checked on measured INAL.

The theorem's proof passes through ``W^{<=k}[f] <= O(n^{k+1}) INAL(f, NN)``: a target with
low-degree Fourier weight has an initial alignment of at least that weight over ``n^{k+1}``. For
small ``n`` both sides are known: the exact spectrum of the target (fast Walsh–Hadamard transform of
its truth table, :func:`inal_core.fourier.cumulative_weights`) and the measured INAL. The check is
that the ratio

    rho(n) = W^{<=k}[f_n] / (n^{k+1} INAL(n))        (:func:`inal_core.bound.fourier_step_ratio`)

stays bounded as ``n`` grows. ``k`` is the target's lowest degree with Fourier weight
(``W^{=k} > 1e-12``; 1 for majority and staircase, c for a parity of degree c): the first level at
which ``W^{<=k}`` is positive, where the inequality says most.

Interval of ``rho``: INAL's reported interval (the hull of the scaled chi-square and stored
bootstrap-t intervals, :func:`analysis.inal_intervals.reported_interval`) maps to
``[W / (n^{k+1} INAL_hi), W / (n^{k+1} INAL_lo)]`` (the spectrum is exact). Boundedness: the
weighted least-squares slope of ``log rho`` on ``log n`` (log INAL's variance from the same model;
residual-scaled t interval, :func:`analysis.regression.fit_line`): *not rejected* when the slope's
interval reaches 0 or below (the data do not show growth; that is not a proof of boundedness), with
``growth_excluded`` = the slope's upper limit: the data exclude ``rho`` growing faster than
``n^{growth_excluded}`` over this range; *grows* when the lower limit is above 0. Over a finite
range of n this is evidence, not proof: a slowly growing ratio needs a wide range of n to show.

Where the check says something. For a parity ``W^{<=k} = 1`` at every n, so ``log rho = -(k+1) log n
- log INAL`` and the slope is exactly ``ĉ - (k + 1)``: the check *is* the INAL fit, restated
(``equals_inal_fit``; the report says so). It adds information only for targets with ``W^{<=k} < 1``
that changes with n: majority (``W^{=1} -> 2/pi``), staircase, planted (``W^{=1} = p^2``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .regression import fit_line

__all__ = ["MAX_SPECTRUM_BITS", "target_spectrum", "fourier_step_table", "fourier_step_fits"]

MAX_SPECTRUM_BITS = 22


def _params(name: str, text) -> dict:
    """Family parameters the registry accepts, parsed from ``target_params`` (``k=2,subset=first``)."""
    from inal_core.targets import FAMILIES

    family = FAMILIES.get(name)
    if family is None:
        return {}
    # parity's k is c (the registry folds it into c); every other parameter is the family's own
    names = {p for p in family.param_names if not (family.c_rule == "degree" and p == "k")}
    out = {}
    if not isinstance(text, str) or not text or text.startswith("{"):
        return out
    for part in text.split(","):
        if "=" not in part:
            continue
        key, val = part.split("=", 1)
        if key in names:
            try:
                val = int(val)
            except ValueError:
                try:
                    val = float(val)
                except ValueError:
                    pass
            out[key] = val
    return out


def target_spectrum(name: str, n: int, c: float, target_params: str = "") -> tuple[int, float] | None:
    """``(k, W^{<=k})`` for the lowest degree ``k`` with weight, or ``None`` when n is too large or the
    target cannot be rebuilt from its recorded parameters."""
    import torch

    from inal_core.cube import enumerate_cube
    from inal_core.fourier import degree_weights
    from inal_core.targets import make_target

    if n > MAX_SPECTRUM_BITS:
        return None
    try:
        tgt = make_target(name, int(n), c=c, **_params(name, target_params))
    except (ValueError, TypeError):
        try:
            tgt = make_target(name, int(n), c=c)
        except (ValueError, TypeError):
            return None
    values = tgt(enumerate_cube(int(n), dtype=torch.float64))
    w = degree_weights(values).numpy()
    levels = np.nonzero(w[1:] > 1e-12)[0]
    if levels.size == 0:
        return None
    k = int(levels[0]) + 1
    return k, float(np.sum(w[: k + 1]))


def fourier_step_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per INAL point (:func:`analysis.fits.inal_points` output, with ``target, c, n``):
    ``k, W_le_k, ratio, ratio_lo, ratio_hi`` (NaN where the spectrum or INAL is unavailable)."""
    from inal_core.bound import fourier_step_ratio

    if len(points) == 0 or not {"target", "c", "n"} <= set(points.columns):
        return pd.DataFrame()
    spectra = {}
    rows = []
    for _, p in points.iterrows():
        key = (str(p["target"]), int(p["n"]), float(p["c"]), str(p.get("target_params", "")))
        if key not in spectra:
            spectra[key] = target_spectrum(*key)
        spec = spectra[key]
        rec = p.to_dict()
        if spec is None or not p["resolved"]:
            rec.update(k=np.nan, W_le_k=np.nan, ratio=np.nan, ratio_lo=np.nan, ratio_hi=np.nan)
        else:
            k, w = spec
            rec.update(k=k, W_le_k=w, ratio=float(fourier_step_ratio(w, p["n"], k, p["inal"])),
                       ratio_lo=float(fourier_step_ratio(w, p["n"], k, p["inal_hi"])),
                       ratio_hi=float(fourier_step_ratio(w, p["n"], k, p["inal_lo"])))
        rows.append(rec)
    return pd.DataFrame(rows)


def fourier_step_fits(table: pd.DataFrame, group_keys, *, level: float = 0.95, min_points: int = 3) -> pd.DataFrame:
    """Per group: slope of ``log rho`` on ``log n`` with its interval, ``verdict`` (``"not rejected"``,
    ``"grows"``, ``"too few points"``), ``growth_excluded`` (the slope's upper limit), ``W_le_k_min/max``
    and ``equals_inal_fit`` (``W^{<=k} = 1`` at every point: a parity, slope = ĉ − (k+1)); module docstring."""
    if len(table) == 0:
        return pd.DataFrame()
    keys = [k for k in group_keys if k in table.columns]
    out = []
    for key, g in table.groupby(keys, dropna=False, sort=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        g = g[np.isfinite(g["ratio"]) & (g["ratio"] > 0)]
        w_le_k = g["W_le_k"].to_numpy(np.float64) if len(g) else np.array([])
        rec.update(k=int(g["k"].iloc[0]) if len(g) else None, n_points=int(len(g)),
                   ratio_min=float(g["ratio"].min()) if len(g) else math.nan,
                   ratio_max=float(g["ratio"].max()) if len(g) else math.nan,
                   W_le_k_min=float(w_le_k.min()) if len(g) else math.nan,
                   W_le_k_max=float(w_le_k.max()) if len(g) else math.nan,
                   equals_inal_fit=bool(len(g) and np.all(np.abs(w_le_k - 1.0) < 1e-9)),
                   slope=math.nan, slope_lo=math.nan, slope_hi=math.nan, growth_excluded=math.nan,
                   verdict="too few points")
        if g["n"].nunique() >= min_points:
            y = np.log(g["W_le_k"]) - (g["k"] + 1) * np.log(g["n"].astype(float)) - g["log_inal"]
            se = g["log_se"].to_numpy(np.float64)
            fit = fit_line(np.log(g["n"].astype(float)), y, se if np.all(se > 0) else None, level=level)
            rec.update(slope=fit.slope, slope_lo=fit.slope_ci[0], slope_hi=fit.slope_ci[1],
                       growth_excluded=fit.slope_ci[1],
                       verdict="not rejected" if fit.slope_ci[0] <= 0 else "grows")
        out.append(rec)
    return pd.DataFrame(out)
