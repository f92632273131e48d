"""``inal-bench stats --smoke``: the calibration suite runs and prints one measured line per figure."""

import json
import subprocess
import sys

from inal_bench import stats


def test_stats_smoke_prints_a_measured_value_and_replicate_count_per_line():
    out = subprocess.run([sys.executable, "-m", "inal_bench.cli", "stats", "--smoke"], capture_output=True,
                         text=True, timeout=600, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    names = [m["name"] for m in lines]
    assert names == [name for name, _ in stats.registered()]
    assert {"bound_power_violation", "bound_size_equality", "slope_coverage_curved"} <= set(names)
    hard = next(m for m in lines if m["name"] == "interval_coverage_hard")   # the hard INAL-interval table
    assert 0.0 <= hard["extra"]["upper_miss"] <= 1.0 and hard["extra"]["worst_cell"]["coverage"] == hard["value"]
    assert {c["cell"] for c in hard["extra"]["cells"]} == {"layer 1", "layer 2", "output", "selection-free"}
    for m in lines:
        assert 0.0 <= m["value"] <= 1.0 and m["unit"] and m["baseline"] > 0, m
        assert m["extra"]["replicates"] > 0 and m["ratio"] == m["ratio"], m   # a count, and no NaN ratio


def test_stats_registration_point_takes_another_module(monkeypatch):
    """A module inal_bench.stats_calibration with MEASUREMENTS extends the suite, after this one's."""
    import types

    from inal_bench.common import Measurement

    mod = types.ModuleType("inal_bench.stats_calibration")
    mod.MEASUREMENTS = (("extra_line", lambda reps, seed: Measurement("extra_line", 0.5, "share", 1.0, 0.5,
                                                                       extra={"replicates": reps})),)
    monkeypatch.setitem(sys.modules, "inal_bench.stats_calibration", mod)
    names = [name for name, _ in stats.registered()]
    assert names[:3] == [name for name, _ in stats.MEASUREMENTS] and names[-1] == "extra_line"
    got = list(stats.run(type("A", (), {"smoke": True, "only": "extra"})()))
    assert [m.name for m in got] == ["extra_line"] and got[0].extra["replicates"] == stats.SMOKE_REPLICATES
