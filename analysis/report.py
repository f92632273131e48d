"""``inal-report <results dir> [--out DIR]``: fits, the bound check, figures, report.md and summary.json.

``<results dir>`` is a study directory (holding ``runs/``, ``curves/``, ``inal/``) or a results root
holding several studies. Writes to ``--out`` (default ``<results dir>/report``):

- ``report.md``: what was measured, the figures, and tables of every fit and verdict;
- ``inal_scaling``, ``bound_check``, ``corr_vs_inal``, ``learning_curves``, ``fourier_step``,
  ``time_to_learn`` figures (``--format png,svg,pdf``), each only when the study has data for it;
- ``summary.json``: every fitted exponent, interval, verdict and the numbers behind it;

and prints a short summary table. INAL-only studies (``T = 0``) get the INAL part, training-only
studies the rest. Also runs as ``python -m analysis.report`` (the launcher does, after a study).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweeps.location import Location, is_uri  # pyarrow only: what a results location is

from .bound_check import BOUND_GROUP_KEYS, VERDICTS, bound_points, check_bound, informativeness_text
from .fits import INAL_GROUP_KEYS, fit_inal_exponents, group_label, inal_points, resolve_layer
from .fourier_step import fourier_step_fits, fourier_step_table
from .learnability import learnability_table, mean_curves
from .load import Study, find_study_dirs, load_study
from .regression import SCALES
from .time_to_learn import time_to_learn_aft, time_to_learn_fits, time_to_learn_table

__all__ = ["Analysis", "analyze", "write_report", "summary_dict", "summary_table", "main"]

_CI_TEXT = {
    "residual": "Student-t with m−2 degrees of freedom, scaled by the residual scatter: wide when few n are fitted",
    "birge": "normal quantile, scaled by max(1, χ²/dof)",
    "known": "normal quantile, the standard errors taken as exact",
}
FIGURES = ("inal_scaling", "bound_check", "corr_vs_inal", "learning_curves", "fourier_step", "time_to_learn")
FORMATS = ("png", "svg", "pdf")
TTL_KEYS = tuple(k for k in BOUND_GROUP_KEYS if k not in ("n",))


@dataclass
class Analysis:
    """Everything the report shows, as DataFrames (see the functions that make each)."""

    source: str
    study: Study
    inal_points: pd.DataFrame
    inal_fits: pd.DataFrame
    inal_fits_by_layer: pd.DataFrame
    bound_points: pd.DataFrame
    bound_checks: pd.DataFrame
    learnability: pd.DataFrame
    curves: pd.DataFrame
    settings: dict
    fourier: pd.DataFrame = None
    fourier_fits: pd.DataFrame = None
    ttl: pd.DataFrame = None
    ttl_fits: pd.DataFrame = None
    layer_note: str = ""
    ttl_aft: pd.DataFrame = None


def _filter(frame: pd.DataFrame, column: str, values) -> pd.DataFrame:
    if not values or column not in frame.columns or len(frame) == 0:
        return frame
    return frame[frame[column].astype(str).isin([str(v) for v in values])].reset_index(drop=True)


def load_many(paths, *, targets=(), studies=()) -> Study:
    """Every study under each path, concatenated, filtered to ``targets`` and ``studies`` (empty: all)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    loaded = [load_study(str(p)) for p in paths]
    frames = {}
    for name in ("runs", "curves", "inal"):
        parts = [getattr(st, name) for st in loaded if len(getattr(st, name))]
        frames[name] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (
            parts[0] if parts else getattr(loaded[0], name))
    runs = _filter(_filter(frames["runs"], "target", targets), "study", studies)
    inal = _filter(_filter(frames["inal"], "target", targets), "study", studies)
    curves = frames["curves"]
    if (targets or studies) and len(curves):
        curves = curves[curves["run_id"].isin(set(runs["run_id"]))].reset_index(drop=True)
    return Study(runs=runs, curves=curves, inal=inal)


