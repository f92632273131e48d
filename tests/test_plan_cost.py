"""Plans a cluster user can size by: the measured cost model, packs sized and ordered by cost, the
makespan and its lower bound, ``hydra.launcher.slots``, and cells refused before any work.

References are independent of the code under test: the optimal makespan by brute force over every
assignment of a few tasks to slots, the lower bound by its definition, Graham's 4/3 bound for
longest-first list scheduling, and the engines' own memory figures for the refusals. How close the
estimates come to measured wall times is a benchmark (``inal-bench plan``), not a test.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from sweeps import throughput as tp_model
from sweeps.plan import PlanCounts, iter_packs, lpt_makespan, size_packs
from sweeps.throughput import Throughput

BIN = Path(sys.executable).parent
INAL_SWEEP = str(BIN / "inal-sweep")
TP = Throughput(ngd_flops_per_s=3e9, step_s=1e-3, elem_s=5e-9, inal_flops_per_s=8e9, pack_s=0.2, inal_s=0.1, source="test")


def _shape(n: int, T: int = 300, width: int = 32) -> dict:
    """The values a pack's cost reads, as ``validate_job`` makes them (N = n^2, batch 0)."""
    return {"N": n * n, "width": width, "depth": 1, "bias": True, "init": "normal", "batch": 0, "T": T,
            "checkpoints": 5, "n_eval": 8192}


def _optimal_makespan(tasks, k):
    best = float("inf")
    for assignment in itertools.product(range(k), repeat=len(tasks)):
        loads = [0.0] * k
        for t, slot in zip(tasks, assignment):
            loads[slot] += t
        best = min(best, max(loads))
    return best


def test_lpt_makespan_against_brute_force_optimum():
    rng = random.Random(0)
    for _ in range(60):
        k = rng.choice([1, 2, 3])
        tasks = [rng.uniform(0.1, 10) for _ in range(rng.randint(1, 7))]
        opt = _optimal_makespan(tasks, k)
        lpt = lpt_makespan(tasks, k)
        bound = max(sum(tasks) / k, max(tasks))
        assert bound <= opt + 1e-9  # the lower bound is one
        assert opt - 1e-9 <= lpt <= (4 / 3 - 1 / (3 * k)) * opt + 1e-9  # Graham (1969)
        counts = PlanCounts(task_s=tasks, slots=k)
        assert counts.makespan_bound() == pytest.approx(bound)
        assert counts.makespan() == pytest.approx(lpt)


def test_pack_seconds_is_affine_in_runs_and_steps():
    v = _shape(4)
    t1, t2, t4 = (tp_model.pack_seconds(v, r, TP) for r in (1, 2, 4))
    assert t2 - t1 == pytest.approx((t4 - t2) / 2, rel=1e-9)  # fixed part + runs x per-run part
    # the per-run part per step is ngd_flops_per_step / rate (exact batch 2^16 on N = 16 bits)
    from inal_core.specs import NetworkSpec, ngd_flops_per_step

    spec = NetworkSpec(16, 32, 1)
    # an exact batch enumerates its inputs once: no drawn inputs per step; an evaluation draws its 8192
    per_step = ngd_flops_per_step(spec, 2**16) / TP.ngd_flops_per_s + 2**16 * (4 * 32 + 4) * TP.elem_s
    per_eval = (spec.flops_forward(8192) / TP.ngd_flops_per_s + 8192 * (4 * 32 + 4) * TP.elem_s / 3
                + 8192 * 16 * TP.draw_s) * TP.eval_scale
    assert t2 - t1 == pytest.approx(300 * per_step + 6 * per_eval, rel=1e-9)
    assert tp_model.pack_seconds(_shape(4, T=0), 3, TP) == 0.0
    # a sampled batch (batch 512 on N = 16 bits) draws 512 x 16 input bits a step and run
    sampled = dict(v, batch=512)
    s1, s2 = (tp_model.pack_seconds(sampled, r, TP) for r in (1, 2))
    per_step = ngd_flops_per_step(spec, 512) / TP.ngd_flops_per_s + 512 * (4 * 32 + 4) * TP.elem_s + 512 * 16 * TP.draw_s
    assert s2 - s1 == pytest.approx(300 * per_step + 6 * per_eval, rel=1e-9)


