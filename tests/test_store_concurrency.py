"""Many processes on one study, for real: the store converges (sweeps/store.py, ``compact``).

- two ``inal-sweep`` drivers on overlapping grids (seeds 0-7 and 4-11) started together, on the
  session's Ray: both exit 0 and every cell is in the files exactly once, as pandas, pyarrow,
  DuckDB and polars read them (not only ``load_study``), nothing quarantined;
- a compaction process killed (SIGKILL, by itself, at its first delete of a curves file: after it
  deleted the runs files it merged) leaves orphan curves; the rerun of the complete study removes
  them;
- two ``python -m sweeps.store compact`` processes released together by a barrier (files, not
  sleeps): both exit 0, every cell once, no sound file quarantined.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

import task_gate  # noqa: E402
from conftest import multirun  # noqa: E402
from test_store import _counts_by_every_reader, _two_writers  # noqa: E402

BIN = Path(sys.executable).parent
TINY = ["n=4", "c=1", "width=8", "T=4", "train.N=2n", "train.n_eval=256", "train.checkpoints=2", "inal.n_inits=16",
        "study=both"]
CHECKPOINTS = 2


def sweep_cmd(seeds: str, results_dir: Path, ray_address: str, cwd: Path) -> list:
    return [str(BIN / "inal-sweep"), "-m", *TINY, f"train.seed={seeds}", f"results_dir={results_dir}",
            "hydra/sweeper=inal", f"hydra.sweep.dir={cwd}/_sweep", f"hydra.launcher.address={ray_address}",
            "hydra.launcher.max_pack=3", "hydra.launcher.max_in_flight=1", "hydra.launcher.report=false",
            "hydra.launcher.progress=false"]


def trained(out: str) -> int:
    """Training runs a driver computed itself (its summary's ``tasks:`` line)."""
    line = next(line for line in out.splitlines() if "] tasks:" in line)
    return int(line.split(" training runs in ")[0].rsplit(" ", 1)[1])


def compactions_released_together(location: str, tmp_path: Path) -> tuple:
    """Two ``python -m sweeps.store compact <location>`` processes, each started and ready (the
    module imported) before a barrier file releases both at once: ``(exit statuses, outputs)``."""
    barrier = tmp_path / "go"
    waiter = ("import sys, time\n"
              "from pathlib import Path\n"
              "import sweeps.store as s\n"
              "Path(sys.argv[2]).touch()\n"
              "while not Path(sys.argv[3]).exists():\n"
              "    time.sleep(0.01)\n"
              "sys.exit(s.main(['compact', sys.argv[1]]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", waiter, location, str(tmp_path / f"ready{k}"), str(barrier)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    try:
        deadline = time.time() + 120  # bounds a child that died before it was ready (its output says why)
        while not all((tmp_path / f"ready{k}").exists() for k in range(2)) and time.time() < deadline:
            time.sleep(0.01)
        barrier.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [p.returncode for p in procs], outs


def assert_converged(study: Path, cells: int) -> None:
    """Every cell once in the files as every reader sees them, every curves file with its runs file,
    nothing quarantined."""
    runs_dir, curves_dir = study / "runs", study / "curves"
    assert set(_counts_by_every_reader(str(runs_dir), "run_id").values()) == {cells}
    assert set(_counts_by_every_reader(str(curves_dir), "step").values()) == {cells * CHECKPOINTS}
    runs_files = {p.relative_to(runs_dir) for p in runs_dir.rglob("*.parquet")}
    assert {p.relative_to(curves_dir) for p in curves_dir.rglob("*.parquet")} <= runs_files  # no orphan
    assert not (study / "_quarantine").exists()


@pytest.mark.ray
@pytest.mark.slow  # two subprocess drivers at once, a killed compaction process, a rerun
def test_two_drivers_on_overlapping_grids_then_a_killed_compaction_converge(ray_address, tmp_path,
                                                                          hydra_restore_singletons):
    res = tmp_path / "res"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    a = subprocess.Popen(sweep_cmd("range(0,8)", res, ray_address, tmp_path / "a"), cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    b = subprocess.Popen(sweep_cmd("range(4,12)", res, ray_address, tmp_path / "b"), cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_a, _ = a.communicate(timeout=400)
    out_b, _ = b.communicate(timeout=400)
    assert a.returncode == 0 and b.returncode == 0, out_a[-2000:] + out_b[-2000:]
    study = res / "both"
    assert_converged(study, 12)
    # the drivers shared the work (sweeps.claims): without claims each computes its 8 cells (16);
    # with them only cells claimed by both at the same moment (packs in flight) are computed twice
    print(f"training runs computed: driver A {trained(out_a)}, driver B {trained(out_b)} (12 cells)")
    assert trained(out_a) + trained(out_b) < 16, (trained(out_a), trained(out_b))
    assert not list((study / "_claims").glob("*.claim"))  # no running claim left behind
    from analysis.load import load_study

    assert len(load_study(str(study)).runs) == 12

    # a compaction process that SIGKILLs itself at its first delete of a curves file: the small
    # runs files it merged are deleted, their curves files left behind
    killer = ("import os, signal, sys\n"
              "import sweeps.store as s\n"
              "real = s.ResultsStore._delete\n"
              "def delete(self, path):\n"
              "    if '/curves/' in path:\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return real(self, path)\n"
              "s.ResultsStore._delete = delete\n"
              "sys.exit(s.main(['compact', sys.argv[1]]))\n")
    proc = subprocess.run([sys.executable, "-c", killer, str(study)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    raw_curves = len(pd.read_parquet(study / "curves"))
    assert raw_curves > 12 * CHECKPOINTS  # orphans: more curve rows than cells x checkpoints

    # the rerun of the complete study: nothing to compute, and it finishes the compaction
    returns = multirun(TINY + ["train.seed=range(0,12)", "hydra.launcher.max_pack=3"], res)
    assert len(returns) == 12 and {r["status"] for r in returns} == {"skipped"}
    assert_converged(study, 12)


def test_two_compactions_at_once_quarantine_nothing_and_converge(tmp_path):
    """Two ``python -m sweeps.store compact`` processes released together by a barrier on a study
    holding cells twice (two writers) and 24 small files."""
    from sweeps.store import ResultsStore

    from test_store import curves, pack_curves, run_row

    store = ResultsStore(str(tmp_path / "res"), "s")
    ids = _two_writers(store)
    for i in range(24):
        rid = f"x{i:02d}"
        store.write_runs("majority", [run_row(rid)], pack_curves(curves(rid)))
    codes, outs = compactions_released_together(store.root, tmp_path)
    assert codes == [0, 0], outs
    study = Path(store.root)
    assert not (study / "_quarantine").exists()
    assert ResultsStore(str(tmp_path / "res"), "s").completed_run_ids() == set(ids) | {f"x{i:02d}" for i in range(24)}
    assert set(_counts_by_every_reader(str(study / "runs"), "run_id").values()) == {12 + 24}
    assert set(_counts_by_every_reader(str(study / "curves"), "step").values()) == {(12 + 24) * 3}
    assert not (study / "_lease" / "maintenance").exists()


def test_claims_tell_other_drivers_what_is_running_stored_or_abandoned(tmp_path):
    """The claim protocol between two drivers' views of one study (sweeps.claims), and a claim of a
    driver that died (its pid is gone from this host)."""
    import socket

    from sweeps.claims import CLAIM_S, StudyClaims
    from sweeps.store import ResultsStore

    store = ResultsStore(str(tmp_path / "res"), "s")
    a = StudyClaims(store)

    def seen_by_another() -> tuple:  # a fresh view: sees every done/ file at once
        return StudyClaims(store).others()

    first = a.claim(["r1", "r2"])
    second = a.claim(["r3"])
    assert seen_by_another() == ({"r1", "r2", "r3"}, set()) and a.others() == (set(), set())  # not its own
    a.finish(first, ok=True)
    a.finish(second, ok=False)  # a run failed: free for another driver to retry
    assert seen_by_another() == (set(), {"r1", "r2"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claims_dir = Path(store.root, "_claims")
    (claims_dir / f"{socket.gethostname()}~{dead.pid}~deadbeef-0.claim").write_text("r4\n")
    assert seen_by_another() == (set(), {"r1", "r2"})  # a dead driver's claim holds nothing
    b = StudyClaims(store)
    old = next(claims_dir.glob("done/*.done"))
    assert b.remove_stale() == 1  # the dead driver's claim; the .done is recent: kept
    os.utime(old, (time.time() - CLAIM_S - 60,) * 2)
    assert b.remove_stale() == 1 and not list(claims_dir.rglob("*.*"))
    third = b.claim(["r5"])
    b.release()
    assert not Path(third).exists() and seen_by_another() == (set(), set())


def inal_tasks(out: str) -> int:
    """INAL settings a driver computed itself (its summary's ``tasks:`` line)."""
    line = next(line for line in out.splitlines() if "] tasks:" in line)
    return int(line.split("] tasks: ")[1].split(" ", 1)[0])


@pytest.mark.ray
@pytest.mark.slow  # a reference study in process, then two subprocess drivers
def test_an_inal_setting_another_driver_claimed_is_left_to_it_then_credited_or_computed(
        ray_address, tmp_path, hydra_restore_singletons):
    """INAL tasks are claimed like training packs (sweeps.claims): a driver that finds another live
    driver's claim on its INAL setting trains its cells but leaves the setting alone, and at its end
    (a) credits it when the other driver stored it, or (b) computes it when the claim ended without
    a file. The other driver is played by this test (a claim file of this live process, released on
    an event: every run of the study stored while the driver waits), so nothing depends on timing."""
    import shutil
    import socket

    seeds = "range(0,4)"
    ref = tmp_path / "ref"  # the setting's INAL file, computed once as the other driver would store it
    multirun(TINY + [f"train.seed={seeds}"], ref)
    (ref_inal,) = (ref / "both" / "inal").rglob("*.parquet")
    inal_id = ref_inal.stem

    def driver_waiting_on_a_claim(study: str, then: str) -> str:
        res = tmp_path / then
        claims = res / study / "_claims"
        claims.mkdir(parents=True)
        claim = claims / f"{socket.gethostname()}~{os.getpid()}~feedf00d-0.claim"  # live: this process
        claim.write_text(inal_id + "\n")
        cmd = [c.replace("study=both", f"study={study}") for c in sweep_cmd(seeds, res, ray_address, tmp_path / then)]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            runs = res / study / "runs"
            task_gate.wait_for(lambda: runs.exists() and len(pd.read_parquet(runs)) == 4,
                               "every run stored", alive=proc)
            assert proc.poll() is None  # the driver waits for the claimed setting ...
            assert not (res / study / "inal").exists() or not list((res / study / "inal").rglob("*.parquet"))
            if then == "stored":  # ... which the "other driver" stores (written aside, renamed), then releases
                target = res / study / "inal" / ref_inal.parent.name / ref_inal.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ref_inal, target.with_suffix(".tmp"))
                os.replace(target.with_suffix(".tmp"), target)
            claim.unlink()
            out, _ = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out[-3000:]
        assert "4 configs -> 4 distinct cells; 0 already complete (skipped), 4 run: 4 ok" in out, out[-3000:]
        assert list((res / study / "inal").rglob("*.parquet"))
        return out

    out = driver_waiting_on_a_claim("credited", "stored")
    assert inal_tasks(out) == 0 and "1 INAL settings stored by another driver" in out, out[-3000:]
    out = driver_waiting_on_a_claim("abandoned", "released")
    assert inal_tasks(out) == 1 and "stored by another driver" not in out, out[-3000:]