def analyze(path, *, level: float = 0.95, resolve_z: float = 2.0, min_resolved: int = 3,
            ci: str = "residual", layer="selected", threshold: float = 0.5, targets=(), studies=(),
            **filters) -> Analysis:
    """Load the studies under ``path`` (one path or several; optional filters) and compute every view.

    ``layer``: what the INAL exponent fits use (``"selected"``, ``"max"`` or a layer number;
    :func:`analysis.fits.resolve_layer`); ``threshold``: the correlation that counts as learned for
    the time to learn (:mod:`analysis.time_to_learn`).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not resolve_z > 0:
        raise ValueError(f"resolve_z must be > 0, got {resolve_z!r}")
    if int(min_resolved) < 3:
        raise ValueError(f"min_resolved must be >= 3 (a slope with an interval needs 3 points), got {min_resolved!r}")
    if ci not in SCALES:
        raise ValueError(f"ci must be one of {SCALES}, got {ci!r}")
    if not (layer in ("selected", "max") or (str(layer).isdigit() and int(layer) >= 1)):
        raise ValueError(f"layer must be 'selected', 'max' or a layer number >= 1, got {layer!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    layer = layer if layer in ("selected", "max") else int(layer)
    study = load_many(path, targets=targets, studies=studies) if not filters else load_study(path, **filters)
    used, note = resolve_layer(study.inal, layer)
    ipts = inal_points(study.inal, layer=layer, resolve_z=resolve_z)
    fits = fit_inal_exponents(study.inal, layer=layer, level=level, resolve_z=resolve_z, min_points=min_resolved,
                              ci=ci)
    layers = sorted(int(v) for v in study.inal["layer"].unique()) if len(study.inal) else []
    by_layer = [fit_inal_exponents(study.inal, layer=k, level=level, resolve_z=resolve_z,
                                   min_points=min_resolved, ci=ci) for k in layers]
    by_layer = pd.concat(by_layer, ignore_index=True) if by_layer else pd.DataFrame()
    bpts = bound_points(study.runs, resolve_z=resolve_z)
    checks = check_bound(study.runs, fits, level=level, resolve_z=resolve_z, min_resolved=min_resolved, ci=ci)
    learn = learnability_table(study.runs, study.inal, resolve_z=resolve_z)
    curves = mean_curves(study.runs, study.curves)
    fourier = fourier_step_table(ipts)
    fourier_fits = fourier_step_fits(fourier, INAL_GROUP_KEYS, level=level, min_points=min_resolved)
    ttl = time_to_learn_table(study.runs, study.curves, TTL_KEYS, threshold=threshold, level=level)
    ttl_fits = time_to_learn_fits(ttl, TTL_KEYS, level=level, min_points=min_resolved)
    ttl_aft = time_to_learn_aft(study.runs, study.curves, TTL_KEYS, inal=ipts, threshold=threshold, level=level,
                                min_points=min_resolved)
    settings = {"level": level, "resolve_z": resolve_z, "min_resolved": int(min_resolved), "ci": ci,
                "layer": str(layer), "layer_used": str(used), "threshold": threshold,
                "filters": {**filters, "target": list(targets), "study": list(studies)}}
    src = path if isinstance(path, (str, os.PathLike)) else ", ".join(str(p) for p in path)
    return Analysis(str(src), study, ipts, fits, by_layer, bpts, checks, learn, curves, settings,
                    fourier, fourier_fits, ttl, ttl_fits, note, ttl_aft)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or value is pd.NA:
        return None
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [_jsonable(rec) for rec in frame.to_dict(orient="records")]


def _counts(a: Analysis) -> dict:
    runs = a.study.runs
    status = runs["status"].astype(str).value_counts().to_dict() if len(runs) else {}
    studies = sorted(set(runs.get("study", pd.Series(dtype=str)).astype(str))
                     | set(a.study.inal.get("study", pd.Series(dtype=str)).astype(str)))
    verdicts = a.bound_checks["verdict"].value_counts().to_dict() if len(a.bound_checks) else {}
    return {"studies": studies, "runs": int(len(runs)), "runs_by_status": status,
            "inal_settings": int(a.study.inal["inal_id"].nunique()) if len(a.study.inal) else 0,
            "curve_rows": int(len(a.study.curves)), "inal_groups": int(len(a.inal_fits)),
            "bound_groups": int(len(a.bound_checks)),
            "verdicts": {v: int(verdicts.get(v, 0)) for v in VERDICTS}}


def summary_dict(a: Analysis) -> dict:
    """The JSON summary: settings, counts, every INAL fit (max over layers, and per layer), every
    bound verdict with its points, learnability points."""
    return _jsonable({
        "source": a.source, "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": a.settings, "counts": _counts(a),
        "inal_fits": _records(a.inal_fits), "inal_fits_by_layer": _records(a.inal_fits_by_layer),
        "bound_checks": _records(a.bound_checks),
        "bound_points": _records(a.bound_points), "learnability": _records(a.learnability),
        "layer_note": a.layer_note,
        "fourier_step": _records(a.fourier_fits), "fourier_step_points": _records(a.fourier),
        "time_to_learn": _records(a.ttl), "time_to_learn_fits": _records(a.ttl_fits),
        "time_to_learn_aft": _records(a.ttl_aft) if a.ttl_aft is not None else [],
        "figures": list(a.settings.get("figures", [])),
    })


def _fmt(v, spec=".3g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return format(float(v), spec)
    return str(v)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _inal_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["group", "nominal c", "ĉ", f"{a.settings['level']:.0%} CI", "χ²/dof", "χ² p (all n)",
              "fitted range", "p(ĉ = c), Holm", "points (unresolved)", "n range"]
    rows = []
    for _, r in a.inal_fits.iterrows():
        fitted = r["status"] == "fitted"
        rows.append([group_label(r, ["target", "width", "depth", "init", "bias"]), _fmt(r["c_nominal"]),
                     _fmt(r["c_hat"]), f"[{_fmt(r['c_hat_lo'])}, {_fmt(r['c_hat_hi'])}]",
                     _fmt(r["chi2_per_dof"], ".2f"),
                     f"{_fmt(r.get('chi2_p'), '.2g')} ({_fmt(r.get('chi2_p_all'), '.2g')})",
                     str(r.get("fit_rule", "")) or "–",
                     f"{_fmt(r.get('p_c_nominal'), '.2g')}, {_fmt(r.get('p_c_nominal_holm'), '.2g')}",
                     f"{r['n_points']} ({r['n_unresolved']})",
                     f"{r['n_fit_min']}–{r['n_fit_max']}" if fitted else r["status"]])
    return header, rows


def _bound_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["group", "c", "c_eff", "design", "predicted slope", "slope", f"{a.settings['level']:.0%} CI",
              "√E alone", "|E corr| slope", "detectable excess", "power vs n^+0.3", "χ² p", "max weight (n)",
              "upper bounds below fit", "resolved / unresolved n", "verdict"]
    keys = ["target", "width", "depth", "n_steps", "gamma", "sigma", "A"]
    rows = []
    for _, r in a.bound_checks.iterrows():
        verdict = f"**{r['verdict']}**"
        if r["verdict"] != "unresolved" and "informative" in r:
            verdict += " (informative)" if r["informative"] else " (uninformative)"
        if r["verdict"] != "unresolved" and r.get("power_law") is False:
            verdict += ", not a power law over this range"
        fixed = r.get("N_fixed")
        design = f"N = {int(fixed)} fixed" if fixed is not None and _finite(fixed) else f"N = {r.get('N_spec', '?')}"
        share = r.get("max_weight_share")
        rows.append([group_label(r, [k for k in keys if k in r]), _fmt(r["c_nominal"]), _fmt(r["c_eff"]), design,
                     _fmt(r["predicted_slope"]), _fmt(r["slope"]),
                     f"[{_fmt(r['slope_lo'])}, {_fmt(r['slope_hi'])}]", _fmt(r.get("sqrtE_slope")),
                     f"{_fmt(r.get('corr_slope'))} [{_fmt(r.get('corr_slope_lo'))}, {_fmt(r.get('corr_slope_hi'))}]",
                     _fmt(r.get("detectable_excess")), _fmt(r.get("power_excess"), ".0%") if _finite(
                         r.get("power_excess")) else "–",
                     _fmt(r.get("chi2_p"), ".2g"),
                     f"{share:.0%} (n = {r['max_weight_n']:.0f})" if _finite(share) else "–",
                     str(int(r.get("n_upper_below_fit", 0))), f"{r['n_resolved']} / {r['n_unresolved']}", verdict])
    return header, rows


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _bound_size_rows(r) -> list[str]:
    """Per n of one group: |E corr| ± se beside the bound's right-hand side with constant 1, and their ratio."""
    rows = []
    for p in r.get("bound_table") or []:
        corr = f"{abs(p['corr_mean']):.3g} ± {p['corr_se']:.2g}" + ("" if p["resolved"] else " (unresolved)")
        rows.append([str(p["n"]), corr,
                     _fmt(p["bound_rhs"], ".3g"), _fmt(p["bound_over_corr"], ".2g")])
    return rows


