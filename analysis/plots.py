"""The report's figures, drawn on ``matplotlib.figure.Figure`` objects (no pyplot state, any backend).

- :func:`plot_inal_scaling`: INAL against n (log-log), fitted lines with ĉ and its interval, the
  nominal slope ``n^{-c}`` dashed; unresolved points as open down-triangles at their upper bound.
- :func:`plot_bound_check`: ``R(n) n^{(c_eff-1)/8}`` against n, one panel per c: the bound says this
  compensated ratio is flat or decreasing; fitted lines and verdicts; upper bounds as down-triangles.
- :func:`plot_corr_vs_inal`: mean final correlation against INAL (log x).
- :func:`plot_learning_curves`: mean correlation against step, one panel per (target, c), one line per n.

Every function returns the Figure (``fig.savefig(path, dpi=...)`` writes a PNG).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .bound_check import BOUND_GROUP_KEYS
from .fits import INAL_GROUP_KEYS, group_label

__all__ = ["plot_inal_scaling", "plot_bound_check", "plot_corr_vs_inal", "plot_learning_curves",
           "plot_fourier_step", "plot_time_to_learn"]

MAX_PANELS = 12
FIXED_C_TARGETS = ("majority", "staircase", "full_parity")   # c is the family's, not a knob: no "c=" titles


def _target_title(target, c) -> str:
    return str(target) if str(target) in FIXED_C_TARGETS else f"{target} c={c:g}"


def _unresolved_handle(ax, color="0.3", marker="v", text="unresolved: upper bound, not fitted"):
    """A legend entry drawn with the very marker the plot uses for unresolved points."""
    return ax.scatter([], [], marker=marker, facecolors="none", edgecolors=color, s=30, label=text)


def _grid(k: int, panel=(4.6, 3.6)) -> tuple[Figure, list]:
    k = max(1, min(k, MAX_PANELS))
    cols = min(3, k)
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[k:]:
        ax.set_visible(False)
    return fig, axes[:k]


def _n_axis(ax, ns) -> None:
    """Log x axis labelled with the n values themselves (plain integers, no 4x10^0)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ns = sorted({int(v) for v in ns})
    if 0 < len(ns) <= 12:
        ax.xaxis.set_major_locator(FixedLocator(ns))
        ax.xaxis.set_major_formatter(_plain_formatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("n")


def _plain_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}")


def _varying(frame: pd.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in frame.columns and frame[k].astype(str).nunique() > 1]


def _empty_figure(message: str) -> Figure:
    fig = Figure(figsize=(6, 2.5), layout="constrained")
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    ax.set_axis_off()
    return fig


def _rows_matching(frame: pd.DataFrame, values: dict) -> pd.DataFrame:
    """The rows of ``frame`` whose columns equal ``values`` (compared as text; keys ``frame`` lacks
    are ignored; an empty frame stays empty)."""
    keys = [k for k in values if k in frame.columns]
    if not len(frame) or not keys:
        return frame
    return frame[np.logical_and.reduce([frame[k].astype(str) == str(values[k]) for k in keys])]


MAX_LEGEND_ENTRIES = 16  # beyond this a legend hides the plot (and takes seconds to lay out): a note instead


