"""``inal-report <results dir> [--out DIR]``: fits, the bound check, figures, report.md and summary.json.

``<results dir>`` is a study directory (holding ``runs/``, ``curves/``, ``inal/``) or a results root
holding several studies. Writes to ``--out`` (default ``<results dir>/report``):

- ``report.md``: what was measured, the figures, and tables of every fit and verdict;
- ``inal_scaling.png``, ``bound_check.png``, ``corr_vs_inal.png``, ``learning_curves.png``;
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
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bound_check import VERDICTS, bound_points, check_bound
from .fits import fit_inal_exponents, group_label, inal_points
from .learnability import learnability_table, mean_curves
from .load import Study, find_study_dirs, load_study
from .regression import SCALES

__all__ = ["Analysis", "analyze", "write_report", "summary_dict", "summary_table", "main"]

_CI_TEXT = {
    "residual": "Student-t with m−2 degrees of freedom, scaled by the residual scatter: wide when few n are fitted",
    "birge": "normal quantile, scaled by max(1, χ²/dof)",
    "known": "normal quantile, the standard errors taken as exact",
}
FIGURES = ("inal_scaling.png", "bound_check.png", "corr_vs_inal.png", "learning_curves.png")


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


def analyze(path: str, *, level: float = 0.95, resolve_z: float = 2.0, min_resolved: int = 3,
            ci: str = "residual", **filters) -> Analysis:
    """Load the studies under ``path`` (with optional column filters) and compute every view."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not resolve_z > 0:
        raise ValueError(f"resolve_z must be > 0, got {resolve_z!r}")
    if int(min_resolved) < 3:
        raise ValueError(f"min_resolved must be >= 3 (a slope with an interval needs 3 points), got {min_resolved!r}")
    if ci not in SCALES:
        raise ValueError(f"ci must be one of {SCALES}, got {ci!r}")
    study = load_study(path, **filters)
    ipts = inal_points(study.inal, resolve_z=resolve_z)
    fits = fit_inal_exponents(study.inal, level=level, resolve_z=resolve_z, min_points=min_resolved, ci=ci)
    layers = sorted(int(v) for v in study.inal["layer"].unique()) if len(study.inal) else []
    by_layer = [fit_inal_exponents(study.inal, layer=k, level=level, resolve_z=resolve_z,
                                   min_points=min_resolved, ci=ci) for k in layers]
    by_layer = pd.concat(by_layer, ignore_index=True) if by_layer else pd.DataFrame()
    bpts = bound_points(study.runs, resolve_z=resolve_z)
    checks = check_bound(study.runs, fits, level=level, resolve_z=resolve_z, min_resolved=min_resolved, ci=ci)
    learn = learnability_table(study.runs, study.inal, resolve_z=resolve_z)
    curves = mean_curves(study.runs, study.curves)
    settings = {"level": level, "resolve_z": resolve_z, "min_resolved": int(min_resolved), "ci": ci,
                "filters": filters}
    return Analysis(str(path), study, ipts, fits, by_layer, bpts, checks, learn, curves, settings)


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
        "figures": list(FIGURES),
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
    header = ["group", "nominal c", "ĉ", f"{a.settings['level']:.0%} CI", "χ²/dof", "points (unresolved)", "n range"]
    rows = []
    for _, r in a.inal_fits.iterrows():
        rows.append([group_label(r, ["target", "width", "depth", "init", "bias"]), _fmt(r["c_nominal"]),
                     _fmt(r["c_hat"]), f"[{_fmt(r['c_hat_lo'])}, {_fmt(r['c_hat_hi'])}]",
                     _fmt(r["chi2_per_dof"], ".2f"), f"{r['n_points']} ({r['n_unresolved']})",
                     f"{r['n_fit_min']}–{r['n_fit_max']}" if r["status"] == "fitted" else r["status"]])
    return header, rows


def _bound_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["group", "c", "c_eff", "predicted slope", "slope", f"{a.settings['level']:.0%} CI",
              "resolved / unresolved n", "verdict"]
    keys = ["target", "width", "depth", "n_steps", "gamma", "sigma", "A"]
    rows = []
    for _, r in a.bound_checks.iterrows():
        rows.append([group_label(r, [k for k in keys if k in r]), _fmt(r["c_nominal"]), _fmt(r["c_eff"]),
                     _fmt(r["predicted_slope"]), _fmt(r["slope"]),
                     f"[{_fmt(r['slope_lo'])}, {_fmt(r['slope_hi'])}]",
                     f"{r['n_resolved']} / {r['n_unresolved']}", f"**{r['verdict']}**"])
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
    elif len(a.study.inal):
        parts.append("No INAL exponent could be fitted (too few resolved n values).")
    if len(a.bound_checks):
        v = _counts(a)["verdicts"]
        parts.append(f"Bound check over {len(a.bound_checks)} groups: {v['consistent']} consistent, "
                     f"{v['violated']} violated, {v['unresolved']} unresolved.")
    return " ".join(parts) or "Nothing to analyze: the study holds no INAL estimates and no runs."