def _fourier_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["group", "k", "n", "W^{<=k}", "INAL", "ratio W/(n^{k+1} INAL)", f"{a.settings['level']:.0%} interval"]
    rows = []
    for _, r in a.fourier.iterrows():
        if not math.isfinite(r.get("ratio", math.nan)):
            continue
        rows.append([group_label(r, ["target", "c", "width", "depth"]), _fmt(r["k"], ".0f"), str(int(r["n"])),
                     _fmt(r["W_le_k"]), _fmt(r["inal"]), _fmt(r["ratio"]),
                     f"[{_fmt(r['ratio_lo'])}, {_fmt(r['ratio_hi'])}]"])
    return header, rows


def _fourier_fit_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["group", "k", "W^{≤k}", "points", "ratio range", "slope of log ratio", f"{a.settings['level']:.0%} CI",
              "growth excluded", "verdict"]
    rows = []
    for _, r in a.fourier_fits.iterrows():
        verdict = f"**{r['verdict']}**"
        if r.get("equals_inal_fit"):
            verdict += " (W^{≤k} = 1: slope = ĉ − (k+1), the INAL fit restated)"
        growth = r.get("growth_excluded")
        rows.append([group_label(r, ["target", "c", "width", "depth"]), _fmt(r["k"]),
                     f"{_fmt(r.get('W_le_k_min'))}–{_fmt(r.get('W_le_k_max'))}", str(r["n_points"]),
                     f"{_fmt(r['ratio_min'])}–{_fmt(r['ratio_max'])}", _fmt(r["slope"]),
                     f"[{_fmt(r['slope_lo'])}, {_fmt(r['slope_hi'])}]",
                     f"faster than n^{growth:+.2f}" if _finite(growth) else "–", verdict])
    return header, rows