def test_a_tasks_seconds_are_its_cpu_seconds_over_the_slots_share():
    """Rates are CPU seconds; a slot that gets a quarter of a CPU takes four times as long, and a
    plan's tasks rescale by the ratio of the shares (pack sizes unchanged)."""
    from dataclasses import replace

    quarter = replace(TP, share=0.25)
    v = _shape(8)
    assert tp_model.pack_seconds(v, 3, quarter) == pytest.approx(4 * tp_model.pack_seconds(v, 3, TP), rel=1e-12)
    assert tp_model.inal_seconds(1e9, quarter) == pytest.approx(4 * tp_model.inal_seconds(1e9, TP), rel=1e-12)
    counts = PlanCounts(task_s=[1.0, 3.0], slots=2, throughput=TP)
    counts.set_throughput(quarter)
    assert counts.task_s == [4.0, 12.0] and counts.throughput is quarter
    # a cluster's workers (not local) and figures not measured here keep a whole CPU per slot
    measured = replace(TP, source="measured on test")
    assert tp_model.for_slots(measured, 2, local=False) is measured
    assert tp_model.for_slots(tp_model.DEFAULT, 2) is tp_model.DEFAULT
    many = tp_model.for_slots(measured, 10**6)  # slots=64 on a laptop plans a cluster: a whole CPU per slot
    assert many.share == 1.0 and "more than this machine" in many.share_note
    share, note = tp_model.slot_share(2, window=0.05)
    assert 0 < share <= 1 and note


def test_the_share_probes_take_the_workers_niceness(monkeypatch):
    """The probes run at the niceness a local Ray gives its workers: Ray's default 15, or
    ``RAY_worker_niceness`` when set (the tests set 0, conftest.py), as the plan's line says."""
    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    assert tp_model.worker_niceness() == 15 and "at niceness 15 " in tp_model.slot_share(1, window=0.05)[1]
    monkeypatch.setenv("RAY_worker_niceness", "7")
    assert tp_model.worker_niceness() == 7 and "at niceness 7 " in tp_model.slot_share(1, window=0.05)[1]


def test_inal_rate_is_interpolated_in_n():
    """The exact engine's rate per n (calibrated at a few n): log-linear between them, held beyond 4 past the last."""
    from dataclasses import replace

    tp = replace(TP, inal_rate_by_n={10: 1e9, 14: 1.6e10})
    assert tp_model.inal_rate(tp, 12) == pytest.approx(4e9)
    assert tp_model.inal_rate(tp, 10) == pytest.approx(1e9) and tp_model.inal_rate(tp, 6) == pytest.approx(1e9)
    assert tp_model.inal_rate(tp, 18) == pytest.approx(2.56e11) == pytest.approx(tp_model.inal_rate(tp, 30))
    assert tp_model.inal_rate(tp) == TP.inal_flops_per_s


