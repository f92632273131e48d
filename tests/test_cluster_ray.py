"""A study on a real two-node Ray cluster on loopback, submitted as a Ray Job.

The cluster is started the way a user starts one (``ray start --head`` and ``ray start --address``,
each node with its own temp dir and ports, ``--block`` so that SIGTERM to the ``ray start``
process stops exactly that node). Shown here:

- a small study submitted with ``ray job submit --submission-id <inal-submit --print-id>``
  completes and its Parquet results read back hold exactly the study's cells;
- a second submission with the same id is rejected by Ray, and ``inal-submit`` does not run a
  completed study again;
- the worker node killed (SIGKILL to its raylet) while a study submitted by ``inal-submit`` is
  held mid-way (``tests/task_gate.py``: one cell stored, a pack waiting on the worker node): the
  study completes, every cell exactly once, the lost pack's cell included.

Only processes started here are signalled (the two ``ray start`` processes and their
descendants); ``ray stop`` is never called.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import task_gate

# Slow: a two-node Ray cluster started as a user starts one (two `ray start`, a dashboard, Ray
# Jobs), each study a job whose driver and workers import torch; the SLURM test starts its own.
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]

psutil = pytest.importorskip("psutil")
pd = pytest.importorskip("pandas")

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")

# A tiny study: 2 INAL settings (n = 4, 5), 2 x 3 = 6 training cells of 8-wide networks.
STUDY_OVERRIDES = ["n=4,5", "c=1", "width=8", "depth=1", "T=20", "train.seed=0,1,2",
                   "train.N=2n", "train.n_eval=256", "inal.n_inits=16",
                   "hydra.launcher.max_pack=1", "hydra.launcher.progress=false", "hydra.launcher.report=false"]
# For the node-loss test: 12 small cells, one task per cell; the study is held mid-way by
# tests/task_gate.py (not sized to outlast the kill), so the cells need not be long.
LOSS_OVERRIDES = ["n=4,5", "c=1", "width=8", "depth=1", "T=20", "train.seed=0,1,2,3,4,5",
                  "train.N=2n", "train.n_eval=256", "inal.n_inits=16",
                  "hydra.launcher.max_pack=1", "hydra.launcher.progress=false", "hydra.launcher.report=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_range(width: int) -> int:
    """First port of ``width`` consecutive ports that are free now (for Ray's worker processes)."""
    for _ in range(200):
        base = int.from_bytes(os.urandom(2), "big") % 20000 + 30000
        try:
            sockets = []
            for port in range(base, base + width):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


def _node_options(temp_dir: Path) -> list[str]:
    worker_base = _free_port_range(40)
    return ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0",
            "--temp-dir", str(temp_dir), "--object-store-memory", str(200 * 2**20),
            "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
            "--dashboard-agent-listen-port", str(_free_port()),
            "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()),
            "--metrics-export-port", str(_free_port()),
            "--min-worker-port", str(worker_base), "--max-worker-port", str(worker_base + 39),
            "--disable-usage-stats", "--block"]


