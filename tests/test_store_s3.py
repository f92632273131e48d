"""A whole study against a real S3 API on loopback: moto's server mode (the ``test`` extra).

``results_dir='s3://bkt/studies?endpoint_override=127.0.0.1:<port>&scheme=http'`` is one value
everywhere (``sweeps.location``): the launcher and its Ray workers write the bucket through it,
the printed hint names it whole, ``python -m sweeps.store compact`` and ``inal-report`` act on that
endpoint (never on AWS's), ``load_study`` reads it. One study, driven as a user would: a driver
killed mid-study (held at a known point by ``tests/task_gate.py``: one cell complete in the bucket,
the next pack waiting), the same command again (every cell once), once more (recomputes nothing),
compaction, ``load_study`` and the report the hint names.

Credentials come from the environment, as on a cluster node (pyarrow's S3 client reads
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``); moto accepts any. They are set when this module is
imported, i.e. at collection, before the session's Ray starts: Ray's worker processes inherit the
environment of the process that starts Ray.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import task_gate
from test_location import shell_words
from test_store_concurrency import compactions_released_together

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service

moto_server = pytest.importorskip("moto.server")
pafs = pytest.importorskip("pyarrow.fs")
ds = pytest.importorskip("pyarrow.dataset")

BIN = Path(sys.executable).parent
GRID = ["n=4,5", "c=1", "gamma=0.05,0.1", "train.seed=0,1", "width=8", "T=50", "train.N=2n",
        "train.n_eval=256", "train.checkpoints=2", "inal.n_inits=16", "study=s3s"]
CELLS = 8


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 (a free port) with the bucket ``bkt``; ``host:port``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"127.0.0.1:{port}"
        pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True).create_dir("bkt")
        yield endpoint
    finally:
        server.stop()


def s3_files(uri: str, kind: str) -> list:
    from sweeps.location import Location

    loc = Location(uri).child(kind)
    sel = pafs.FileSelector(loc.path, recursive=True, allow_not_found=True)
    return sorted(i.path for i in loc.fs.get_file_info(sel) if i.type == pafs.FileType.File)


def read_dataset(uri: str, kind: str):
    """The dataset as every pyarrow reader sees the files (no dedupe: what is in the bucket)."""
    from sweeps.location import Location

    loc = Location(uri).child(kind)
    return ds.dataset(loc.path, filesystem=loc.fs, format="parquet", partitioning="hive").to_table().to_pandas()


def complete_in_bucket(study: str) -> set:
    """Run ids of the cells complete in the bucket: in a runs file, with the INAL file of their
    ``inal_id`` stored (``inal/target=<t>/<inal id>.parquet`` before compaction): what a rerun
    counts ``already complete``."""
    inal = {path.rsplit("/", 1)[1][: -len(".parquet")] for path in s3_files(study, "inal")}
    if not s3_files(study, "runs"):
        return set()
    runs = read_dataset(study, "runs")
    return {r for r, i in zip(runs.run_id, runs.inal_id) if i in inal}


def driver(results_dir: str, ray_address: str, cwd: Path, env: "dict | None" = None, **kwargs) -> "subprocess.Popen":
    cmd = [str(BIN / "inal-sweep"), "-m", *GRID, f"results_dir='{results_dir}'", "hydra/sweeper=inal",
           f"hydra.sweep.dir={cwd}/_sweep", f"hydra.launcher.address={ray_address}", "hydra.launcher.max_pack=1",
           "hydra.launcher.report=false", "hydra.launcher.progress=false"]
    return subprocess.Popen(cmd, cwd=cwd, env=dict(os.environ if env is None else env, PYTHONUNBUFFERED="1"),
                            text=True, **kwargs)


def rerun_in_process(results_dir: str, cwd: Path) -> list:
    """``inal-sweep -m <GRID>`` in this process, on the session's Ray; the jobs' return values."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    import sweeps.run

    GlobalHydra.instance().clear()
    hydra_ = Hydra.create_main_hydra_file_or_module(calling_file=None, calling_module="sweeps.run",
                                                    config_path="conf", job_name="run")
    try:
        returns = hydra_.multirun(config_name="config", task_function=sweeps.run.task, with_log_configuration=False,
                                  overrides=["hydra/sweeper=inal", "hydra.launcher.report=false",
                                             f"results_dir='{results_dir}'", f"hydra.sweep.dir={cwd}/_rerun",
                                             "hydra.launcher.max_pack=1", *GRID])
    finally:
        GlobalHydra.instance().clear()
    return [r.return_value for batch in returns for r in batch]


