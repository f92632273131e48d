"""Every ``inal-bench`` suite runs at its smoke size and prints each of its lines with a baseline.

A benchmark that no test runs rots unseen (``inal-bench sweep`` once counted one file per run after
the store had moved to one file per pack). Each suite is run as a user runs it, in a subprocess
(``inal-bench <suite> --smoke``); its JSON lines are read back and checked: every expected name is
there once, with a finite value, a finite positive baseline measured in the same run (the one
exception, hydra-ray-launcher when it is not installed, must say so in its line), and a ratio
equal to what the line's own numbers give. Timings are not asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

EXPECTED = {
    "core": ["inal_exact_n20", "inal_exact_n20_parity2", "inal_junta_vs_mc_k3", "ngd_gflops_w256"],
    "sweep": ["sweep_pack_128", "sweep_pack_128_vs_unpacked"],
    "plan": ["plan_eta_ratio_default", "plan_eta_ratio_bound_check", "plan_eta_ratio_bound_check_power",
             "plan_eta_ratio_inal_scaling",
             "plan_eta_ratio_learnability", "plan_eta_ratio_time_to_learn", "plan_eta_ratio_heterogeneous",
             "plan_makespan_ratio_heterogeneous"],
    "scale": ["scale_plan_1e6", "scale_plan_1e6_rss", "scale_run_1e5", "scale_run_1e5_rss", "scale_resume_1e5",
              "scale_load_1e5", "scale_report_1e5"],
}


def _lines(suite: str):
    proc = subprocess.run([sys.executable, "-m", "inal_bench.cli", suite, "--smoke"], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")], proc.stderr


def _check(suite: str) -> None:
    lines, stderr = _lines(suite)
    names = [m["name"] for m in lines]
    assert sorted(names) == sorted(EXPECTED[suite]), (names, stderr[-2000:])
    for m in lines:
        assert math.isfinite(m["value"]), m  # a difference of two timings may be < 0 at smoke size
        if m["name"] == "sweep_pack_128" and not m["extra"]["baseline_measured"]:
            assert "NOT measured" in m["note"], m  # hydra-ray-launcher absent: the line says so
        else:
            assert math.isfinite(m["baseline"]) and m["baseline"] > 0, m
        if m["value"] != 0 and m["baseline"] > 0:  # the ratio is one of the line's own two quotients
            assert any(math.isclose(m["ratio"], q, rel_tol=1e-6)
                       for q in (m["value"] / m["baseline"], m["baseline"] / m["value"])), m


@pytest.mark.parametrize("suite", ["core", "sweep", "plan"])
def test_suite_smoke(suite):
    _check(suite)


# slow: the scale suite's smoke size still runs ~10 inal-sweep subprocesses, the 02909a3 baseline
# (extracted with git archive) and two inal-report runs, ~1-2 minutes on the 2-core CI machine
@pytest.mark.slow
def test_scale_smoke():
    _check("scale")