def _legend(ax, **kwargs) -> None:
    """``ax.legend(**kwargs)`` when it has at most :data:`MAX_LEGEND_ENTRIES` entries; otherwise a
    one-line note that the curves are listed in the report's tables."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) <= MAX_LEGEND_ENTRIES:
        ax.legend(**kwargs)
        return
    ax.text(0.01, 0.99, f"{len(labels)} curves: no legend (see the report's tables)", transform=ax.transAxes,
            ha="left", va="top", fontsize=7, color="0.3")


def _colors(k: int):
    from matplotlib import colormaps
    cmap = colormaps["tab10"] if k <= 10 else colormaps["viridis"]
    return [cmap(i if k <= 10 else i / max(1, k - 1)) for i in range(k)]


def plot_inal_scaling(points: pd.DataFrame, fits: pd.DataFrame, layer_label: str = "") -> Figure:
    """INAL vs n on log-log axes per target, with fitted and nominal slopes (see module docstring)."""
    if len(points) == 0:
        return _empty_figure("no INAL estimates in this study")
    targets = sorted(points["target"].astype(str).unique())
    fig, axes = _grid(len(targets))
    for ax, target in zip(axes, targets):
        pts_t = points[points["target"].astype(str) == target]
        keys = [k for k in INAL_GROUP_KEYS if k in pts_t.columns and k != "target"]
        label_keys = _varying(pts_t, keys) or [k for k in ("c",) if k in keys]
        groups = list(pts_t.groupby(keys, dropna=False, sort=True)) if keys else [((), pts_t)]
        nominal_drawn = False
        for color, (key, g) in zip(_colors(len(groups)), groups):
            key = key if isinstance(key, tuple) else (key,)
            rec = dict(zip(keys, key))
            res, unres = g[g["resolved"]], g[~g["resolved"]]
            if "inal_lo" in res.columns:   # the reported interval (analysis.inal_intervals): asymmetric
                yerr = np.vstack([res["inal"] - res["inal_lo"], res["inal_hi"] - res["inal"]]).clip(min=0)
            else:
                yerr = res["inal_se"]
            ax.errorbar(res["n"], res["inal"], yerr=yerr, fmt="o", ms=4, color=color, capsize=2)
            if len(unres):
                ax.scatter(unres["n"], unres["upper"], marker="v", facecolors="none", edgecolors=color, s=30)
            label = group_label(rec, label_keys)
            f = _rows_matching(fits, {"target": target, **rec})
            if len(f) and f.iloc[0]["status"] == "fitted":
                row = f.iloc[0]
                ns = np.geomspace(row["n_fit_min"], row["n_fit_max"], 20)
                ax.plot(ns, np.exp(row["intercept"]) * ns ** (-row["c_hat"]), "-", color=color, lw=1.4,
                        label=f"{label}: ĉ={row['c_hat']:.2f} [{row['c_hat_lo']:.2f}, {row['c_hat_hi']:.2f}]")
                c_nom = row["c_nominal"]
                if math.isfinite(c_nom):
                    mid = math.sqrt(row["n_fit_min"] * row["n_fit_max"])
                    y_mid = math.exp(row["intercept"]) * mid ** (-row["c_hat"])
                    ax.plot(ns, y_mid * (ns / mid) ** (-c_nom), "--", color=color, lw=0.9, alpha=0.8,
                            label=None if nominal_drawn else "nominal slope -c (dashed)")
                    nominal_drawn = True
            else:
                ax.plot([], [], "o", color=color, label=f"{label}: not fitted")
        if (~pts_t["resolved"]).any():
            _unresolved_handle(ax)
        _n_axis(ax, pts_t["n"])
        ax.set_yscale("log")
        ax.set_ylabel("INAL (" + (layer_label.split(":")[0] if layer_label else "max over layers") + ")")
        ax.set_title(f"{target}: INAL vs n", fontsize=10)
        _legend(ax, fontsize=7, loc="best")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("INAL scaling (▽ = unresolved: upper bound, not fitted)", fontsize=11)
    return fig


def plot_bound_check(points: pd.DataFrame, checks: pd.DataFrame) -> Figure:
    """``R(n) n^{(c_eff-1)/8}`` vs n per c: flat or decreasing is the bound's shape."""
    if len(points) == 0 or len(checks) == 0:
        return _empty_figure("no training runs in this study: nothing to check against the bound")
    keys = [k for k in BOUND_GROUP_KEYS if k in points.columns and k in checks.columns]
    cs = sorted(checks["c_nominal"].unique())
    fig, axes = _grid(len(cs))
    for ax, c in zip(axes, cs):
        chk_c = checks[checks["c_nominal"] == c]
        label_keys = _varying(chk_c, [k for k in keys if k != "c"]) or ["target"]
        for color, (_, chk) in zip(_colors(len(chk_c)), chk_c.iterrows()):
            g = _rows_matching(points, {k: chk[k] for k in keys})
            c_eff = chk["c_eff"] if math.isfinite(chk["c_eff"]) else 1.0
            comp = g["n"].astype(np.float64) ** ((c_eff - 1.0) / 8.0)
            res = g["resolved"].to_numpy(bool)
            ax.errorbar(g["n"][res], (g["R"] * comp)[res], yerr=(g["R_se"] * comp)[res], fmt="o", ms=4,
                        color=color, capsize=2)
            if (~res).any():
                ax.scatter(g["n"][~res], (g["R_upper"] * comp)[~res], marker="v", facecolors="none",
                           edgecolors=color, s=30)
            label = f"{group_label(chk, label_keys)}: {chk['verdict']}"
            if chk["verdict"] != "unresolved" and "informative" in chk:
                carried = chk.get("sqrtE_slope", 0.0) != 0.0 and chk.get("inal_falls_with_n", True) is not False
                if not chk["informative"]:
                    label += ", uninformative (√E alone)" if carried else ", uninformative"
            if math.isfinite(chk["slope"]):
                ns = np.geomspace(min(chk["n_resolved_values"]), max(chk["n_resolved_values"]), 20)
                ax.plot(ns, np.exp(chk["intercept"]) * ns ** chk["compensated_slope"], "-", color=color,
                        lw=1.3, label=f"{label} (slope {chk['slope']:.2f} [{chk['slope_lo']:.2f}, "
                                      f"{chk['slope_hi']:.2f}] vs {chk['predicted_slope']:.2f})")
                y0 = np.exp(chk["intercept"]) * ns[0] ** chk["compensated_slope"]
                ax.plot(ns, np.full_like(ns, y0), ":", color=color, lw=1.0)
            else:
                ax.plot([], [], "o", color=color, label=label)
        if len(points) and (~points["resolved"].astype(bool)).any():
            _unresolved_handle(ax)
        _n_axis(ax, points.loc[points["c"] == c, "n"] if "c" in points.columns else points["n"])
        ax.set_yscale("log")
        ax.set_ylabel("R(n) · n^((c_eff-1)/8)")
        ax.set_title(f"c = {c:g}: flat (dotted) or falling is consistent", fontsize=10)
        _legend(ax, fontsize=6.5, loc="best")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Bound check: R(n) = |E corr| σ / (γ T √(E A)), compensated by the predicted decay"
                 " (▽ = unresolved: upper bound)", fontsize=10)
    return fig