def _ttl_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["group", "n", "runs", "learned", "median T*", f"{a.settings['level']:.0%} CI", "INAL at n"]
    inal = {}
    if len(a.inal_points):
        for _, p in a.inal_points.iterrows():
            inal[(str(p["target"]), float(p["c"]), int(p["n"]))] = p["inal"]
    rows = []
    for _, r in a.ttl.iterrows():
        med = _fmt(r["median"], ".0f") if math.isfinite(r["median"]) else f"> {r['last_step']:.0f}"
        rows.append([group_label(r, ["target", "c", "width", "n_steps", "gamma", "sigma"]), str(int(r["n"])),
                     str(r["n_runs"]), str(r["n_learned"]), med,
                     f"[{_fmt(r['median_lo'], '.0f')}, {_fmt(r['median_hi'], '.0f')}]",
                     _fmt(inal.get((str(r["target"]), float(r["c"]), int(r["n"])), math.nan))])
    return header, rows


def _ttl_aft_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    lvl = f"{a.settings['level']:.0%}"
    header = ["group", "runs used / ok", "censored", "b (log-normal)", f"{lvl} CI", "b (Weibull)",
              "log-lik LN / W", "T* vs INAL", "status"]
    rows = []
    for _, r in a.ttl_aft.iterrows():
        rows.append([group_label(r, ["target", "c", "width", "n_steps", "gamma", "sigma"]),
                     f"{r['n_runs']} / {r['n_ok_runs']}", str(r["n_censored"]), _fmt(r["exponent"]),
                     f"[{_fmt(r['exponent_lo'])}, {_fmt(r['exponent_hi'])}]",
                     f"{_fmt(r['weibull_exponent'])} [{_fmt(r['weibull_lo'])}, {_fmt(r['weibull_hi'])}]",
                     f"{_fmt(r['loglik_lognormal'], '.1f')} / {_fmt(r['loglik_weibull'], '.1f')}",
                     f"{_fmt(r['inal_exponent'])} [{_fmt(r['inal_exponent_lo'])}, {_fmt(r['inal_exponent_hi'])}]",
                     str(r["status"])])
    return header, rows


def summary_table(a: Analysis) -> str:
    """A short plain-text table for the console."""
    out = []
    c = _counts(a)
    status = ", ".join(f"{v} {k}" for k, v in c["runs_by_status"].items())
    out.append(f"{a.source}: {c['runs']} runs{f' ({status})' if status else ''}, {c['inal_settings']} INAL settings")
    for _, r in a.inal_fits.iterrows():
        out.append(f"  INAL  {group_label(r, ['target', 'width', 'depth', 'init']):<32} c={_fmt(r['c_nominal']):<5}"
                   f" ĉ={_fmt(r['c_hat'])} [{_fmt(r['c_hat_lo'])}, {_fmt(r['c_hat_hi'])}]")
    for _, r in a.bound_checks.iterrows():
        out.append(f"  BOUND {group_label(r, ['target', 'width', 'n_steps', 'gamma', 'sigma']):<32}"
                   f" c_eff={_fmt(r['c_eff']):<5} slope={_fmt(r['slope'])} [{_fmt(r['slope_lo'])},"
                   f" {_fmt(r['slope_hi'])}] pred<={_fmt(r['predicted_slope'])}  {r['verdict']}")
    if len(a.bound_checks):
        out.append(f"  verdicts: {c['verdicts']}")
    return "\n".join(out)