@pytest.mark.ray
@pytest.mark.slow  # two subprocess drivers, a rerun and two reports against the loopback S3 server
def test_study_on_s3_killed_resumed_rerun_compacted_loaded_and_reported(s3_endpoint, ray_address, tmp_path,
                                                                        monkeypatch, hydra_restore_singletons):
    from analysis.load import load_study
    from analysis.report import main as inal_report

    results_dir = f"s3://bkt/studies?endpoint_override={s3_endpoint}&scheme=http"
    study = f"s3://bkt/studies/s3s?endpoint_override={s3_endpoint}&scheme=http"

    # 1. killed mid-study, by events (tests/task_gate.py): the first pack runs, every later one
    # waits at its start for a release that never comes (lending its CPU, so that the INAL tasks
    # run); the kill comes once that pack's cell is complete in the bucket (runs and INAL files)
    # and a pack is held
    gate = tmp_path / "gate"
    gate.mkdir()
    first = driver(results_dir, ray_address, tmp_path, env=task_gate.gate_env(gate, free=1, lend_cpu=True),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        task_gate.wait_for(lambda: len(s3_files(study, "runs")) == 1 and len(complete_in_bucket(study)) == 1
                           and task_gate.held(gate), "a complete cell and a held pack", alive=first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    # the held packs never run (no release): one pack file of 8, and its cell complete
    assert len(s3_files(study, "runs")) == 1 and len(complete_in_bucket(study)) == 1

    # 2. the same command: the missing cells, every cell once; the hint names the URI whole
    resumed = driver(results_dir, ray_address, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert f"{CELLS} distinct cells" in out, out[-2000:]
    assert "1 already complete" in out, out[-2000:]
    hint = next(line for line in out.splitlines() if "analyse: inal-report" in line).split("analyse: ", 1)[1]
    assert shell_words(hint) == ["inal-report", study]  # as a shell reads it: quoted
    runs = read_dataset(study, "runs")
    assert len(runs) == CELLS and runs.run_id.is_unique and set(runs.status) == {"ok"}

    # 3. once more, in this process (the launcher's code, without a driver's start-up): nothing
    # recomputed, nothing rewritten
    before = s3_files(study, "runs") + s3_files(study, "curves")
    returns = rerun_in_process(results_dir, tmp_path)
    assert len(returns) == CELLS and {r["status"] for r in returns} == {"skipped"}
    assert {r["results"] for r in returns} == {study}
    assert s3_files(study, "runs") + s3_files(study, "curves") == before

    # 4. compaction of that endpoint's bucket (the query is kept: AWS is never asked)
    proc = subprocess.run([sys.executable, "-m", "sweeps.store", "compact", study], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [p.rsplit("/", 1)[1][:5] for p in s3_files(study, "runs")] == ["part-"]  # one target, one file
    runs, curves = read_dataset(study, "runs"), read_dataset(study, "curves")
    assert len(runs) == CELLS and runs.run_id.is_unique
    assert len(curves) == CELLS * 2 and not curves.duplicated(["run_id", "step"]).any()

    # 5. load_study through the URI, and the report the hint names (into ./report-<study>)
    loaded = load_study(study)
    assert len(loaded.runs) == CELLS and sorted(loaded.runs.run_id) == sorted(runs.run_id)
    assert len(loaded.curves) == CELLS * 2
    monkeypatch.chdir(tmp_path)  # inal-report in this process (its console script calls the same main)
    assert inal_report(shlex.split(hint)[1:]) == 0
    assert (tmp_path / "report-s3s" / "report.md").is_file()
    # ... and into the bucket when --out names a URI
    out_uri = f"s3://bkt/reports/s3s?endpoint_override={s3_endpoint}&scheme=http"
    assert inal_report([study, "--out", out_uri]) == 0
    written = pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http").get_file_info(
        pafs.FileSelector("bkt/reports/s3s"))
    assert {"report.md", "summary.json"} <= {i.base_name for i in written}


@pytest.mark.parametrize("command", [["-m", "sweeps.store", "compact"], ["-m", "sweeps.store", "migrate"],
                                     ["-m", "analysis.report"]], ids=["compact", "migrate", "inal-report"])
def test_store_maintenance_refuses_a_missing_study_with_one_line(s3_endpoint, tmp_path, command):
    """``compact``, ``migrate`` and ``inal-report`` of a study that is not there, on the loopback
    endpoint: one line naming it, exit 2, nothing written."""
    study = f"s3://bkt/studies/none?endpoint_override={s3_endpoint}&scheme=http"
    proc = subprocess.run([sys.executable, *command, study], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "none" in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()) and not s3_files(study, "")


# Two drivers on overlapping grids of one study in the bucket (seeds 0-7 and 4-11: 12 cells, 4 in
# both), one training run per pack and one pack in flight per driver, so that "work done twice" is
# counted in training runs.
TWO = ["n=4", "c=1", "gamma=0.05", "width=8", "T=4", "train.N=2n", "train.n_eval=256", "train.checkpoints=2",
       "inal.n_inits=16", "study=two"]
TWO_CELLS, TWO_SHARED = 12, 4


def two_driver(seeds: str, results_dir: str, ray_address: str, cwd: Path, env: dict) -> "subprocess.Popen":
    cmd = [str(BIN / "inal-sweep"), "-m", *TWO, f"train.seed={seeds}", f"results_dir='{results_dir}'",
           "hydra/sweeper=inal", f"hydra.sweep.dir={cwd}/_sweep", f"hydra.launcher.address={ray_address}",
           "hydra.launcher.max_pack=1", "hydra.launcher.max_in_flight=1", "hydra.launcher.report=false",
           "hydra.launcher.progress=false"]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=cwd, env=dict(env, PYTHONUNBUFFERED="1"), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_groups(procs: list) -> None:
    """SIGKILL the process group of every driver still running (a failed test leaves none)."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def trained(out: str) -> int:
    """Training runs a driver computed itself (its summary's ``tasks:`` line)."""
    line = next(line for line in out.splitlines() if "] tasks:" in line)
    return int(line.split(" training runs in ")[0].rsplit(" ", 1)[1])


def inal_computed(out: str) -> int:
    """INAL settings a driver computed itself (its summary's ``tasks:`` line)."""
    line = next(line for line in out.splitlines() if "] tasks:" in line)
    return int(line.split("] tasks: ")[1].split(" ", 1)[0])


@pytest.mark.ray
@pytest.mark.slow  # two subprocess drivers at once against the loopback S3 server
def test_two_drivers_on_one_study_on_s3_share_the_work_and_converge(s3_endpoint, ray_address, tmp_path):
    """Two ``inal-sweep`` processes on one ``s3://`` study, overlapping for real: the second starts
    when the first has a pack stored and its next pack running (held: ``tests/task_gate.py``), and
    the study is released once the second has a pack of its own running too. Both exit 0; the
    claims (``sweeps.claims``: files in the bucket) keep the work done twice to the cells claimed by
    both at the same moment; afterwards the bucket holds every cell exactly once as pyarrow, pandas
    and polars read its files, every curves file beside its runs file, nothing quarantined, no
    claim left running."""
    import pandas as pd

    from sweeps.location import Location

    results_dir = f"s3://bkt/studies?endpoint_override={s3_endpoint}&scheme=http"
    study = f"s3://bkt/studies/two?endpoint_override={s3_endpoint}&scheme=http"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = task_gate.gate_env(gate, free=1)  # the first pack to start runs; every later one waits
    a = two_driver("range(0,8)", results_dir, ray_address, tmp_path / "a", env)
    procs = [a]
    try:
        # A has stored a cell and holds its next pack (its claim is in the bucket)
        task_gate.wait_for(lambda: s3_files(study, "runs") and task_gate.held(gate), "A's first cell stored",
                           alive=a)
        assert [p for p in s3_files(study, "_claims") if p.endswith(".claim")], "A's running pack is not claimed"
        b = two_driver("range(4,12)", results_dir, ray_address, tmp_path / "b", env)
        procs.append(b)
        # B runs a pack of its own (not A's claimed one) while A's is running: both drivers mid-study
        both = task_gate.wait_for(lambda: len({h["run_id"] for h in task_gate.held(gate)}) >= 2 and task_gate.held(gate),
                                  "a pack of each driver running", alive=b)
        assert a.poll() is None and len(both) == 2
        task_gate.release(gate)
        out_a, _ = a.communicate(timeout=400)
        out_b, _ = b.communicate(timeout=400)
    finally:
        kill_groups(procs)
    assert a.returncode == 0 and b.returncode == 0, out_a[-3000:] + out_b[-3000:]

    # the work was shared: each driver computed part of it, and only cells both claimed at the same
    # moment (a pack in flight each) twice; B credited cells A stored
    ran_a, ran_b = trained(out_a), trained(out_b)
    print(f"training runs computed: driver A {ran_a}, driver B {ran_b} ({TWO_CELLS} cells, {TWO_SHARED} shared)")
    assert ran_a >= 1 and ran_b >= 1
    assert TWO_CELLS <= ran_a + ran_b < TWO_CELLS + TWO_SHARED, (ran_a, ran_b)
    assert "stored by another driver" in out_a + out_b, out_a[-1500:] + out_b[-1500:]
    # the one INAL setting both grids share: claimed by A before its first pack, so B (started
    # later) finds it claimed or stored and leaves it to A; computed once in all
    assert (inal_computed(out_a), inal_computed(out_b)) == (1, 0), out_a[-1500:] + out_b[-1500:]

    # the files themselves: each cell once, read straight from the bucket (no dedupe by id)
    runs, curves = read_dataset(study, "runs"), read_dataset(study, "curves")
    assert len(runs) == TWO_CELLS and runs.run_id.is_unique and set(runs.status) == {"ok"}
    assert sorted(runs.seed) == list(range(TWO_CELLS))
    assert len(curves) == TWO_CELLS * 2 and not curves.duplicated(["run_id", "step"]).any()
    assert set(curves.run_id) == set(runs.run_id)
    loc = Location(study)
    frame = pd.read_parquet(loc.child("runs").path, filesystem=loc.fs)
    assert len(frame) == TWO_CELLS and frame.run_id.is_unique
    pl = pytest.importorskip("polars")
    polars_rows = pl.scan_parquet("s3://bkt/studies/two/runs/**/*.parquet", hive_partitioning=True, storage_options={
        "aws_endpoint_url": f"http://{s3_endpoint}", "aws_allow_http": "true", "aws_region": "us-east-1",
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}).collect()
    assert polars_rows.height == TWO_CELLS and polars_rows["run_id"].n_unique() == TWO_CELLS

    # no orphan, nothing quarantined, no running claim left
    def names(kind: str) -> set:
        prefix = Location(study).child(kind).path + "/"
        return {p[len(prefix):] for p in s3_files(study, kind)}

    assert names("curves") == names("runs")
    assert not s3_files(study, "_quarantine")
    assert not [p for p in s3_files(study, "_claims") if p.endswith(".claim")]
    assert not s3_files(study, "_lease")
    from analysis.load import load_study

    assert sorted(load_study(study).runs.run_id) == sorted(runs.run_id)


def test_the_object_store_lease_has_one_holder_whatever_the_order_of_names(s3_endpoint, monkeypatch):
    """The maintenance lease on an object store (list, put, list): a contender whose name sorts
    first but whose put lands after another contender's second look (its clock earlier, its put
    slower) must not hold the lease too. Played in one process, step by step: B looked (nothing
    there) before A put; A put, looked again and holds; then B's put lands, earlier in name order."""
    import sweeps.store as store_mod
    from sweeps.store import ResultsStore

    results_dir = f"s3://bkt/lease?endpoint_override={s3_endpoint}&scheme=http"
    a, b = ResultsStore(results_dir, "s"), ResultsStore(results_dir, "s")
    with a.maintenance_lease(wait=False) as held_a:
        assert held_a
        real = b._live_claims
        looks = []

        def first_look_before_a_put(lease_dir):
            looks.append(lease_dir)
            return [] if len(looks) == 1 else real(lease_dir)

        monkeypatch.setattr(b, "_live_claims", first_look_before_a_put)
        monkeypatch.setattr(store_mod.time, "time_ns", lambda: 1)  # B's name sorts before A's
        with b.maintenance_lease(wait=False) as held_b:
            assert not held_b, "two processes hold the maintenance lease at once"
        monkeypatch.undo()
    lease = pafs.FileSelector(f"bkt/lease/s/_lease", allow_not_found=True)
    assert not [i for i in a.fs.get_file_info(lease) if i.type == pafs.FileType.File]  # both claims gone


def test_two_compactions_at_once_on_s3_quarantine_nothing_and_converge(s3_endpoint, tmp_path):
    """Two ``python -m sweeps.store compact <URI>`` processes released together by a barrier (files,
    not sleeps) on a study in the bucket holding cells twice (two writers) and 24 small files: the
    object-store lease lets one compact at a time; both exit 0, every cell once in the files,
    nothing quarantined, no lease left."""
    from sweeps.store import ResultsStore

    from test_store import _two_writers, curves, pack_curves, run_row

    results_dir = f"s3://bkt/compact2?endpoint_override={s3_endpoint}&scheme=http"
    study = f"s3://bkt/compact2/s?endpoint_override={s3_endpoint}&scheme=http"
    store = ResultsStore(results_dir, "s")
    ids = _two_writers(store)
    for i in range(24):
        store.write_runs("majority", [run_row(f"x{i:02d}")], pack_curves(curves(f"x{i:02d}")))
    assert len(read_dataset(study, "runs")) == 16 + 24  # 4 cells twice
    codes, outs = compactions_released_together(study, tmp_path)
    assert codes == [0, 0], outs
    cells = set(ids) | {f"x{i:02d}" for i in range(24)}
    runs, cur = read_dataset(study, "runs"), read_dataset(study, "curves")
    assert len(runs) == len(cells) and set(runs.run_id) == cells
    assert len(cur) == len(cells) * 3 and not cur.duplicated(["run_id", "step"]).any()
    assert not s3_files(study, "_quarantine") and not s3_files(study, "_lease")
    runs_names = {p.rsplit("/runs/", 1)[1] for p in s3_files(study, "runs")}
    assert {p.rsplit("/curves/", 1)[1] for p in s3_files(study, "curves")} == runs_names  # no orphan
    assert ResultsStore(results_dir, "s").completed_run_ids() == cells


def test_a_study_of_the_previous_layout_in_a_bucket_names_its_migration_whole(s3_endpoint, tmp_path):
    """``inal-sweep`` into a study of the previous layout in the bucket: one line, exit 2, before
    Ray, naming ``python -m sweeps.store migrate <URI>`` with the URI whole (quoted for a shell);
    that command, run as the line says, migrates the study on that endpoint."""
    from sweeps.store import ResultsStore

    from test_store import _DUMMY, _old_store_module

    from datetime import datetime, timezone

    import pyarrow as pa

    old = _old_store_module(tmp_path)
    local = old.ResultsStore(str(tmp_path / "local"), "s")
    for i in range(3):
        row = {f.name: datetime(2026, 1, 1, tzinfo=timezone.utc) if pa.types.is_timestamp(f.type) else _DUMMY[f.type]
               for f in old.RUNS_SCHEMA}
        row.update(study="s", run_id=f"r{i}", status="ok", corr=0.5, T=7)
        local.write_run("parity", row, {"study": ["s"] * 2, "run_id": [f"r{i}"] * 2, "step": [0, 7],
                                        "corr": [0.0, 0.5], "corr_se": [0.1] * 2, "acc": [0.5] * 2,
                                        "loss": [1.0] * 2, "param_norm": [1.0] * 2})
    results_dir = f"s3://bkt/legacy?endpoint_override={s3_endpoint}&scheme=http"
    study = f"s3://bkt/legacy/s?endpoint_override={s3_endpoint}&scheme=http"
    s3 = ResultsStore(results_dir, "s")
    pafs.copy_files(str(tmp_path / "local" / "s"), "bkt/legacy/s", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=s3.fs)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([str(BIN / "inal-sweep"), "-m", "n=4", "T=1", "width=4", "inal.n_inits=2", "study=s",
                           f"results_dir='{results_dir}'", "hydra.launcher.report=false",
                           "hydra.launcher.progress=false"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Started a local Ray" not in proc.stderr + proc.stdout
    command = shell_words(lines[0].split("migrate the study once with: ", 1)[1])
    assert command == ["python", "-m", "sweeps.store", "migrate", study]
    migrated = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert ResultsStore(results_dir, "s").completed_run_ids() == {"r0", "r1", "r2"}
    runs = read_dataset(study, "runs")
    assert sorted(runs.run_id) == ["r0", "r1", "r2"] and "correlation" in runs and "corr" not in runs


@pytest.fixture
def closed_endpoint():
    """``127.0.0.1:<port>`` where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("tool", ["inal-sweep", "inal-report", "compact"])
def test_an_endpoint_that_cannot_be_reached_is_one_line_exit_1(closed_endpoint, tmp_path, tool):
    """A results location on an endpoint nobody answers (a wrong ``endpoint_override``, the
    network down): each tool says so in one line naming the URI whole, exit 1 (the location, not a
    setting: the same command works once the endpoint answers), no traceback, Ray not started."""
    results_dir = f"s3://bkt/studies?endpoint_override={closed_endpoint}&scheme=http"
    study = f"s3://bkt/studies/default?endpoint_override={closed_endpoint}&scheme=http"
    command = {"inal-sweep": [str(BIN / "inal-sweep"), "-m", "n=4", "T=1", "width=4", "inal.n_inits=2",
                              f"results_dir='{results_dir}'", "hydra.launcher.report=false",
                              "hydra.launcher.progress=false"],
               "inal-report": [sys.executable, "-m", "analysis.report", study],
               "compact": [sys.executable, "-m", "sweeps.store", "compact", study]}[tool]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert "Started a local Ray" not in proc.stderr + proc.stdout
    assert closed_endpoint in lines[0] and not list(tmp_path.iterdir())


@pytest.mark.ray
@pytest.mark.slow  # two subprocess drivers, one killed, and a rerun against the loopback S3 server
def test_a_driver_killed_beside_another_on_s3_leaves_nothing_a_rerun_cannot_converge(s3_endpoint, ray_address,
                                                                                     tmp_path):
    """Driver A (seeds 4-11) holds a pack of a cell B's grid shares (seed 5) when B (seeds 0-7)
    starts; once B holds a pack too, A is SIGKILLed and the study released. B finishes all of its
    cells, the dead driver's claim holding nothing (its pid is gone); the same command as A's
    then completes the study. Afterwards every cell once in the bucket's files (A's held task may
    still have stored its pack after the kill: the end-of-study compaction merges it), no orphan,
    nothing quarantined, no claim left: the dead driver's is removed."""

    results_dir = f"s3://bkt/killed?endpoint_override={s3_endpoint}&scheme=http"
    study = f"s3://bkt/killed/two?endpoint_override={s3_endpoint}&scheme=http"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = task_gate.gate_env(gate, free=1)
    a = two_driver("range(4,12)", results_dir, ray_address, tmp_path / "a", env)
    procs = [a]
    try:
        task_gate.wait_for(lambda: s3_files(study, "runs") and task_gate.held(gate), "A's first cell stored", alive=a)
        b = two_driver("range(0,8)", results_dir, ray_address, tmp_path / "b", env)
        procs.append(b)
        task_gate.wait_for(lambda: len({h["run_id"] for h in task_gate.held(gate)}) >= 2, "a pack of each held",
                           alive=b)
        # A is held (a pack waits at the gate): it cannot have ended by itself
        assert a.poll() is None, f"A ended ({a.returncode}) before it was killed{task_gate.output_tail(a)}"
        os.killpg(a.pid, signal.SIGKILL)
        a.wait(timeout=60)
        task_gate.release(gate)
        out_b, _ = b.communicate(timeout=400)
    finally:
        kill_groups(procs)
    assert b.returncode == 0, out_b[-3000:]
    assert "8 distinct cells" in out_b and " 0 diverged, 0 failed" in out_b, out_b[-2000:]
    rerun = two_driver("range(4,12)", results_dir, ray_address, tmp_path / "a2", dict(os.environ))
    out_a2, _ = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, out_a2[-3000:]

    runs, curves = read_dataset(study, "runs"), read_dataset(study, "curves")
    assert len(runs) == TWO_CELLS and runs.run_id.is_unique and sorted(runs.seed) == list(range(TWO_CELLS))
    assert len(curves) == TWO_CELLS * 2 and not curves.duplicated(["run_id", "step"]).any()
    prefix = {kind: s3_files(study, kind) for kind in ("runs", "curves")}
    names = {kind: {p.rsplit(f"/{kind}/", 1)[1] for p in paths} for kind, paths in prefix.items()}
    assert names["curves"] == names["runs"]  # no orphan
    assert not s3_files(study, "_quarantine") and not s3_files(study, "_lease")
    assert not [p for p in s3_files(study, "_claims") if p.endswith(".claim")]  # the dead driver's included


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_long_compaction_keeps_its_lease_alive(s3_endpoint, tmp_path, monkeypatch, where):
    """A compaction rewrites its lease every ``LEASE_S / 3`` between merges (here at every merge:
    ``_LEASE_RENEW_S`` is 0), so that one longer than ``LEASE_S`` is not taken over by another
    host's process as left by a dead one; the lease is released at the end."""
    import sweeps.store as store_mod
    from sweeps.store import ResultsStore

    from test_store import _two_writers

    results_dir = str(tmp_path / "res") if where == "local" else f"s3://bkt/renew?endpoint_override={s3_endpoint}&scheme=http"
    store = ResultsStore(results_dir, "s")
    _two_writers(store)  # two groups of runs files sharing cells: two merges
    seen = []
    real = ResultsStore._merge

    def merge(self, *args, **kwargs):
        result = real(self, *args, **kwargs)  # renews first, then merges
        with self.fs.open_input_stream(self._lease[0]) as held:
            seen.append(held.read().decode().split(" renewal ")[-1])
        return result

    monkeypatch.setattr(store_mod, "_LEASE_RENEW_S", 0.0)
    monkeypatch.setattr(ResultsStore, "_merge", merge)
    store.compact(min_files=2)  # the cells held twice, then the small files: two merges at least
    assert len(seen) >= 2 and seen == [str(k) for k in range(1, len(seen) + 1)], seen
    lease_dir = pafs.FileSelector(posixpath.join(store.root, "_lease"), allow_not_found=True)
    assert not [i for i in store.fs.get_file_info(lease_dir) if i.type == pafs.FileType.File]