def plot_corr_vs_inal(table: pd.DataFrame) -> Figure:
    """Mean final correlation against INAL at the same n (log x), one colour per target and c."""
    if len(table) == 0 or "inal" not in table.columns or not np.isfinite(table["inal"]).any():
        return _empty_figure("needs both training runs and INAL estimates")
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    tab = table[np.isfinite(table["inal"])]
    # training settings that vary (T=300 vs T=1200, ...) get their own series: never one colour for both
    cfg = _varying(tab, [k for k in BOUND_GROUP_KEYS if k not in ("target", "c")])
    keys = ["target", "c", *cfg]
    groups = list(tab.groupby(keys, dropna=False, sort=True))
    for color, (key, g) in zip(_colors(len(groups)), groups):
        rec = dict(zip(keys, key))
        target, c = rec["target"], rec["c"]
        label = _target_title(target, c) + (" " + group_label(rec, cfg) if cfg else "")
        x = np.where(g["inal_resolved"].astype(bool), g["inal"], g["inal"].clip(lower=0) + 2 * g["inal_se"])
        filled = g["inal_resolved"].astype(bool).to_numpy()
        ax.errorbar(x[filled], g["corr_mean"][filled], yerr=g["corr_se"][filled], fmt="o", ms=4,
                    color=color, capsize=2, label=label)
        if (~filled).any():
            ax.errorbar(x[~filled], g["corr_mean"][~filled], yerr=g["corr_se"][~filled], fmt="<", ms=5,
                        mfc="none", color=color, capsize=2)
        for xi, yi, ni in zip(x, g["corr_mean"], g["n"]):
            ax.annotate(f"{ni}", (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.axhline(0.0, color="k", lw=0.7)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter
    ax.xaxis.set_minor_formatter(NullFormatter())   # minor labels (3x10^-3, 4x10^-3) collide
    ax.set_xlabel("INAL at n (max over layers; ◁ = upper bound)")
    ax.set_ylabel("final correlation E[f̄ · NN_T] (mean over seeds)")
    ax.set_title("Does low INAL mean no learning? (labels: n)", fontsize=10)
    _legend(ax, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_learning_curves(curves: pd.DataFrame) -> Figure:
    """Mean correlation against step: a panel per (target, c) and training setting, a line per n.

    Training settings that vary within a (target, c) (T, gamma, ...) get a panel each while the
    panels fit (``MAX_PANELS``); beyond that, each (target, c) panel shows its most common setting.
    """
    if len(curves) == 0:
        return _empty_figure("no learning curves in this study")
    cfg = [k for k in BOUND_GROUP_KEYS if k in curves.columns and k not in ("target", "c")]
    keys = ["target", "c"] + _varying(curves, cfg)
    panels = list(curves.groupby(keys, dropna=False, sort=True))
    if len(panels) > MAX_PANELS:
        panels = list(curves.groupby(["target", "c"], dropna=False, sort=True))
    fig, axes = _grid(len(panels))
    for ax, (key, g) in zip(axes, panels):
        target, c = key[0], key[1]
        if cfg:  # several training settings in one panel would mix: show the one with most data
            setting = g.groupby(cfg, dropna=False).size().idxmax()
            setting = setting if isinstance(setting, tuple) else (setting,)
            g = _rows_matching(g, dict(zip(cfg, setting)))
            shown = {k: v for k, v in zip(cfg, setting) if k in ("n_steps", "gamma", "sigma", "width", "depth")}
        else:
            shown = {}
        ns = sorted(g["n"].unique())
        for color, n in zip(_colors(len(ns)), ns):
            h = g[g["n"] == n].sort_values("step")
            ax.plot(h["step"], h["corr_mean"], "-o", ms=2.5, color=color, label=f"n={n}")
            ax.fill_between(h["step"], h["corr_mean"] - h["corr_se"], h["corr_mean"] + h["corr_se"],
                            color=color, alpha=0.2)
        ax.axhline(0.0, color="k", lw=0.7)
        ax.set_xlabel("step")
        ax.set_ylabel("correlation (mean ± se over seeds)")
        extra = " ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in shown.items())
        ax.set_title(f"{_target_title(target, c)}\n{extra}", fontsize=9)
        _legend(ax, fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Learning curves", fontsize=11)
    return fig


def plot_fourier_step(table: pd.DataFrame, fits: pd.DataFrame) -> Figure:
    """``W^{<=k} / (n^{k+1} INAL)`` against n (log-log) per target and c, with its interval: bounded
    (flat or falling) is what the Fourier step of the proof needs."""
    tab = table[np.isfinite(table["ratio"])] if len(table) else table
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    keys = [k for k in ("target", "c", "width", "depth") if k in tab.columns]
    groups = list(tab.groupby(keys, dropna=False, sort=True))
    for color, (key, g) in zip(_colors(len(groups)), groups):
        rec = dict(zip(keys, key))
        g = g.sort_values("n")
        f = _rows_matching(fits, rec)
        verdict = f"; slope {f.iloc[0]['slope']:.2f}: {f.iloc[0]['verdict']}" if len(f) and math.isfinite(
            f.iloc[0]["slope"]) else ""
        yerr = np.vstack([g["ratio"] - g["ratio_lo"], g["ratio_hi"] - g["ratio"]]).clip(min=0)
        ax.errorbar(g["n"], g["ratio"], yerr=yerr, fmt="-o", ms=4, color=color, capsize=2,
                    label=f"{_target_title(rec['target'], rec['c'])} (k={int(g['k'].iloc[0])}){verdict}")
    _n_axis(ax, tab["n"])
    ax.set_yscale("log")
    ax.set_ylabel(r"$W^{\leq k}[f]\ /\ (n^{k+1} \cdot \mathrm{INAL})$")
    ax.set_title("Fourier step: growth in n not rejected where flat or falling", fontsize=10)
    _legend(ax, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_time_to_learn(ttl: pd.DataFrame, fits: pd.DataFrame, inal_points: pd.DataFrame) -> Figure:
    """Left: Kaplan–Meier median T* against n per (target, c), with intervals; ▲ at the last step where
    fewer than half the runs learned (censored: T* lies beyond). Right: median T* against INAL at the
    same n: the INAL below which nothing is learned within the steps run."""
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    keys = [k for k in ("target", "c", "width", "n_steps", "gamma", "sigma") if k in ttl.columns]
    groups = list(ttl.groupby(keys, dropna=False, sort=True))
    inal = {}
    if len(inal_points):
        for _, p in inal_points.iterrows():
            inal[(str(p["target"]), float(p["c"]), int(p["n"]))] = float(p["inal"])
    for color, (key, g) in zip(_colors(len(groups)), groups):
        rec = dict(zip(keys, key))
        g = g.sort_values("n")
        ok = np.isfinite(g["median"]).to_numpy()
        f = _rows_matching(fits, rec)
        expo = f" (T* ~ n^{f.iloc[0]['exponent']:.2f})" if len(f) and math.isfinite(f.iloc[0]["exponent"]) else ""
        label = _target_title(rec["target"], rec["c"]) + expo
        hi = np.where(np.isfinite(g["median_hi"]), g["median_hi"], g["last_step"])
        lo = np.where(np.isfinite(g["median_lo"]), g["median_lo"], g["median"])
        med = g["median"].to_numpy()
        ax.errorbar(g["n"][ok], med[ok], yerr=np.vstack([med[ok] - lo[ok], hi[ok] - med[ok]]).clip(min=0),
                    fmt="-o", ms=4, color=color, capsize=2, label=label)
        if (~ok).any():
            ax.scatter(g["n"][~ok], g["last_step"][~ok], marker="^", facecolors="none", edgecolors=color, s=36)
        x = np.array([inal.get((str(rec["target"]), float(rec["c"]), int(n)), np.nan) for n in g["n"]])
        bx.scatter(x[ok], med[ok], color=color, s=20, label=label)
        if (~ok).any():
            bx.scatter(x[~ok], g["last_step"][~ok], marker="^", facecolors="none", edgecolors=color, s=36)
    _unresolved_handle(ax, marker="^", text="fewer than half learned: T* > last step")
    _n_axis(ax, ttl["n"])
    ax.set_yscale("log")
    ax.set_ylabel("median T* (steps; Kaplan–Meier)")
    ax.set_title("Time to learn against n", fontsize=10)
    _legend(ax, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    if len(inal) and np.isfinite(list(inal.values())).any() and (np.array(list(inal.values())) > 0).any():
        from matplotlib.ticker import NullFormatter
        bx.set_xscale("log")
        bx.set_yscale("log")
        bx.xaxis.set_minor_formatter(NullFormatter())   # minor labels (2x10^-3, 3x10^-3) collide
    else:
        bx.text(0.5, 0.5, "no INAL estimates for these targets", ha="center", va="center", transform=bx.transAxes)
    bx.set_xlabel("INAL at n")
    bx.set_ylabel("median T* (▲: beyond the last step)")
    bx.set_title("Learnability threshold: INAL against time to learn", fontsize=10)
    bx.grid(True, which="both", alpha=0.3)
    thr = ""
    if "threshold" in ttl.columns and len(ttl):
        thr = f" (T* = first checkpoint with correlation ≥ {float(ttl['threshold'].iloc[0]):g})"
    fig.suptitle("Time to learn" + thr, fontsize=11)
    return fig