def _headline(a: Analysis) -> str:
    """One paragraph: how many exponents match their nominal c, and the verdict counts."""
    parts = []
    fitted = a.inal_fits[a.inal_fits["status"] == "fitted"] if len(a.inal_fits) else a.inal_fits
    if len(fitted):
        inside = ((fitted["c_hat_lo"] <= fitted["c_nominal"]) & (fitted["c_nominal"] <= fitted["c_hat_hi"]))
        off = [f"{group_label(r, ['target', 'c'])} (ĉ = {r['c_hat']:.2f})" for _, r in fitted[~inside].iterrows()]
        parts.append(f"{len(fitted)} INAL exponents fitted; the nominal c lies inside the {a.settings['level']:.0%} "
                     f"interval of ĉ for {int(inside.sum())}" + (f"; not for {', '.join(off)}." if off else "."))
        if "p_c_nominal_holm" in fitted:
            alpha = 1 - a.settings["level"]
            holm = fitted[fitted["p_c_nominal_holm"] < alpha]
            names = [f"{group_label(r, ['target', 'c'])} (Holm p = {r['p_c_nominal_holm']:.2g})"
                     for _, r in holm.iterrows()]
            parts.append(f"Compared with the nominal c across all {len(fitted)} groups at family-wise "
                         f"{alpha:.0%} (Holm's correction): " + (f"ĉ differs for {', '.join(names)}." if names
                                                                 else "no ĉ differs."))
        moved = fitted[fitted.get("fit_rule", pd.Series("all n", index=fitted.index)).astype(str)
                       .str.startswith(("n >=", "not a power law"))] if "fit_rule" in fitted else fitted.iloc[0:0]
        if len(moved):
            parts.append("Power law rejected over all n (χ² p < 0.01) for " + "; ".join(
                f"{group_label(r, ['target', 'c'])}: {r['fit_rule']}" for _, r in moved.iterrows()) + ".")
    elif len(a.study.inal):
        parts.append("No INAL exponent could be fitted (too few resolved n values).")
    if len(a.bound_checks):
        v = _counts(a)["verdicts"]
        tested = a.bound_checks[a.bound_checks["verdict"] != "unresolved"]
        n_inf = int(tested["informative"].sum()) if "informative" in tested else 0
        parts.append(f"Bound check over {len(a.bound_checks)} groups: {v['consistent']} consistent, "
                     f"{v['violated']} violated, {v['unresolved']} unresolved; of the {len(tested)} tested, "
                     f"{n_inf} informative and {len(tested) - n_inf} carried by √E alone (uninformative).")
    return " ".join(parts) or "Nothing to analyze: the study holds no INAL estimates and no runs."


def _bound_headlines(a: Analysis) -> list[str]:
    """One line per bound-check group: the verdict, whether it is informative, with the numbers."""
    out = []
    for _, r in a.bound_checks.iterrows():
        label = group_label(r, ["target", "c", "width", "n_steps", "gamma", "sigma"])
        if r["verdict"] == "unresolved":
            out.append(f"- **{label}: unresolved** — {r['reason']}")
            continue
        fit_note = ""
        if r.get("weighted_fit_trusted") is False:
            fit_note = (" (not a power law over this range" if r.get("power_law") is False else " (") + \
                f"{': ' if r.get('power_law') is False else ''}{r['not_trusted_because']}; random-effects fit)"
        vac = (f" The bound's right-hand side γT√(EA)/σ·n^(−(c_eff−1)/8) (constant 1) is "
               f"{r['bound_over_corr_min']:.2g}–{r['bound_over_corr_max']:.2g} times the measured |E corr| at the "
               "resolved n." if _finite(r.get("bound_over_corr_min")) else "")
        diag = (f" Diagnostics: χ² p = {_fmt(r.get('chi2_p'), '.2g')}, largest weight share "
                f"{_fmt(r.get('max_weight_share'), '.0%')}, unresolved points with upper bounds below the fit: "
                f"{int(r.get('n_upper_below_fit', 0))}.")
        out.append(f"- **{label}: {r['verdict']}, {'informative' if r['informative'] else 'uninformative'}** — "
                   f"{r.get('design', '')}. Slope {r['slope']:.3f} [{r['slope_lo']:.3f}, "
                   f"{r['slope_hi']:.3f}]{fit_note} "
                   f"vs predicted ≤ {r['predicted_slope']:.3f}; {informativeness_text(r)}.{vac}{diag}")
    return out


def _available_figures(a: Analysis) -> list[str]:
    """The figures this study has data for: no placeholder figures (an INAL-only study gets no bound plot)."""
    has_runs, has_inal = len(a.study.runs) > 0, len(a.inal_points) > 0
    out = []
    if has_inal:
        out.append("inal_scaling")
    if len(a.bound_checks):
        out.append("bound_check")
    if len(a.learnability) and "inal" in a.learnability and np.isfinite(a.learnability["inal"]).any():
        out.append("corr_vs_inal")
    if has_runs and len(a.curves):
        out.append("learning_curves")
    if a.fourier is not None and len(a.fourier) and np.isfinite(a.fourier.get("ratio", pd.Series(dtype=float))).any():
        out.append("fourier_step")
    if a.ttl is not None and len(a.ttl):
        out.append("time_to_learn")
    return out


