"""Fault injection against the ``inal_ray`` launcher with real Ray, real processes, real files.

- the driver (``python -m sweeps.run``, joined to this module's Ray) SIGKILLed mid-study (held
  at a known point by ``tests/task_gate.py``: one cell stored, the next pack waiting), then
  the same command again: every cell exactly once, numbers equal to an uninterrupted run;
- every task's first attempt killing its worker process (``os._exit``): Ray retries, the study
  completes, nothing lost or doubled;
- a truncated runs file and a garbage INAL file: detected, quarantined, recomputed;
- a diverging run (gamma = 1e30): a ``diverged`` row, the other cells finish;
- bad input: a ``ConfigError`` naming key, value and what is allowed, non-zero exit, nothing
  written and no Ray started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")


from hydra_plugins.inal_ray_launcher import _fast_path  # noqa: E402

import task_gate  # noqa: E402
from conftest import NUMBERS, TINY, multirun  # noqa: E402


def runs_table(results_dir: Path) -> "pd.DataFrame":
    return pd.read_parquet(results_dir / "default" / "runs").set_index("run_id").sort_index()


def assert_same_numbers(a: "pd.DataFrame", b: "pd.DataFrame") -> None:
    assert list(a.index) == list(b.index)
    for col in NUMBERS:
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-5, atol=1e-7, err_msg=col)


# ------------------------------------------------------------------ bad input (no Ray needed)

BAD_INPUTS = [
    (["n=4,0"], "invalid n=0"),
    (["gamma=0.1,-1"], "invalid gamma=-1"),
    (["c=9", "n=4"], "invalid c=9"),
    (["train.N=3", "n=4"], "invalid train.N=3"),
    (["n=abc"], "invalid n='abc'"),
    (["inal=exact", "n=40", "width=64"], "invalid inal.estimator='exact'"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_fails_before_anything_runs(overrides, message, tmp_path: Path, hydra_restore_singletons) -> None:
    from sweeps.validation import ConfigError

    ray_was_up = ray.is_initialized()
    with pytest.raises(ConfigError) as info:
        multirun(TINY + overrides, tmp_path / "res")
    assert message in str(info.value) and "allowed" in str(info.value)
    assert not (tmp_path / "res").exists()  # nothing written, not even Hydra's multirun.yaml
    assert ray.is_initialized() == ray_was_up  # no Ray started for it


def test_bad_input_cli_exits_nonzero_and_writes_nothing(tmp_path: Path) -> None:
    res = tmp_path / "res"
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.run", "-m", "n=4,5", "target=parity,nope", f"results_dir={res}",
         "hydra/sweeper=inal", f"hydra.sweep.dir={res}/_sweep"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,  # a hang bound, not a speed
    )
    assert proc.returncode != 0
    assert "nope" in proc.stderr and "target" in proc.stderr
    assert not res.exists()
    assert "Ray" not in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------------- real Ray


@pytest.mark.ray
@pytest.mark.slow  # two subprocess drivers (each imports torch and joins Ray) and a reference run
def test_driver_sigkill_then_rerun_completes_exactly_once(ray_address: str, tmp_path: Path,
                                                         hydra_restore_singletons) -> None:
    psutil = pytest.importorskip("psutil")
    grid = ["n=4,5", "c=1", "gamma=0.05,0.1", "train.seed=0,1", "width=8", "T=50", "train.N=2n",
            "train.n_eval=256", "train.checkpoints=2", "inal.n_inits=16"]
    res = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sweeps.run", "-m", *grid, f"results_dir={res}", "hydra/sweeper=inal",
           f"hydra.sweep.dir={res}/_sweep", f"hydra.launcher.address={ray_address}", "hydra.launcher.max_pack=1", "hydra.launcher.report=false"]
    runs_dir = res / "default" / "runs"
    gate = tmp_path / "gate"
    gate.mkdir()

    def stored() -> int:
        return len(list(runs_dir.rglob("*.parquet")))

    # held study (tests/task_gate.py): the first pack runs, every later one waits at its start
    driver = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=task_gate.gate_env(gate, free=1), start_new_session=True)
    try:
        task_gate.wait_for(lambda: stored() == 1 and task_gate.held(gate), "a stored cell and a held pack",
                           alive=driver)
        os.kill(driver.pid, signal.SIGKILL)  # mid-study, by the events above
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    # Ray ends the dead driver's workers, the held ones with them: none ever runs its pack
    held_workers = [psutil.Process(h["pid"]) for h in task_gate.held(gate) if psutil.pid_exists(h["pid"])]
    _, alive = psutil.wait_procs(held_workers, timeout=120)
    assert not alive, f"held workers of the killed driver still alive: {alive}"
    assert stored() == 1, "a held pack ran after its driver was killed"

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "8 distinct cells" in rerun.stdout and "1 already complete" in rerun.stdout, rerun.stdout[-3000:]

    reference = tmp_path / "reference"
    multirun(grid, reference)  # uninterrupted, in this process
    killed, ref = runs_table(res), runs_table(reference)
    assert len(killed) == 8 and killed.index.is_unique and set(killed.status) == {"ok"}
    assert_same_numbers(killed, ref)
    curves = pd.read_parquet(res / "default" / "curves")
    assert len(curves) == 8 * 2 and not curves.duplicated(["run_id", "step"]).any()


def _first_attempt_exits(task, marker_dir: str, key):
    """``task`` wrapped so that its first attempt for each ``key(*args)`` exits the worker process
    (``os._exit``: a lost worker, which Ray retries). A closure, so Ray ships it by value: the
    workers need nothing of the tests, and the launcher carries no fault hook."""

    def first_attempt_exits(*args):
        marker = os.path.join(marker_dir, key(*args) + ".killed")
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return task(*args)
        os.close(fd)
        os._exit(1)

    return first_attempt_exits


@pytest.mark.ray
def test_worker_killed_mid_task_is_retried(ray_address: str, tmp_path: Path, monkeypatch,
                                           hydra_restore_singletons) -> None:
    grid = ["n=4", "c=1", "gamma=0.05,0.1", "hydra.launcher.max_pack=2"] + TINY
    reference = tmp_path / "reference"
    multirun(grid, reference)
    markers = tmp_path / "markers"
    markers.mkdir()
    inal = _first_attempt_exits(_fast_path.inal_task, str(markers), lambda job: f"inal-{job.inal_id}")
    pack = _first_attempt_exits(_fast_path.pack_task, str(markers), lambda jobs: f"pack-{jobs[0].run_id}")
    monkeypatch.setattr(_fast_path, "_remotes", lambda: (ray.remote(inal), ray.remote(pack)))
    out = multirun(grid, tmp_path / "faulty")
    # 2 cells: 1 INAL task and the training pack(s) the cost model made of them (one or two), each
    # task killed once in its first attempt
    kinds = sorted(p.name.split("-")[0] for p in markers.iterdir())
    assert kinds.count("inal") == 1 and 1 <= kinds.count("pack") <= 2, kinds
    assert {o["status"] for o in out} == {"ok"}
    faulty = runs_table(tmp_path / "faulty")
    assert len(faulty) == 2 and faulty.index.is_unique
    assert_same_numbers(faulty, runs_table(reference))
    assert len(pd.read_parquet(tmp_path / "faulty" / "default" / "inal")) == 2


@pytest.mark.ray
def test_corrupt_files_are_detected_and_recomputed(ray_address: str, tmp_path: Path,
                                                   hydra_restore_singletons) -> None:
    grid = ["n=4,5", "c=1", "train.seed=0,1"] + TINY
    multirun(grid, tmp_path)
    original = runs_table(tmp_path)
    runs_files = sorted((tmp_path / "default" / "runs").rglob("*.parquet"))
    inal_files = sorted((tmp_path / "default" / "inal").rglob("*.parquet"))
    truncated, garbage = runs_files[0], inal_files[0]
    truncated_ids = set(pq.read_metadata(truncated).metadata[b"inal.ids"].decode().split(","))  # a pack's runs
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage.write_bytes(b"PAR1 this is not a parquet file PAR1")

    out = multirun(grid, tmp_path)
    recomputed = {o["run_id"] for o in out if o["status"] == "ok"}
    assert truncated_ids and truncated_ids <= recomputed  # the truncated pack's runs ran again
    garbage_cells = {o["run_id"] for o in out if o["inal_id"] == garbage.stem}
    assert garbage_cells <= recomputed and garbage_cells  # cells of the bad INAL file ran again
    quarantined = list((tmp_path / "default" / "_quarantine").glob("*.parquet*"))
    assert any(truncated.stem in q.name for q in quarantined) and any(garbage.stem in q.name for q in quarantined)
    final = runs_table(tmp_path)
    assert len(final) == 4 and final.index.is_unique
    assert_same_numbers(final, original)
    assert len(pd.read_parquet(tmp_path / "default" / "inal")) == 2 * 2


@pytest.mark.ray
def test_diverging_run_is_a_row_and_the_others_finish(ray_address: str, tmp_path: Path,
                                                      hydra_restore_singletons) -> None:
    out = multirun(["n=4", "c=1", "gamma=0.05,1e30", "train.seed=0,1"] + TINY, tmp_path)
    runs = runs_table(tmp_path)
    assert len(runs) == 4
    huge = runs[runs.gamma == 1e30]
    assert set(huge.status) == {"diverged"} and (huge.diverged_step >= 0).all()
    assert set(runs[runs.gamma == 0.05].status) == {"ok"}
    assert np.isfinite(runs.loc[runs.gamma == 0.05, "correlation"]).all()
    assert sorted(o["status"] for o in out) == ["diverged", "diverged", "ok", "ok"]