def test_heterogeneous_grid_packs_stay_under_the_fair_share():
    """n = 4, 8, 12, 16, 20, 4 seeds each (N = n^2): the costliest shape's pack is above half the fair
    share; sized by cost, no pack is above half the fair share unless it is a single run, only
    that shape is split, and the makespan on 2 slots comes within 4/3 of its lower bound."""
    shapes = {n: (_shape(n), 4) for n in (4, 8, 12, 16, 20)}
    limits = {n: 64 for n in shapes}
    unsplit = [tp_model.pack_seconds(v, r, TP) for v, r in shapes.values()]
    assert max(unsplit) > sum(unsplit) / 4  # above half the fair share on 2 slots
    sizes = size_packs(shapes, limits, TP, slots=2)
    tasks = []
    for n, (v, runs) in shapes.items():
        r = sizes[n]
        tasks += [tp_model.pack_seconds(v, r, TP)] * (runs // r) + ([tp_model.pack_seconds(v, runs % r, TP)] if runs % r else [])
    share = sum(tasks) / 2
    for n, (v, runs) in shapes.items():
        assert sizes[n] == 1 or tp_model.pack_seconds(v, sizes[n], TP) <= share / 2 + 1e-9
    costliest = max(shapes, key=lambda n: tp_model.pack_seconds(shapes[n][0], 4, TP))
    assert sizes[costliest] < 4 and sizes[8] == 4  # the costly shape is split, a cheap one is not
    bound = max(share, max(tasks))
    assert lpt_makespan(tasks, 2) <= 4 / 3 * bound


def test_iter_packs_spreads_a_split_shape_evenly():
    jobs = [SimpleNamespace(results_dir="r", study="s", pack_key="a", i=i) for i in range(5)]
    packs = list(iter_packs(jobs, lambda job: 3))
    assert [len(p) for p in packs] == [3, 2]


def test_ordered_packs_go_longest_first():
    from hydra_plugins.inal_ray_launcher._fast_path import ordered_packs

    jobs = []
    for n, reps in ((8, 4), (4, 4), (12, 4)):
        jobs += [SimpleNamespace(results_dir="r", study="s", pack_key=f"k{n}", values=_shape(n)) for _ in range(reps)]
    counts = PlanCounts(throughput=TP, runs_to_train=len(jobs), pack_sizes={("r", "s", "k4"): 2})
    packs = list(ordered_packs(iter(jobs), counts, 64))
    secs = [tp_model.pack_seconds(p[0], len(p), TP) for p in packs]
    assert secs == sorted(secs, reverse=True)
    assert sorted(len(p) for p in packs) == [2, 2, 4, 4]


def test_calibration_measures_and_is_cached(tmp_path):
    """The real engines, timed once (a subprocess), cached as JSON; the cache is then read as is."""
    path = tmp_path / "tp.json"
    tp = tp_model.load(path=str(path))
    assert tp.source.startswith("measured on")
    for value in (tp.ngd_flops_per_s, tp.inal_flops_per_s):
        assert 1e7 < value < 1e14  # FLOP/s of one CPU thread, whatever the load
    assert 0 < tp.step_s < 1 and 0 < tp.pack_s < 30 and 0 < tp.elem_s < 1e-6 and 0 < tp.draw_s < 1e-6
    assert tp.clock == "cpu" and 0 < tp.eval_scale < 100 and sorted(tp.inal_rate_by_n) == [10, 14, 18]
    data = json.loads(path.read_text())
    data["source"] = "edited"
    path.write_text(json.dumps(data))
    assert tp_model.load(path=str(path)).source == "edited"  # read, not measured again


def test_a_failed_calibration_says_why_and_a_runaway_one_is_stopped_by_cpu_time(tmp_path, monkeypatch):
    """The plan's default figures carry the calibration's reason; the subprocess is bounded in CPU
    seconds, not wall seconds (a 300 s wall timeout once gave every plan the default figures under
    load): here a 1 CPU-second limit stops the ~7 CPU-second measurement whatever the load."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    tp = tp_model.load(path=str(blocker / "tp.json"))  # the cache's folder cannot be made
    assert tp.source.startswith(tp_model.DEFAULT.source + " (") and "Error" in tp.source, tp.source
    assert tp.ngd_flops_per_s == tp_model.DEFAULT.ngd_flops_per_s
    if os.name != "posix":
        pytest.skip("RLIMIT_CPU is POSIX")
    monkeypatch.setattr(tp_model, "CALIBRATION_CPU_S", 1)  # read in the forked child
    path = tmp_path / "tp.json"
    tp = tp_model.load(path=str(path))
    assert tp.source.endswith(f"(exit status -{int(signal.SIGXCPU)})") or "SIGXCPU" in tp.source, tp.source
    assert not path.exists()


def test_progress_eta_comes_from_the_plan():
    import io

    from hydra_plugins.inal_ray_launcher.progress import ProgressBar

    bar = ProgressBar(10, stream=io.StringIO(), eta_fn=lambda: 125.0)
    bar.update(1)
    assert "ETA 0:02:05" in bar.render()


# ---------------------------------------------------------------------- through inal-sweep


def _sweep(args, cwd, timeout=300):
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([INAL_SWEEP, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_dry_run_plans_64_slots(tmp_path):
    """A 64-slot study planned on this machine: the estimate and the bound for slots=64, and the
    bound is max(task-seconds / 64, longest task) of the printed figures."""
    proc = _sweep(["n=4,8,12", "width=32", "T=50", "train.seed=range(0,8)", f"results_dir={tmp_path}/r",
                   "hydra.launcher.dry_run=true", "hydra.launcher.slots=64"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    m = re.search(r"on 64 slot\(s\) \(hydra.launcher.slots\): estimated wall [^(]*\(([0-9.]+) s: makespan "
                  r"([0-9.]+) s.*lower bound [^(]*\(([0-9.]+) s\)", out)
    assert m, out
    wall, makespan, bound = float(m.group(1)), float(m.group(2)), float(m.group(3))
    assert bound <= makespan + 0.05 <= wall + 0.1
    assert "cost model" in out and not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, setting, estimate", [
    (["T=0", "width=16384", "depth=6", "n=32", "inal=exact", "inal.memory_budget_gb=1000"],
     "inal.memory_budget_gb=1000.0", r"would hold about [0-9.]+ GiB"),
    (["T=1e10", "n=8"], "hydra.launcher.max_cell_hours=24.0", r"estimated at [0-9.]+ h"),
    (["T=2000", "n=4", "hydra.launcher.max_cell_hours=0.0001"], "hydra.launcher.max_cell_hours=0.0001",
     r"estimated at [0-9.]+ (s|min)"),
    (["n=12", "T=1", "hydra.launcher.worker_memory_gb=0.001"], "inal.memory_budget_gb=", r"has 0.001 GiB"),
])
def test_cells_beyond_the_machine_are_refused_before_any_work(tmp_path, args, setting, estimate):
    proc = _sweep([*args, f"results_dir={tmp_path}/r", "hydra.launcher.report=false"], tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert setting in lines[0] and re.search(estimate, lines[0]), lines[0]
    assert not (tmp_path / "r").exists()  # nothing written, Ray never started
    assert "Started a local Ray" not in proc.stderr


@pytest.mark.parametrize("args, setting, estimate", [
    (["T=1e10", "n=8"], "hydra.launcher.max_cell_hours=24.0", r"estimated at [0-9.]+ h"),
    (["T=0", "width=16384", "depth=6", "n=32", "inal=exact", "inal.memory_budget_gb=1000"],
     "inal.memory_budget_gb=1000.0", r"would hold about [0-9.]+ GiB"),
    (["n=12", "T=1", "hydra.launcher.worker_memory_gb=0.001"], "inal.memory_budget_gb=", r"has 0.001 GiB"),
])
def test_a_single_run_is_refused_like_a_cell(tmp_path, args, setting, estimate):
    """Without -m (Hydra's run mode, the task in this process, no launcher) the same limits apply:
    exit 2, one line naming the setting and the estimate, nothing written (not even Hydra's run dir)."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([INAL_SWEEP, *args, f"results_dir={tmp_path}/r", f"hydra.run.dir={tmp_path}/out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert setting in lines[0] and re.search(estimate, lines[0]), lines[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "out").exists()


def test_a_calibration_in_wall_seconds_is_not_used(tmp_path):
    """A cache written before the model counted CPU seconds (no ``clock``) is not read as is: it
    is measured again (here, with calibration off, the default figures say so)."""
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"ngd_flops_per_s": 2e11, "step_s": 2e-4, "elem_s": 6e-10, "inal_flops_per_s": 4e10,
                                "pack_s": 0.1, "inal_s": 0.1, "source": "measured on vm (wall seconds)"}))
    assert tp_model.load(calibrate=False, path=str(path)) is tp_model.DEFAULT


def test_wall_is_planning_makespan_and_compaction():
    """The end-of-study compaction merges files only where a partition has COMPACT_MIN_FILES small
    ones (sweeps.store): below that the estimate charges its index alone."""
    from sweeps import plan as plan_mod
    from sweeps.store import COMPACT_MIN_FILES

    assert plan_mod.COMPACT_MIN_FILES == COMPACT_MIN_FILES
    few = PlanCounts(task_s=[2.0, 1.0, 1.0], slots=2)
    assert few.wall_s(plan_s=0.5) == pytest.approx(0.5 + 2.0 + plan_mod.COMPACT_S)
    many = PlanCounts(task_s=[1.0] * 64, slots=2)
    assert many.wall_s() == pytest.approx(32.0 + plan_mod.COMPACT_S + 64 * plan_mod.COMPACT_S_PER_FILE)
