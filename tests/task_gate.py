"""Hold a study at a known point, so that a test injects its fault on an event, never on a clock.

A fault test (kill the driver, signal it, lose a node) must strike *mid-study*: some cells
stored, others not, and the study unable to end first however loaded the machine is. A study left
to run at its own pace can end between two looks of the test (issue 19); a sleep sized on a quiet
machine is too short on a busy one. So the test holds the study instead:

- the launcher's training-pack task is wrapped (:func:`gated`) so that the first ``free`` packs
  to start run as usual and every later one, when it starts, leaves a marker
  ``held-<pid>-<run id>`` and waits for the file ``release`` in the gate folder;
- the INAL tasks are not held. A cell is complete (what a rerun counts ``already complete``) once
  its runs file *and* its setting's INAL file are stored (:func:`complete_cells`), and the launcher
  submits a cell's INAL task before its pack, but Ray does not promise to start them in that
  order: on one CPU a held pack can take the CPU before the free pack's INAL task has run, which
  then never runs while the study is held. A test that needs the free cell complete therefore
  holds with ``lend_cpu=True``: a held pack waits blocked in ``ray.get`` (on a zero-CPU task that
  waits for the release), and Ray lends the CPU of a task blocked in ``ray.get`` to other tasks
  (Ray's nested-tasks rule: a blocked task releases its CPU, so nested tasks cannot deadlock), so
  the INAL tasks run however few CPUs there are and the free cell's INAL file is sure to come;
- the test waits for the events it needs (a cell complete, a pack held: files appearing, see
  :func:`wait_for`), strikes, and then either releases the gate or never does (the held workers
  go with their driver, node or Ray).

The wrapper is a closure (Ray ships it by value: the workers need nothing of the tests) and is
put in place by the tests only: in-process by monkeypatching ``_fast_path._remotes``, and in a
subprocess driver (``inal-sweep``, ``python -m sweeps.run``, a Ray job's entrypoint) by
:func:`gate_env`, which puts ``tests/task_gate_site`` (a ``sitecustomize`` that calls
:func:`install_from_environment`) on ``PYTHONPATH``. The launcher carries no fault hook
(STYLE.md rule 8).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

#: The gate folder of a subprocess driver, how many packs run before the gate holds the rest, and
#: whether a held pack lends its CPU ("1") or keeps it.
GATE_ENV, FREE_ENV, LEND_ENV = "INAL_TEST_GATE", "INAL_TEST_GATE_FREE", "INAL_TEST_GATE_LEND_CPU"
FAST_PATH = "hydra_plugins.inal_ray_launcher._fast_path"
SITE_DIR = Path(__file__).resolve().parent / "task_gate_site"


def gated(task: Callable[..., Any], gate_dir: str, free: int, lend_cpu: bool = False) -> Callable[..., Any]:
    """``task`` (the launcher's pack task, argument a list of ``JobSpec``) held at its start.

    The first ``free`` calls to start (across processes and nodes: an ``O_EXCL`` ticket file each)
    run at once; every later call writes ``held-<pid>-<first run id>`` and runs only once
    ``<gate_dir>/release`` exists (looked for every 50 ms: the release is the event, the poll
    only its latency). With ``lend_cpu`` the held call waits in ``ray.get`` on a zero-CPU task that
    looks for the release, so that Ray lends its CPU to other tasks meanwhile (the INAL tasks: see
    the module's doc); without it the held call keeps its CPU (nothing else starts in its place)."""

    def wait_for_release(path: str) -> None:
        while not os.path.exists(path):
            time.sleep(0.05)

    def gated_pack(jobs):
        for ticket in range(free):
            try:
                fd = os.open(os.path.join(gate_dir, f"ticket-{ticket}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            return task(jobs)  # outside the try: a FileExistsError of the task is the task's
        marker = os.path.join(gate_dir, f"held-{os.getpid()}-{jobs[0].run_id}")
        with open(marker + ".tmp", "w") as f:
            f.write(jobs[0].run_id)
        os.replace(marker + ".tmp", marker)  # appears whole
        release = os.path.join(gate_dir, "release")
        if lend_cpu:
            import ray

            ray.get(ray.remote(num_cpus=0, max_retries=0)(wait_for_release).remote(release))
        else:
            wait_for_release(release)
        return task(jobs)

    return gated_pack


def gate_remotes(fast_path: Any, gate_dir: str, free: int, lend_cpu: bool = False) -> Callable[[], Any]:
    """A replacement for ``fast_path._remotes``: the INAL task as it is, the pack task gated."""
    import ray

    def remotes():
        return ray.remote(fast_path.inal_task), ray.remote(gated(fast_path.pack_task, gate_dir, free, lend_cpu))

    return remotes


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Gate the launcher's pack task when its module is imported (in a subprocess driver)."""

    def __init__(self, gate_dir: str, free: int, lend_cpu: bool) -> None:
        self.gate_dir, self.free, self.lend_cpu = gate_dir, free, lend_cpu

    def find_spec(self, name, path, target=None):
        if name != FAST_PATH:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, gate_dir, free, lend_cpu = spec.loader, self.gate_dir, self.free, self.lend_cpu
        exec_module = loader.exec_module

        def exec_then_gate(module):
            exec_module(module)
            import ray.cloudpickle

            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers: no tests needed
            module._remotes = gate_remotes(module, gate_dir, free, lend_cpu)

        loader.exec_module = exec_then_gate
        return spec


def install_from_environment() -> None:
    """Called by ``task_gate_site/sitecustomize.py`` at start-up: gate this process's launcher
    when ``INAL_TEST_GATE`` names a gate folder."""
    gate_dir = os.environ.get(GATE_ENV)
    if gate_dir and FAST_PATH not in sys.modules:
        sys.meta_path.insert(0, _PatchOnImport(gate_dir, int(os.environ.get(FREE_ENV, "1")),
                                               os.environ.get(LEND_ENV) == "1"))


def gate_env(gate_dir: Path, free: int, env: Optional[Dict[str, str]] = None,
             lend_cpu: bool = False) -> Dict[str, str]:
    """``env`` (default: this process's) for a subprocess driver whose pack tasks are gated
    (``lend_cpu``: see :func:`gated`)."""
    env = dict(os.environ if env is None else env)
    paths = [str(SITE_DIR), str(SITE_DIR.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(paths),
               **{GATE_ENV: str(gate_dir), FREE_ENV: str(free), LEND_ENV: "1" if lend_cpu else "0"})
    return env


def held(gate_dir: Path) -> List[Dict[str, Any]]:
    """The packs held now: ``{"pid", "run_id"}`` each."""
    out = []
    for marker in sorted(gate_dir.glob("held-*")):
        if marker.name.endswith(".tmp"):
            continue
        _, pid, run_id = marker.name.split("-", 2)
        out.append({"pid": int(pid), "run_id": run_id})
    return out


def complete_cells(study_root: Path) -> Set[str]:
    """Run ids of the cells complete in the study at ``study_root`` (``<results_dir>/<study>``):
    an ``ok`` runs file holds the run and the INAL file of its ``inal_id`` is stored, which is
    what a rerun counts ``already complete``. Read from the files as they lie (the layout of
    ``sweeps/store.py``: ``runs/target=<t>/pack-*.parquet``, ``inal/target=<t>/<inal id>.parquet``
    before the study's final compaction; files appear whole, written aside and renamed)."""
    import pyarrow.parquet as pq

    inal = {p.stem for p in (study_root / "inal").rglob("*.parquet")}
    done: Set[str] = set()
    for path in (study_root / "runs").rglob("*.parquet"):
        if path.name.startswith("failed-"):
            continue
        table = pq.read_table(path, columns=["run_id", "inal_id"])
        done.update(r for r, i in zip(table["run_id"].to_pylist(), table["inal_id"].to_pylist()) if i in inal)
    return done


def output_tail(proc: Any, chars: int = 3000) -> str:
    """``"; its output ends: ..."`` for an ended ``Popen`` whose output is a pipe (what a failure
    message needs to say why it ended), else ``""``."""
    try:
        out = proc.stdout.read() if proc.stdout is not None else ""
    except (OSError, ValueError):
        return ""
    return f"; its output ends:\n{out[-chars:]}" if out else ""


def release(gate_dir: Path) -> None:
    (gate_dir / "release").touch()


def wait_for(condition: Callable[[], Any], what: str, *, alive: Any = None, limit_s: float = 600) -> Any:
    """Wait until ``condition()`` is truthy and return it; fail if ``alive`` (a ``Popen``) ends
    first. The wait is on the event; ``limit_s`` only bounds a test that would otherwise hang (a
    held study cannot finish before the event, so its speed does not matter)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the driver exited ({alive.returncode}) before {what}{output_tail(alive)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {limit_s:.0f} s (the study is held: something is stuck)")
        time.sleep(0.05)


# Ray's own log lines (its C++ core and raylet, or a worker's forwarded output), which Ray prints
# by itself, more of them on a loaded machine (e.g. ``task_manager.cc:1545: Failed to push error
# to driver for task ...`` while a study is interrupted). Their format is Ray's (glog-style prefix
# ``[YYYY-MM-DD HH:MM:SS,mmm L pid tid] file.cc:NNN: message``, or an origin prefix as
# ``ray._private.worker.print_worker_logs`` writes it: ``(raylet)``, ``(autoscaler +3s)``,
# ``(pid=NNN)``, ``(<task name> pid=NNN, ip=...)``, the task name being the launcher's, e.g.
# ``train parity n=4 x1``, and the prefix wrapped in a colour code unless ``RAY_COLOR_PREFIX=0``):
# tests judge the project's lines only.
RAY_OWN_LINE = re.compile(
    r"^(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] )?\S+\.(cc|h):\d+: "  # Ray's C++ logger
    r"|^\s*(\x1b\[[\d;]*m)*\(((raylet|gcs_server|autoscaler)\b[^()]*|[^()]*\bpid=\d+[^()]*)\)"  # an origin prefix
)


def project_lines(text: str) -> List[str]:
    """The lines of ``text`` that are not Ray's own (see ``RAY_OWN_LINE``)."""
    return [line for line in text.splitlines() if not RAY_OWN_LINE.search(line)]
