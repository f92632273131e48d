"""``inal-sweep``'s exit status, as the shell and a scheduler above it see it (DESIGN.md).

Real subprocess drivers, real Ray, real signals:

- 0 every cell ok or diverged; 1 any cell failed (``device=cuda`` on a machine without CUDA: every
  cell fails, and each failed cell is retried by a rerun, never counted complete);
- 2 a configuration error before any work: one line (key, value, what is allowed), no traceback,
  nothing written, for a grid value and for each kind of bad ``hydra.launcher`` setting;
- 130 on SIGINT (Ctrl-C: the whole process group) and 143 on SIGTERM, each with exactly the line
  ``k of N cells stored; run the same command to resume`` and no traceback; the same command then
  completes the study with every cell exactly once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import task_gate

pd = pytest.importorskip("pandas")
torch = pytest.importorskip("torch")

BIN = Path(sys.executable).parent
INAL_SWEEP = str(BIN / "inal-sweep")
QUIET = ["hydra.launcher.report=false", "hydra.launcher.progress=false"]


def sweep(args: list[str], cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([INAL_SWEEP, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and "HYDRA_FULL_ERROR" not in text


# -------------------------------------------------------------------- 2: configuration errors

BAD_SETTINGS = [
    (["n=abc"], "invalid n='abc'"),
    (["'+hydra.launcher.ray_init={bogus_kw: 1}'"], "invalid hydra.launcher.ray_init.bogus_kw=1"),
    (["'+hydra.launcher.ray_init={address: auto}'"], "invalid hydra.launcher.ray_init.address='auto'"),
    (["hydra.launcher.num_cpus=-1"], "invalid hydra.launcher.num_cpus=-1.0"),
    (["hydra.launcher.max_pack=0"], "invalid hydra.launcher.max_pack=0"),
]


@pytest.mark.parametrize("overrides, message", BAD_SETTINGS, ids=[m for _, m in BAD_SETTINGS])
def test_configuration_error_exits_2_with_one_line(overrides, message, tmp_path: Path) -> None:
    res = tmp_path / "res"
    args = [o.strip("'") for o in overrides]  # no shell here: the quotes are the shell's
    proc = sweep(["-m", "n=4", *args, f"results_dir={res}", f"hydra.sweep.dir={tmp_path}/sweep", *QUIET],
                 cwd=tmp_path, timeout=600)  # a hang bound, not a speed
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "allowed" in lines[0], proc.stderr
    assert no_traceback(proc.stdout + proc.stderr)
    assert not res.exists() and not (tmp_path / "sweep").exists()  # nothing written
    assert "Ray" not in proc.stdout  # no Ray started


# ------------------------------------------------------------------------- 1: a failed cell


@pytest.mark.ray
def test_failed_cells_exit_1(ray_address: str, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("device=cuda works here: no cell fails")
    res = tmp_path / "res"
    args = ["-m", "n=6,8", "width=16", "T=20", "device=cuda", f"results_dir={res}",
            f"hydra.launcher.address={ray_address}", f"hydra.sweep.dir={tmp_path}/sweep", *QUIET]
    proc = sweep(args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 ok, 0 diverged, 2 failed" in proc.stdout
    runs = pd.read_parquet(res / "default" / "runs")
    assert sorted(runs.status) == ["failed", "failed"]
    # failed cells are not complete: the same command runs them again, and fails again
    again = sweep(args, cwd=tmp_path)
    assert again.returncode == 1 and "0 already complete" in again.stdout, again.stdout[-3000:]


# ------------------------------------------------------------------------ 130 / 143: signals

# 8 small cells, one task per cell, one CPU. The study is held (tests/task_gate.py): the first
# pack runs, every later one waits at its start for a release that never comes, lending its CPU
# meanwhile (lend_cpu) so that the INAL tasks run, so the signal strikes mid-study at a known
# point (1 of 8 cells stored, and complete: its INAL stored too) however slow or busy the machine is.
LONG = ["-m", "n=4,5", "c=1", "width=8", "T=20", "train.N=2n", "train.seed=0,1,2,3", "train.n_eval=256",
        "inal.n_inits=16", "hydra.launcher.max_pack=1", "hydra.launcher.local_cpus=1", *QUIET]


@pytest.mark.ray
@pytest.mark.slow  # three drivers (signalled, rerun), each starting and stopping its own local Ray
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_exits_with_one_line_and_the_rerun_completes(signum: int, code: int, tmp_path: Path) -> None:
    res = tmp_path / "res"
    gate = tmp_path / "gate"
    gate.mkdir()
    args = [*LONG, f"results_dir={res}", f"hydra.sweep.dir={tmp_path}/sweep"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    study = res / "default"
    runs_dir = study / "runs"

    def stored() -> int:
        return len(list(runs_dir.rglob("*.parquet")))

    def one_complete_cell() -> bool:
        # the free pack's cell stored with its INAL: complete, what the rerun counts (the INAL
        # tasks are not held; the held packs lend their CPU, so this comes on one CPU too)
        return stored() == 1 and len(task_gate.complete_cells(study)) == 1

    with open(tmp_path / "out", "w") as out_f, open(tmp_path / "err", "w") as err_f:
        driver = subprocess.Popen([INAL_SWEEP, *args], cwd=tmp_path, stdout=out_f, stderr=err_f, text=True,
                                  env=task_gate.gate_env(gate, free=1, env=env, lend_cpu=True),
                                  start_new_session=True)
        try:
            # mid-study, by events: the free pack's cell is complete and a later pack is held
            task_gate.wait_for(lambda: one_complete_cell() and task_gate.held(gate),
                               "a complete cell and a held pack", alive=driver)
            # Ctrl-C reaches the whole foreground process group; a scheduler's SIGTERM the driver
            if signum == signal.SIGINT:
                os.killpg(driver.pid, signum)
            else:
                os.kill(driver.pid, signum)
            driver.wait(timeout=300)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert driver.returncode == code, err[-3000:]
    # the project's lines only: Ray's own (e.g. its C++ core's "Failed to push error to driver"
    # while the study is torn down) are not the project's to judge (task_gate.RAY_OWN_LINE)
    lines = [line for line in task_gate.project_lines(err) if not line.startswith("[inal-sweep] |")]  # progress
    assert len(lines) == 1, err[-3000:]
    match = re.fullmatch(r"inal-sweep: (\d+) of 8 cells stored; run the same command to resume", lines[0])
    assert match, lines
    assert no_traceback(out + err)
    # k counts the cells the driver heard back about (the stored one, unless the signal came
    # first); the held packs never ran: exactly the one cell is stored, and it is complete
    assert int(match.group(1)) <= 1 and stored() == 1 and len(task_gate.complete_cells(study)) == 1

    rerun = sweep(args, cwd=tmp_path, timeout=400)  # no gate: the plain command
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 already complete" in rerun.stdout, rerun.stdout[-3000:]
    runs = pd.read_parquet(runs_dir)
    assert len(runs) == 8 and runs.run_id.is_unique and set(runs.status) == {"ok"}
    curves = pd.read_parquet(res / "default" / "curves")
    assert not curves.duplicated(["run_id", "step"]).any()


def test_ray_own_lines_are_told_from_the_projects() -> None:
    """The rule the signal test filters with: Ray's log formats out, every line of the project in."""
    ray_lines = [
        "[2026-12-05 08:00:00,123 E 4242 4251] task_manager.cc:1545: Failed to push error to driver for task 0a",
        "task_manager.cc:1545: Failed to push error to driver for task 0a",
        "(raylet) A worker died or was killed while executing a task by an unexpected system error.",
        "(pid=4242) some output of a worker",
        "(pack_task pid=4242, ip=127.0.0.1) some output of a task",
        # as Ray 2.60 forwards a worker's output of the launcher's named tasks (colour code included)
        "\x1b[36m(train parity n=4 x1 pid=8393)\x1b[0m to stderr from task",
        "(INAL parity n=4 w=8 pid=4242, ip=10.0.0.2) some output of a task",
        "\x1b[33m(raylet, ip=10.0.0.2)\x1b[0m A worker died or was killed",
        "(autoscaler +3s) Adding 1 node(s)",
    ]
    ours = ["inal-sweep: 1 of 8 cells stored; run the same command to resume",
            "inal-sweep: invalid n='abc' (allowed: an integer >= 1)",
            "[inal-sweep] | 1/8 (1 failed)", "Traceback (most recent call last):",
            "  File \"/x/sweeps/run.py\", line 3, in main", "RuntimeError: (pid=1) in a message"]
    assert task_gate.project_lines("\n".join(ray_lines + ours)) == ours


