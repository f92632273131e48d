"""Hold a study at a known point, so that a test injects its fault on an event, never on a clock.

A fault test (kill the driver, signal it, lose a node) must strike *mid-study*: some cells
stored, others not, and the study unable to end first however loaded the machine is. A study left
to run at its own pace can end between two looks of the test (issue 19); a sleep sized on a quiet
machine is too short on a busy one. So the test holds the study instead:

- the launcher's training-pack task is wrapped (:func:`gated`) so that the first ``free`` packs
  to start run as usual and every later one, when it starts, leaves a marker
  ``held-<pid>-<run id>`` and waits for the file ``release`` in the gate folder;
- the test waits for the events it needs (a cell stored, a pack held: files appearing, see
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
from typing import Any, Callable, Dict, List, Optional

#: The gate folder of a subprocess driver, and how many packs run before the gate holds the rest.
GATE_ENV, FREE_ENV = "INAL_TEST_GATE", "INAL_TEST_GATE_FREE"
FAST_PATH = "hydra_plugins.inal_ray_launcher._fast_path"
SITE_DIR = Path(__file__).resolve().parent / "task_gate_site"


def gated(task: Callable[..., Any], gate_dir: str, free: int) -> Callable[..., Any]:
    """``task`` (the launcher's pack task, argument a list of ``JobSpec``) held at its start.

    The first ``free`` calls to start (across processes and nodes: an ``O_EXCL`` ticket file each)
    run at once; every later call writes ``held-<pid>-<first run id>`` and runs only once
    ``<gate_dir>/release`` exists (looked for every 50 ms: the release is the event, the poll
    only its latency)."""

    def gated_pack(jobs):
        for ticket in range(free):
            try:
                os.close(os.open(os.path.join(gate_dir, f"ticket-{ticket}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return task(jobs)
            except FileExistsError:
                continue
        marker = os.path.join(gate_dir, f"held-{os.getpid()}-{jobs[0].run_id}")
        with open(marker + ".tmp", "w") as f:
            f.write(jobs[0].run_id)
        os.replace(marker + ".tmp", marker)  # appears whole
        release = os.path.join(gate_dir, "release")
        while not os.path.exists(release):
            time.sleep(0.05)
        return task(jobs)

    return gated_pack


def gate_remotes(fast_path: Any, gate_dir: str, free: int) -> Callable[[], Any]:
    """A replacement for ``fast_path._remotes``: the INAL task as it is, the pack task gated."""
    import ray

    def remotes():
        return ray.remote(fast_path.inal_task), ray.remote(gated(fast_path.pack_task, gate_dir, free))

    return remotes


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Gate the launcher's pack task when its module is imported (in a subprocess driver)."""

    def __init__(self, gate_dir: str, free: int) -> None:
        self.gate_dir, self.free = gate_dir, free

    def find_spec(self, name, path, target=None):
        if name != FAST_PATH:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, gate_dir, free = spec.loader, self.gate_dir, self.free
        exec_module = loader.exec_module

        def exec_then_gate(module):
            exec_module(module)
            import ray.cloudpickle

            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers: no tests needed
            module._remotes = gate_remotes(module, gate_dir, free)

        loader.exec_module = exec_then_gate
        return spec


def install_from_environment() -> None:
    """Called by ``task_gate_site/sitecustomize.py`` at start-up: gate this process's launcher
    when ``INAL_TEST_GATE`` names a gate folder."""
    gate_dir = os.environ.get(GATE_ENV)
    if gate_dir and FAST_PATH not in sys.modules:
        sys.meta_path.insert(0, _PatchOnImport(gate_dir, int(os.environ.get(FREE_ENV, "1"))))


def gate_env(gate_dir: Path, free: int, env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``env`` (default: this process's) for a subprocess driver whose pack tasks are gated."""
    env = dict(os.environ if env is None else env)
    paths = [str(SITE_DIR), str(SITE_DIR.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(paths), **{GATE_ENV: str(gate_dir), FREE_ENV: str(free)})
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
            raise AssertionError(f"the driver exited ({alive.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {limit_s:.0f} s (the study is held: something is stuck)")
        time.sleep(0.05)


# Ray's own log lines (its C++ core and raylet, or a worker's forwarded output), which Ray prints
# by itself, more of them on a loaded machine (e.g. ``task_manager.cc:1545: Failed to push error
# to driver for task ...`` while a study is interrupted). Their format is Ray's (glog-style prefix
# ``[YYYY-MM-DD HH:MM:SS,mmm L pid tid] file.cc:NNN: message``, or a ``(raylet)`` /
# ``(pid=NNN)`` / ``(<task> pid=NNN)`` origin prefix): tests judge the project's lines only.
RAY_OWN_LINE = re.compile(
    r"^(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] )?\S+\.(cc|h):\d+: "  # Ray's C++ logger
    r"|^\s*\((raylet|gcs_server|autoscaler|[\w:. -]*pid=\d+[^)]*)\)"  # an origin prefix
)


def project_lines(text: str) -> List[str]:
    """The lines of ``text`` that are not Ray's own (see ``RAY_OWN_LINE``)."""
    return [line for line in text.splitlines() if not RAY_OWN_LINE.search(line)]