def _report_markdown(a: Analysis, ext: str = "png") -> str:
    c = _counts(a)
    lvl = f"{a.settings['level']:.0%}"
    figs = set(a.settings.get("figures", _available_figures(a)))

    def fig(name: str, alt: str) -> list[str]:
        return [f"![{alt}]({name}.{ext})", ""] if name in figs else []

    status = ", ".join(f"{v} {k}" for k, v in c["runs_by_status"].items())
    md = ["# INAL study report", "",
          f"Source: `{a.source}` — studies {', '.join(c['studies']) or '(none)'}; {c['runs']} training runs"
          f"{f' ({status})' if status else ''}; {c['inal_settings']} INAL settings. Generated "
          f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `inal-report`.", "",
          "**At a glance.** " + _headline(a), ""]
    if len(a.bound_checks):
        md += ["**Bound check, per group.** Informative: the verdict needs the correlation itself to decay — a "
               "group with a fixed integer N (E the same at every n) whose target's INAL falls with n by itself "
               "(planted, majority). Uninformative: with N = n², √E(n) alone gives R a slope near −1, below the "
               "prediction for every c < 9, so the verdict is carried by √E(n) and cannot fail; a parity on the "
               "first bits of a fixed N has the same INAL at every n and tests nothing (SCIENCE.md §6). Power: "
               "from the fit actually reported.", ""] + _bound_headlines(a) + [""]
    md += ["Statistics: exponents are weighted least-squares slopes in log-log coordinates with "
           f"{lvl} intervals ({_CI_TEXT[a.settings['ci']]}, the scale factor floored at 1; `analysis/regression.py`). "
           f"Points within {a.settings['resolve_z']:g} standard errors of zero are unresolved: shown as ▽ "
           "upper bounds and never fitted.", ""]
    md += ["## INAL against n", ""]
    if len(a.inal_fits):
        md += [f"Fitted quantity: {a.layer_note} (`--layer {a.settings.get('layer', 'selected')}`). Each point is "
               "modelled as a scaled chi-square (INAL is a mean of squared correlations, right-skewed): the "
               "fit uses the bias-corrected log and its variance under that model. A point's 95% interval is the "
               "hull of that model's interval and the bootstrap-t interval the job stored, its upper end at the "
               "1% tail where stored (heavy-tailed targets); the output neuron's is its last hidden layer's "
               "shifted by v_b E[f]^2 (`analysis/inal_intervals.py`).", ""]
        md += fig("inal_scaling", "INAL scaling")
        md += ["Solid: fitted power law with the measured exponent ĉ; dashed: the nominal slope −c.", "",
               _markdown_table(*_inal_rows(a)), ""]
    else:
        md += ["No INAL estimates in this study.", ""]
    md += ["## The bound: R(n) · n^((c_eff−1)/8)", ""]
    if len(a.bound_checks):
        md += fig("bound_check", "bound check")
        md += ["R(n) = |E corr_T| σ / (γ T √(E A)) with E corr_T the mean over seeds. The bound predicts a "
               "log-log slope ≤ −(c_eff−1)/8, c_eff = min(c, lower limit of ĉ): the compensated ratio plotted "
               "here should be flat (dotted) or falling. *Violated* means the slope's lower "
               f"{lvl} limit lies above the prediction (a one-sided test at {(1 - a.settings['level']) / 2:.1%}); "
               f"*unresolved* means fewer than {a.settings['min_resolved']} resolved n values or no testable "
               f"exponent. {c['bound_groups']} groups tested: {c['verdicts']}. With many groups, an "
               "occasional *violated* at this level is expected by chance. \"√E alone\": the slope of "
               "−log √E(n), what R's slope would be with a constant correlation; \"detectable excess\": the "
               "smallest slope excess over the prediction the test detects with 80% power.", "",
               _markdown_table(*_bound_rows(a)), ""]
        reasons = [f"- {group_label(r, ['target', 'c', 'width', 'n_steps', 'gamma', 'sigma'])}: {r['reason']}"
                   for _, r in a.bound_checks.iterrows()]
        md += ["Reasons:", ""] + reasons + [""]
        md += ["**How vacuous the bound is.** Per group and n: the measured |E corr_T| (± its seed standard error) "
               "beside the bound's right-hand side γ T √(E A)/σ · n^(−(c_eff−1)/8) with the unknown constant "
               "taken as 1, and their ratio.", ""]
        for _, r in a.bound_checks.iterrows():
            rows = _bound_size_rows(r)
            if rows:
                label = group_label(r, ['target', 'c', 'width', 'n_steps', 'gamma', 'sigma'])
                md += [f"*{label}* ({r.get('design', '')}):",
                       "", _markdown_table(["n", "|E corr|", "bound (constant 1)", "bound / |E corr|"], rows), ""]
    else:
        md += ["No training runs in this study (T = 0 means INAL only): no bound to check.", ""]
    md += ["## The Fourier step: W^{≤k} ≤ O(n^{k+1}) · INAL", ""]
    if a.fourier_fits is not None and len(a.fourier_fits):
        md += fig("fourier_step", "Fourier step")
        md += ["Exact spectrum of each target (fast Walsh–Hadamard transform) against its measured INAL; k is "
               "the target's lowest degree with Fourier weight. *Not rejected*: the slope of log ratio against "
               f"log n has a {lvl} interval reaching 0 or below (no growth shown over this range of n, not a proof "
               "of boundedness); \"growth excluded\": the upper limit of that slope, the fastest growth of the ratio "
               "the data rule out. For a parity W^{≤k} = 1, so the slope is ĉ − (k+1) exactly: the check restates "
               "the INAL fit and adds nothing; it says something for majority, staircase and planted targets "
               "(W^{≤k} < 1; `analysis/fourier_step.py`).", "",
               _markdown_table(*_fourier_fit_rows(a)), "", _markdown_table(*_fourier_rows(a)), ""]
    else:
        md += ["Needs INAL estimates at n small enough for an exact spectrum (n ≤ 22).", ""]
    md += ["## Time to learn", ""]
    if a.ttl is not None and len(a.ttl):
        md += fig("time_to_learn", "time to learn")
        md += [f"T*(n): the first checkpoint at which a run's correlation reaches {a.settings['threshold']:g}; runs "
               "that never do are right-censored at their last step. Median T* by Kaplan–Meier with a "
               f"{lvl} log-log Greenwood interval (`analysis/time_to_learn.py`); \"> T\" where fewer than half "
               "the runs learned.", "", _markdown_table(*_ttl_rows(a)), ""]
        if len(a.ttl_fits):
            rows = [[group_label(r, ["target", "c", "width", "n_steps", "gamma", "sigma"]),
                     _fmt(r["exponent"]), f"[{_fmt(r['exponent_lo'])}, {_fmt(r['exponent_hi'])}]",
                     f"{r['n_defined']} ({r['n_censored']} with median beyond the last step)", r["status"]]
                    for _, r in a.ttl_fits.iterrows()]
            md += ["Exponent of the median T* in n (least squares on the n with a defined median; an n whose "
                   "median is beyond the last step is dropped):", "",
                   _markdown_table(["group", "exponent", f"{lvl} CI", "n with a median", "status"], rows), ""]
        if a.ttl_aft is not None and len(a.ttl_aft):
            md += ["Exponent of T* in n from every run, censored ones included: a log-normal accelerated failure "
                   "time model `log T* = a + b log n + sigma W`, fitted by maximum likelihood to each run's "
                   f"passage (interval-censored between checkpoints) or its right-censoring at the last step "
                   f"(`analysis/aft.py`); {lvl} Wald interval of b. The Weibull model's b checks the distributional "
                   f"assumption (the larger log-likelihood fits better; same number of parameters). \"T* vs INAL\": "
                   f"the same model on log INAL in place of log n, T* ∝ INAL^b.", "",
                   _markdown_table(*_ttl_aft_rows(a)), ""]
    else:
        md += ["Needs training runs with learning curves.", ""]
    md += ["## Learnability: final correlation against INAL", ""]
    md += (fig("corr_vs_inal", "correlation vs INAL") if "corr_vs_inal" in figs
           else ["Needs both training runs and INAL estimates of the same targets and networks.", ""])
    md += ["## Learning curves", ""]
    md += fig("learning_curves", "learning curves") if "learning_curves" in figs else ["No learning curves.", ""]
    md += ["Every number above, and the points behind each fit, are in `summary.json`.", ""]
    return "\n".join(md)