class LoopbackCluster:
    """Head + one worker node on 127.0.0.1, each its own ``ray start --block`` process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gcs_port = _free_port()
        self.dashboard_port = _free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        # Token authentication (Ray's default since 2.52) with this cluster's own token, handed
        # to every process here the way a user hands it to theirs: RAY_AUTH_TOKEN.
        self.env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                        RAY_API_SERVER_ADDRESS=self.dashboard, PYTHONUNBUFFERED="1",
                        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
            self.env.pop(var, None)
        self.nodes: dict[str, subprocess.Popen] = {}
        self.known: dict[int, psutil.Process] = {}  # every descendant seen: ours to clean up

    def _start(self, name: str, args: list[str]) -> None:
        temp_dir = self.root / name
        temp_dir.mkdir()
        log = open(self.root / f"{name}.log", "w")
        self.nodes[name] = subprocess.Popen([RAY, "start", *args, *_node_options(temp_dir)],
                                            cwd=self.root, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        self._start("head", ["--head", "--port", str(self.gcs_port), "--include-dashboard", "true",
                             "--dashboard-host", "127.0.0.1",
                             "--dashboard-port", str(self.dashboard_port),
                             "--ray-client-server-port", str(_free_port())])
        self.wait_nodes(1, timeout_s=600)
        self._start("worker", ["--address", f"127.0.0.1:{self.gcs_port}"])
        self.wait_nodes(2, timeout_s=600)

    def _get(self, path: str):
        req = urllib.request.Request(self.dashboard + path)
        req.add_header("Authorization", "Bearer " + self.env["RAY_AUTH_TOKEN"])
        # bounds a hang only: a dashboard on a loaded machine may take many seconds to answer
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())

    def alive_nodes(self) -> int:
        nodes = self._get("/api/v0/nodes?limit=100")["data"]["result"]["result"]
        return sum(1 for n in nodes if n["state"] == "ALIVE")

    def wait_nodes(self, count: int, timeout_s: float, running=("head", "worker")) -> None:
        """Wait until the head reports ``count`` alive nodes; the ``running`` nodes' ``ray start``
        processes must stay up meanwhile."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._remember()
            for name, proc in self.nodes.items():
                if name in running and proc.poll() is not None:
                    raise RuntimeError(f"ray start ({name}) exited {proc.returncode}: "
                                       + (self.root / f"{name}.log").read_text()[-3000:])
            try:
                if self.alive_nodes() == count:
                    return
            except OSError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"{count} alive Ray nodes not reached in {timeout_s} s")

    def _remember(self) -> None:
        for proc in self.nodes.values():
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    self.known.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                pass

    def pids(self, node: str) -> set[int]:
        """Process ids of the node's processes now (its Ray workers among them)."""
        try:
            return {p.pid for p in psutil.Process(self.nodes[node].pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def kill_worker_node(self) -> None:
        """SIGKILL the worker's raylet: the node is lost (``ray start --block`` then stops the
        rest of that node)."""
        self._remember()
        worker = psutil.Process(self.nodes["worker"].pid)
        raylets = [p for p in worker.children(recursive=True) if p.name() == "raylet"]
        assert len(raylets) == 1, raylets
        raylets[0].kill()

    def stop(self) -> None:
        """SIGTERM to each node's process group (``ray start --block`` stops its node), then
        SIGKILL whatever of ours is left after 10 s."""
        self._remember()
        for proc in self.nodes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs([psutil.Process(p.pid) for p in self.nodes.values()
                                      if p.poll() is None], timeout=10)
        for proc in alive:
            os.killpg(proc.pid, signal.SIGKILL)
        leftovers = []
        for child in self.known.values():
            try:
                if child.is_running():
                    child.kill()
                    leftovers.append(child)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        for proc in self.nodes.values():
            proc.wait(timeout=10)

    def run(self, args: list[str], timeout_s: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout_s)


@pytest.fixture(scope="module")
def cluster():
    # short root: Ray's socket paths live under it and must stay under 107 characters
    root = Path(tempfile.mkdtemp(prefix="inalrc", dir="/tmp"))
    cluster = LoopbackCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _expected(overrides: list[str]):
    from sweeps.submit import expand_study

    return expand_study(overrides)


def submission_id(plan):
    from sweeps.submit import submission_id as study_submission_id

    return study_submission_id(plan)


def _runs(results: Path, study: str):
    runs = pd.read_parquet(results / study / "runs")
    files = sorted((results / study / "runs").rglob("*.parquet"))
    return runs, files


def test_study_submitted_with_ray_job_submit_completes_and_is_not_run_twice(cluster, tmp_path):
    results = tmp_path / "results"
    overrides = [*STUDY_OVERRIDES, f"results_dir={results}", "study=loopback"]
    plan = _expected(overrides)
    job_id = submission_id(plan)  # what `inal-submit --print-id -- <overrides>` prints
    assert job_id.startswith("inal-loopback-")

    # no hydra.launcher.address: inside the job the launcher joins the cluster through RAY_ADDRESS
    command = [RAY, "job", "submit", "--address", cluster.dashboard, "--submission-id", job_id,
               "--", "inal-sweep", "--multirun", *overrides]
    first = cluster.run(command)
    output = first.stdout + first.stderr
    assert first.returncode == 0 and "succeeded" in output.lower(), output[-6000:]

    runs, files = _runs(results, "loopback")
    assert len(plan.run_ids) == 6
    assert sorted(runs["run_id"]) == plan.run_ids, output[-6000:]  # every cell, once
    assert len(files) == 6 and set(runs["status"]) == {"ok"}, output[-6000:]
    assert set(runs["target"]) == {"parity"} and sorted(set(runs["n"])) == [4, 5]
    assert (results / "loopback" / "inal").is_dir(), output[-6000:]
    inal = pd.read_parquet(results / "loopback" / "inal")
    assert sorted(set(inal["inal_id"])) == plan.inal_ids and len(inal) == 2 * 2  # 2 layers each

    # the same id again: Ray refuses it, nothing is run
    again = cluster.run(command)
    assert again.returncode != 0
    assert "already exists" in again.stdout + again.stderr
    # inal-submit sees the completed study and does not submit it
    resubmit = cluster.run([str(BIN / "inal-submit"), "--", *overrides])
    assert resubmit.returncode == 0, resubmit.stderr
    assert "already completed" in resubmit.stdout
    jobs = cluster._get("/api/jobs/")
    assert [j["submission_id"] for j in jobs if j["submission_id"].startswith(job_id)] == [job_id]
    assert _runs(results, "loopback")[1] == files  # no file added or rewritten under another name


def _job_status(cluster: LoopbackCluster, job_id: str) -> str | None:
    jobs = {j["submission_id"]: j["status"] for j in cluster._get("/api/jobs/")}
    return jobs.get(job_id)


def test_worker_node_lost_mid_study_every_cell_exactly_once(cluster, tmp_path, monkeypatch):
    from sweeps.submit import main as inal_submit

    results = tmp_path / "results"
    overrides = [*LOSS_OVERRIDES, f"results_dir={results}", "study=nodeloss"]
    plan = _expected(overrides)
    base = submission_id(plan)
    total = len(plan.run_ids)
    assert total == 12
    # an earlier attempt of this study whose driver failed (FAILED under the study's id)
    failed = cluster.run([RAY, "job", "submit", "--address", cluster.dashboard,
                          "--submission-id", base, "--", "false"])
    assert failed.returncode != 0 and _job_status(cluster, base) == "FAILED"

    # The study is held (tests/task_gate.py, through a test-only runtime env of the job): the
    # first pack runs, every later one waits at its start until the test releases the gate.
    gate = tmp_path / "gate"
    gate.mkdir()
    held_env = task_gate.gate_env(gate, free=1, env={})
    runtime_env = {"env_vars": {k: held_env[k] for k in ("PYTHONPATH", task_gate.GATE_ENV, task_gate.FREE_ENV)}}
    log = open(tmp_path / "inal-submit.log", "w")
    submitter = subprocess.Popen([str(BIN / "inal-submit"), "--runtime-env-json", json.dumps(runtime_env),
                                  "--", *overrides], cwd=cluster.root, env=cluster.env, stdout=log,
                                 stderr=subprocess.STDOUT)
    runs_dir = results / "nodeloss" / "runs"

    def stored() -> set[str]:
        """Run ids of the cells stored now (files appear whole: written aside, then renamed)."""
        if not runs_dir.exists() or not list(runs_dir.rglob("*.parquet")):
            return set()
        return set(pd.read_parquet(runs_dir, columns=["run_id"])["run_id"])

    def held_on_worker() -> list[dict]:
        on_worker = cluster.pids("worker")
        return [h for h in task_gate.held(gate) if h["pid"] in on_worker]

    try:
        # inal-submit resumed it as attempt r1; while that runs, the same study is refused
        task_gate.wait_for(lambda: _job_status(cluster, f"{base}-r1") in ("PENDING", "RUNNING"),
                           "attempt r1 running", alive=submitter)
        monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.env["RAY_AUTH_TOKEN"])
        assert inal_submit(["--address", cluster.dashboard, "--", *overrides]) == 3

        # mid-study, by events: the free pack's cell stored, a pack held on the worker node
        lost = task_gate.wait_for(lambda: len(stored()) == 1 and held_on_worker(),
                                  "a stored cell and a pack held on the worker node", alive=submitter)
        stored_at_kill = stored()
        cluster.kill_worker_node()
        cluster.wait_nodes(1, timeout_s=300, running=("head",))  # the head sees it dead
        task_gate.release(gate)  # the rest of the study, the lost pack's retry among it, may run
        status = first_status = submitter.wait(timeout=600)
        if status != 0:  # the driver gave up: the same command again resumes through the store
            status = subprocess.run([str(BIN / "inal-submit"), "--", *overrides], cwd=cluster.root,
                                    env=cluster.env, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=600).returncode
    finally:
        task_gate.release(gate)
        if submitter.poll() is None:
            submitter.kill()
        log.close()
    output = (tmp_path / "inal-submit.log").read_text()
    assert status == 0, output[-6000:]
    # The packs held on the worker node had not run when it was lost (held at their start):
    # their cells were computed again elsewhere, by Ray's retry or by the resumed study.
    lost_ids = {h["run_id"] for h in lost}
    assert lost_ids and not lost_ids & stored_at_kill
    retried = bool(re.search(r"node it was running on is dead", output))  # Ray's wording: reported only

    attempts = {j["submission_id"]: j["status"] for j in cluster._get("/api/jobs/")
                if j["submission_id"].startswith(base)}
    assert attempts[base] == "FAILED" and attempts[f"{base}-r1"] in ("SUCCEEDED", "FAILED")
    assert list(attempts.values()).count("SUCCEEDED") == 1

    runs, files = _runs(results, "nodeloss")
    assert len(files) == total
    assert sorted(runs["run_id"]) == plan.run_ids  # every cell exactly once, the lost ones included
    assert lost_ids <= set(runs["run_id"])
    assert set(runs["status"]) == {"ok"}, runs[["run_id", "status", "error"]]
    print(f"worker node killed holding {sorted(lost_ids)} with {len(stored_at_kill)}/{total} cells stored; "
          f"first submission exit status {first_status}; retry seen in the log: {retried}; "
          "study complete, each cell once")
    print(output[-3000:])


# ----------------------------------------------------------------------------------------------
# cluster/slurm/ray_head_worker.sbatch, run for real on this machine as a one-node allocation

FAKE_SRUN = """#!/bin/bash
# Stand-in for srun on a one-node allocation: drop srun's own options, run the step's command
# in place (exec: signals reach it directly, as srun forwards them to its tasks).
while (( $# )); do
    case "$1" in
        -w|-N|-n|-c) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
exec "$@"
"""


def _free_job_id() -> int:
    """A SLURM job id whose port block (20000 + 100 * (id % 400), as the script derives it; an
    independent transcription) is free on this machine now."""
    for _ in range(100):
        job_id = 700000 + int.from_bytes(os.urandom(2), "big")
        base = 20000 + 100 * (job_id % 400)
        if all(_bindable(p) for p in range(base, base + 100)):
            return job_id
    raise RuntimeError("no job id with a free port block")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def test_slurm_head_worker_script_runs_a_study_and_a_requeue_resumes(tmp_path):
    script = Path(__file__).resolve().parent.parent / "cluster" / "slurm" / "ray_head_worker.sbatch"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text(FAKE_SRUN)
    (fake_bin / "srun").chmod(0o755)
    ray_tmp_root = Path(tempfile.mkdtemp(prefix="inalsl", dir="/tmp"))  # short socket paths
    job_id = _free_job_id()
    port_base = 20000 + 100 * (job_id % 400)
    results = tmp_path / "results"
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               SLURM_JOB_ID=str(job_id), SLURM_JOB_NUM_NODES="1", SLURM_CPUS_PER_TASK="1",
               SLURM_GPUS_ON_NODE="0", SLURMD_NODENAME=socket.gethostname(),
               SLURM_SUBMIT_DIR=str(tmp_path), INAL_RESULTS_DIR=str(results),
               RAY_TMP_ROOT=str(ray_tmp_root), PYTHONUNBUFFERED="1")
    # the script chooses the authentication itself (its own token for the job)
    for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                "SLURM_RESTART_COUNT"):
        env.pop(var, None)
    overrides = ["n=4", "c=1", "width=8", "T=10", "train.seed=0,1", "train.N=2n",
                 "train.n_eval=256", "inal.n_inits=16", "study=slurm", "hydra.launcher.progress=false", "hydra.launcher.report=false"]

    def run_allocation(restart: int) -> str:
        proc = subprocess.Popen(["bash", str(script), *overrides], cwd=tmp_path,
                                env=dict(env, SLURM_RESTART_COUNT=str(restart)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=400)
            # the script stopped its own Ray (no `ray stop`): nothing of it is left
            # returns as soon as they are gone; the bound is for a loaded machine's slow exits
            _, leftover = psutil.wait_procs(_processes_under(ray_tmp_root), timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _kill_processes_under(ray_tmp_root)
        assert proc.returncode == 0, out[-6000:]
        assert leftover == [], [p.cmdline()[:2] for p in leftover]
        return out

    try:
        first = run_allocation(0)
        assert f"ports {port_base}-{port_base + 99}" in first
        private = ray_tmp_root / f"ray-{job_id}"
        assert f"temp {private}/r" in first
        assert list((private / "r").glob("session_*")), "Ray did not use the job's temp dir"
        # other users of the node reach nothing of it: a 0700 parent (Ray chmods its own dir 0777)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        logs = [p for p in (private / "r").rglob("*.log") if p.is_file()]
        assert logs and not [p for p in logs if p.stat().st_mode & 0o077], "logs not private (umask 077)"
        runs = pd.read_parquet(results / "slurm" / "runs")
        assert len(runs) == 2 and set(runs["status"]) == {"ok"}
        files = sorted((results / "slurm").rglob("*.parquet"))
        stamps = {f: f.stat().st_mtime_ns for f in files}
        # the allocation requeued (same job id): every cell is found complete, nothing recomputed
        second = run_allocation(1)
        assert "restart 1" in second
        assert re.search(r"2 already complete", second), second[-3000:]
        assert {f: f.stat().st_mtime_ns for f in sorted((results / "slurm").rglob("*.parquet"))} == stamps
    finally:
        _kill_processes_under(ray_tmp_root)
        shutil.rmtree(ray_tmp_root, ignore_errors=True)


def _processes_under(root: Path) -> list:
    """Processes whose command line names ``root`` (Ray's processes of a temp dir there)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(root) in arg for arg in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _kill_processes_under(root: Path) -> None:
    procs = _processes_under(root)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)