def _report_markdown(a: Analysis) -> str:
    c = _counts(a)
    lvl = f"{a.settings['level']:.0%}"
    status = ", ".join(f"{v} {k}" for k, v in c["runs_by_status"].items())
    md = ["# INAL study report", "",
          f"Source: `{a.source}` — studies {', '.join(c['studies']) or '(none)'}; {c['runs']} training runs"
          f"{f' ({status})' if status else ''}; {c['inal_settings']} INAL settings. Generated "
          f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `inal-report`.", "",
          "**At a glance.** " + _headline(a), "",
          "Statistics: exponents are weighted least-squares slopes in log-log coordinates with "
          f"{lvl} intervals ({_CI_TEXT[a.settings['ci']]}; `analysis/regression.py`). "
          f"Points within {a.settings['resolve_z']:g} standard errors of zero are unresolved: shown as ▽ "
          "upper bounds and never fitted.", ""]
    md += ["## INAL against n", ""]
    if len(a.inal_fits):
        md += ["![INAL scaling](inal_scaling.png)", "",
               "Solid: fitted power law with the measured exponent ĉ; dashed: the nominal slope −c.", "",
               _markdown_table(*_inal_rows(a)), ""]
    else:
        md += ["No INAL estimates in this study.", ""]
    md += ["## The bound: R(n) · n^((c_eff−1)/8)", ""]
    if len(a.bound_checks):
        md += ["![bound check](bound_check.png)", "",
               "R(n) = |E corr_T| σ / (γ T √(E A)) with E corr_T the mean over seeds. The bound predicts a "
               "log-log slope ≤ −(c_eff−1)/8, c_eff = min(c, lower limit of ĉ): the compensated ratio plotted "
               "here should be flat (dotted) or falling. *Violated* means the slope's lower "
               f"{lvl} limit lies above the prediction (a one-sided test at {(1 - a.settings['level']) / 2:.1%}); "
               f"*unresolved* means fewer than {a.settings['min_resolved']} resolved n values or no testable "
               f"exponent. {c['bound_groups']} groups tested: {c['verdicts']}. With many groups, an "
               "occasional *violated* at this level is expected by chance.", "",
               _markdown_table(*_bound_rows(a)), ""]
        reasons = [f"- {group_label(r, ['target', 'c', 'width', 'n_steps', 'gamma', 'sigma'])}: {r['reason']}"
                   for _, r in a.bound_checks.iterrows()]
        md += ["Reasons:", ""] + reasons + [""]
    else:
        md += ["No training runs in this study (T = 0 means INAL only): no bound to check.", ""]
    md += ["## Learnability: final correlation against INAL", ""]
    if len(a.learnability) and "inal" in a.learnability and np.isfinite(a.learnability["inal"]).any():
        md += ["![correlation vs INAL](corr_vs_inal.png)", ""]
    else:
        md += ["Needs both training runs and INAL estimates of the same targets and networks.", ""]
    md += ["## Learning curves", ""]
    md += (["![learning curves](learning_curves.png)", ""] if len(a.curves) else ["No learning curves.", ""])
    md += ["Every number above, and the points behind each fit, are in `summary.json`.", ""]
    return "\n".join(md)


def write_report(a: Analysis, out_dir: str, *, dpi: int = 110) -> dict[str, str]:
    """Write report.md, the PNG figures and summary.json into ``out_dir``; returns their paths."""
    from .plots import plot_bound_check, plot_corr_vs_inal, plot_inal_scaling, plot_learning_curves

    os.makedirs(out_dir, exist_ok=True)
    figures = {
        "inal_scaling.png": plot_inal_scaling(a.inal_points, a.inal_fits),
        "bound_check.png": plot_bound_check(a.bound_points, a.bound_checks),
        "corr_vs_inal.png": plot_corr_vs_inal(a.learnability),
        "learning_curves.png": plot_learning_curves(a.curves),
    }
    paths = {}
    for name, fig in figures.items():
        paths[name] = os.path.join(out_dir, name)
        fig.savefig(paths[name], dpi=dpi)
    paths["report.md"] = os.path.join(out_dir, "report.md")
    with open(paths["report.md"], "w", encoding="utf-8") as fh:
        fh.write(_report_markdown(a))
    paths["summary.json"] = os.path.join(out_dir, "summary.json")
    with open(paths["summary.json"], "w", encoding="utf-8") as fh:
        json.dump(summary_dict(a), fh, indent=1, allow_nan=False)
    return paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inal-report",
                                description="Fits, the bound check, figures, report.md and summary.json "
                                            "of an INAL study (or of every study under a results root).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", help="a study directory or a results root holding studies")
    p.add_argument("--out", default=None, help="output directory (default: <results_dir>/report)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of intervals (default 0.95)")
    p.add_argument("--resolve-z", type=float, default=2.0,
                   help="a point is resolved when |value| > z * se (default 2)")
    p.add_argument("--min-resolved", type=int, default=3, help="resolved n values needed for a verdict (>= 3)")
    p.add_argument("--ci", choices=SCALES, default="residual",
                   help="error scale of the intervals: residual (t, scaled by the scatter; default), "
                        "birge (normal, scaled up only when chi2/dof > 1), known (normal, errors as given)")
    p.add_argument("--dpi", type=int, default=110, help="figure resolution (default 110)")
    return p


def _default_out(results_dir: str) -> str:
    """``<results_dir>/report`` for a local path (or ``file://`` URI); ``./report-<name>`` for a remote
    URI (figures are written with the local filesystem)."""
    path = results_dir.rstrip("/")
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif "://" in path:
        return os.path.join(os.getcwd(), f"report-{path.rsplit('/', 1)[-1]}")
    return os.path.join(path, "report")


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (2 on bad input)."""
    import matplotlib

    matplotlib.use("Agg")
    args = _parser().parse_args(argv)
    try:
        find_study_dirs(args.results_dir)
        a = analyze(args.results_dir, level=args.level, resolve_z=args.resolve_z,
                    min_resolved=args.min_resolved, ci=args.ci)
    except (FileNotFoundError, ValueError) as err:
        print(f"inal-report: {err}", file=sys.stderr)
        return 2
    out = args.out or _default_out(str(args.results_dir))
    paths = write_report(a, out, dpi=args.dpi)
    print(summary_table(a))
    print(f"report: {paths['report.md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