def write_report(a: Analysis, out_dir: str, *, dpi: int = 110, formats=("png",)) -> dict[str, str]:
    """Write report.md, the figures (each in every format of ``formats``) and summary.json into
    ``out_dir``; returns their paths. Only figures with data are written."""
    from .plots import (plot_bound_check, plot_corr_vs_inal, plot_fourier_step, plot_inal_scaling,
                        plot_learning_curves, plot_time_to_learn)

    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"format must be a comma-separated subset of {FORMATS}, got {list(formats)}")
    os.makedirs(out_dir, exist_ok=True)
    names = _available_figures(a)
    a.settings["figures"] = names
    a.settings["formats"] = list(formats)
    makers = {
        "inal_scaling": lambda: plot_inal_scaling(a.inal_points, a.inal_fits, layer_label=a.layer_note),
        "bound_check": lambda: plot_bound_check(a.bound_points, a.bound_checks),
        "corr_vs_inal": lambda: plot_corr_vs_inal(a.learnability),
        "learning_curves": lambda: plot_learning_curves(a.curves),
        "fourier_step": lambda: plot_fourier_step(a.fourier, a.fourier_fits),
        "time_to_learn": lambda: plot_time_to_learn(a.ttl, a.ttl_fits, a.inal_points),
    }
    paths = {}
    for name in names:
        fig = makers[name]()
        for ext in formats:
            paths[f"{name}.{ext}"] = os.path.join(out_dir, f"{name}.{ext}")
            fig.savefig(paths[f"{name}.{ext}"], dpi=dpi)
    ext = "png" if "png" in formats else formats[0]
    paths["report.md"] = os.path.join(out_dir, "report.md")
    with open(paths["report.md"], "w", encoding="utf-8") as fh:
        fh.write(_report_markdown(a, ext))
    paths["summary.json"] = os.path.join(out_dir, "summary.json")
    with open(paths["summary.json"], "w", encoding="utf-8") as fh:
        json.dump(summary_dict(a), fh, indent=1, allow_nan=False)
    return paths