def test_what_ray_writes_to_stderr_while_it_shuts_down_after_a_signal_is_not_shown(capfd, monkeypatch) -> None:
    """``sweeps.run._shutdown_ray`` (the interrupt path) points file descriptor 2 at /dev/null
    while Ray shuts down: a write there by Ray's C++ logger (stood in for by ``os.write(2, ...)``,
    what its logger does) is not shown; stderr works again afterwards."""
    import types

    import sweeps.run

    class FakeRay(types.SimpleNamespace):
        def is_initialized(self):
            return True

        def shutdown(self):
            os.write(2, b"[2026-12-05 08:00:00,123 E 1 2] task_manager.cc:1545: Failed to push error\n")

    monkeypatch.setitem(sys.modules, "ray", FakeRay())
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sweeps.run._shutdown_ray()
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


# ----------------------------------------------------------------------- a full disk mid-study


def test_disk_full_mid_study_one_line_exit_1_and_the_rerun_resumes(tmp_path: Path, monkeypatch, capsys) -> None:
    """Fault injected here, in the test: the third Parquet write finds the disk full (ENOSPC)."""
    import errno

    import pyarrow.parquet as pq
    from hydra.core.global_hydra import GlobalHydra

    import sweeps.run

    res = tmp_path / "res"
    args = ["inal-sweep", "-m", "hydra/launcher=basic", "n=4,5", "c=1", "train.seed=0,1", "width=8", "T=2",
            "train.N=2n", "train.checkpoints=2", "train.n_eval=64", "inal.n_inits=8", "device=cpu",
            f"results_dir={res}", f"hydra.sweep.dir={tmp_path}/sweep"]
    real_write = pq.write_table
    writes = []

    def write_until_full(table, where, *a, **k):
        writes.append(where)
        if len(writes) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return real_write(table, where, *a, **k)

    def run() -> int:
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", list(args))
        with pytest.raises(SystemExit) as stop:
            sweeps.run.main()
        GlobalHydra.instance().clear()
        return stop.value.code

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pq, "write_table", write_until_full)
    assert run() == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("inal-sweep:")]
    assert len(lines) == 1 and "no space left on the device" in lines[0] and "run the same command" in lines[0], err
    assert "Traceback" not in err

    monkeypatch.setattr(pq, "write_table", real_write)  # room again
    assert run() == 0
    runs = pd.read_parquet(res / "default" / "runs")
    assert len(runs) == 4 and runs.run_id.is_unique and set(runs.status) == {"ok"}
