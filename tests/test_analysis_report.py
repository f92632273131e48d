"""The inal-report command on synthetic studies: report.md, PNG figures, summary.json, stdout table."""

import json
import shutil
import struct
import subprocess
import sys

import pytest

from analysis.bound_check import VERDICTS
from analysis.report import FIGURES, main
from analysis.synthetic import SyntheticTarget, write_synthetic_study

TARGETS = [SyntheticTarget("parity", c=1, inal_exponent=1.0, r_slope=-0.6),
           SyntheticTarget("staircase", c=3, inal_exponent=3.0, r_slope=0.4),
           SyntheticTarget("full_parity", c=4, inal_exponent=4.0, r_slope=None)]


def assert_png(path, min_bytes=8_000):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) >= min_bytes, (path, len(data))
    width, height = struct.unpack(">II", data[16:24])      # IHDR
    assert 300 <= width <= 6000 and 150 <= height <= 6000, (path, width, height)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("res")
    return write_synthetic_study(root, "full", TARGETS, seeds=range(8), rng_seed=1)


def test_report_files_and_verdicts(study, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main([study, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verdicts" in printed and "ĉ=" in printed and "report.md" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {"inal_scaling", "bound_check", "corr_vs_inal", "learning_curves", "fourier_step",
            "time_to_learn"} == set(summary["figures"]) <= set(FIGURES)
    md = (out / "report.md").read_text()
    for name in summary["figures"]:
        assert_png(out / f"{name}.png")
        assert f"]({name}.png)" in md
    assert "## The Fourier step" in md and "## Time to learn" in md
    assert "accelerated failure" in md and summary["time_to_learn_aft"]   # the censored fit, on every run
    assert all(r["n_runs"] == r["n_ok_runs"] for r in summary["time_to_learn_aft"])
    assert "informative" in md
    assert "## The bound" in md and "**violated**" in md and "**consistent**" in md
    summary = json.loads((out / "summary.json").read_text())
    fits = {f["target"]: f for f in summary["inal_fits"]}
    for tgt in TARGETS:  # every fitted exponent with its interval; the truth inside the 95% interval
        f = fits[tgt.name]
        assert f["status"] == "fitted" and f["c_hat_lo"] <= f["c_hat"] <= f["c_hat_hi"]
        assert abs(f["c_hat"] - tgt.inal_exponent) < 0.3
    checks = {c["target"]: c for c in summary["bound_checks"]}
    assert checks["parity"]["verdict"] == "consistent"
    assert checks["staircase"]["verdict"] == "violated"
    assert checks["full_parity"]["verdict"] == "unresolved"
    for c in checks.values():
        assert c["verdict"] in VERDICTS and c["reason"]
        assert {"slope", "slope_lo", "slope_hi", "predicted_slope", "c_eff", "n_resolved", "n_unresolved"} <= set(c)
    assert summary["counts"]["verdicts"] == {"consistent": 1, "violated": 1, "unresolved": 1}
    assert summary["bound_points"] and summary["learnability"]


def test_inal_only_study(tmp_path, capsys):
    study = write_synthetic_study(tmp_path, "inal", T=0)
    assert main([study]) == 0
    out = tmp_path / "inal" / "report"
    md = (out / "report.md").read_text()
    assert "No training runs" in md
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["inal_fits"]) == 3 and summary["bound_checks"] == []
    assert_png(out / "inal_scaling.png")
    for name in ("bound_check", "corr_vs_inal", "learning_curves", "time_to_learn"):   # no placeholders
        assert not (out / f"{name}.png").exists() and f"]({name}.png)" not in md


def test_formats_layer_and_filters(study, tmp_path):
    out = tmp_path / "f"
    assert main([study, "--out", str(out), "--format", "png,svg,pdf", "--layer", "max", "--target", "parity"]) == 0
    assert (out / "inal_scaling.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert (out / "inal_scaling.pdf").read_bytes()[:5] == b"%PDF-"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["layer"] == "max"
    assert {f["target"] for f in summary["inal_fits"]} == {"parity"}
    assert main([study, "--out", str(tmp_path / "g"), "--layer", "2"]) == 0
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert {f["layer"] for f in summary["inal_fits"]} == {"2"}


@pytest.mark.parametrize("args,text", [(["--format", "png,gif"], "--format"), (["--layer", "top"], "layer"),
                                       (["--target", "nosuch"], "no runs")])
def test_bad_options_exit_2_and_write_nothing(study, tmp_path, capsys, args, text):
    out = tmp_path / "bad"
    assert main([study, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and not out.exists()


def test_several_paths_and_study_filter(tmp_path):
    a = write_synthetic_study(tmp_path / "a", "one", TARGETS[:1], T=0)
    b = write_synthetic_study(tmp_path / "b", "two", TARGETS[1:2], T=0)
    assert main([a, b, "--out", str(tmp_path / "ab")]) == 0
    summary = json.loads((tmp_path / "ab" / "summary.json").read_text())
    assert set(summary["counts"]["studies"]) == {"one", "two"}
    assert main([a, b, "--out", str(tmp_path / "b2"), "--study", "two"]) == 0
    summary = json.loads((tmp_path / "b2" / "summary.json").read_text())
    assert summary["counts"]["studies"] == ["two"]


def test_training_only_study_uses_nominal_c(tmp_path):
    study = write_synthetic_study(tmp_path, "train", TARGETS[:1], seeds=range(6))
    shutil.rmtree(f"{study}/inal")
    assert main([study, "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["inal_fits"] == []
    assert summary["bound_checks"][0]["c_source"] == "nominal_no_fit"
    assert_png(tmp_path / "o" / "learning_curves.png")


def test_ci_option_is_recorded(study, tmp_path):
    assert main([study, "--out", str(tmp_path / "b"), "--ci", "birge"]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["settings"]["ci"] == "birge"
    assert {f["method"] for f in summary["inal_fits"]} == {"wls-birge-normal"}


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    study = write_synthetic_study(tmp_path, "s", T=0)
    assert main([study, "--level", "1.5"]) == 2
    assert "level" in capsys.readouterr().err


def test_python_dash_m_entry_point(study, tmp_path):
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-m", "analysis.report", study, "--out", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert (out / "summary.json").exists() and "verdicts" in proc.stdout