def _csv(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inal-report",
                                description="Fits, the bound check, the Fourier step, time to learn, figures, "
                                            "report.md and summary.json of an INAL study (or of every study "
                                            "under a results root, or of several paths together).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", nargs="+", help="study directories or results roots holding studies")
    p.add_argument("--out", default=None,
                   help="output directory, a local path or a URI like the results' (default: <study>/report "
                        "for a local study, ./report-<study> in the current directory for a URI)")
    p.add_argument("--layer", default="selected",
                   help="INAL fitted: selected (selection-free, default; 'max' on studies without it), "
                        "max (max over layers, biased upward), or a layer number 1, 2, ...")
    p.add_argument("--target", default="", help="only these targets (comma-separated), e.g. parity,majority")
    p.add_argument("--study", default="", help="only these studies (comma-separated) of the given paths")
    p.add_argument("--format", default="png", help="figure formats, comma-separated subset of png,svg,pdf")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="correlation that counts as learned, for the time to learn (default 0.5)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of intervals (default 0.95)")
    p.add_argument("--resolve-z", type=float, default=2.0,
                   help="a point is resolved when |value| > z * se (default 2)")
    p.add_argument("--min-resolved", type=int, default=3, help="resolved n values needed for a verdict (>= 3)")
    p.add_argument("--ci", choices=SCALES, default="residual",
                   help="error scale of the intervals: residual (t, scaled by max(1, chi2/dof); default), "
                        "birge (normal, scaled by max(1, chi2/dof)), known (normal, errors as given)")
    p.add_argument("--dpi", type=int, default=110, help="figure resolution (default 110)")
    return p


def _default_out(results_dir: str) -> str:
    """``<results_dir>/report`` for a local path (or ``file://`` URI); ``./report-<name>`` in the
    current directory for a remote URI, ``<name>`` being the last path component (its query left
    out): a report is read on this machine, and is written to the object store only when
    ``--out`` names a URI."""
    location = Location(results_dir)
    if location.is_local:
        return os.path.join(location.path, "report")
    return os.path.join(os.getcwd(), f"report-{location.name}")


def _write_report_to(a: Analysis, out: str, **kwargs) -> dict[str, str]:
    """:func:`write_report` into ``out``: a local directory, or a URI (written in a local temporary
    directory, then copied there with ``pyarrow.fs.copy_files``); the paths written."""
    if not is_uri(out) or Location(out).is_local:
        return write_report(a, Location(out).path if is_uri(out) else out, **kwargs)
    import tempfile

    import pyarrow.fs as pafs

    target = Location(out)
    with tempfile.TemporaryDirectory(prefix="inal-report-") as tmp:
        local = write_report(a, tmp, **kwargs)
        target.fs.create_dir(target.path, recursive=True)
        pafs.copy_files(tmp, target.path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=target.fs)
    return {name: target.child(os.path.basename(path)).text for name, path in local.items()}


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (2 on bad input, nothing written; 1 when a
    location cannot be read or the report cannot be written: one line each)."""
    import matplotlib

    matplotlib.use("Agg")
    args = _parser().parse_args(argv)
    formats = _csv(args.format)
    try:
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"--format: {args.format!r} is not a comma-separated subset of {','.join(FORMATS)}")
        for path in args.results_dir:
            find_study_dirs(path)
        a = analyze(args.results_dir, level=args.level, resolve_z=args.resolve_z,
                    min_resolved=args.min_resolved, ci=args.ci, layer=args.layer, threshold=args.threshold,
                    targets=_csv(args.target), studies=_csv(args.study))
        if (args.target or args.study) and not len(a.study.runs) and not len(a.study.inal):
            raise ValueError(f"--target {args.target or '(any)'} --study {args.study or '(any)'}: "
                             "no runs and no INAL estimates match")
    except (FileNotFoundError, ValueError) as err:
        print(f"inal-report: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a location that cannot be read (an endpoint unreachable, access refused)
        print(f"inal-report: cannot read {' '.join(shlex.quote(str(r)) for r in args.results_dir)}: "
              f"{' '.join(str(err).split())}",
              file=sys.stderr)
        return 1
    out = args.out or _default_out(str(args.results_dir[0]))
    try:
        paths = _write_report_to(a, out, dpi=args.dpi, formats=formats)
    except OSError as err:
        print(f"inal-report: cannot write the report to {shlex.quote(str(out))}: {' '.join(str(err).split())}",
              file=sys.stderr)
        return 1
    print(summary_table(a))
    print(f"report: {paths['report.md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
