"""Fixtures and helpers shared by the Ray tests: one real local Ray for the session, in-process multiruns."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List

import pytest


def _fixed_throughput() -> None:
    """Plans in tests use fixed cost-model figures (``sweeps.throughput.DEFAULT``) instead of
    calibrating this machine (seconds, and numbers that vary with its load): no test asserts a
    timing, and subprocess drivers inherit the variable. tests/test_plan_cost.py calibrates for real."""
    if os.environ.get("INAL_THROUGHPUT_CACHE"):
        return
    from dataclasses import asdict

    from sweeps.throughput import DEFAULT

    path = os.path.join(tempfile.mkdtemp(prefix="inal-tests-"), "throughput.json")
    with open(path, "w") as fh:
        json.dump(asdict(DEFAULT), fh)
    os.environ["INAL_THROUGHPUT_CACHE"] = path


_fixed_throughput()

# Ray starts its workers at niceness 15 (its ``worker_niceness``), so that they yield to everything
# else on the machine. On a shared, busy CI machine that makes every test that runs a Ray task wait
# on the neighbours: beside two busy loops a niceness-15 worker gets a few percent of a CPU
# (measured here: a 2-cell study of failing cells took 88 s instead of 12 s; the suite 57 min
# instead of 12). The tests' workers compete on equal terms instead: the session's Ray, every
# subprocess driver's own local Ray and the two-node cluster inherit this (checked by
# tests/test_launcher_ray.py::test_ray_workers_of_the_tests_are_not_niced).
os.environ.setdefault("RAY_worker_niceness", "0")

# Tiny cells: 8-wide network, N = 2n input bits (exact gradient), a few steps, few inits.
TINY = ["width=8", "T=4", "train.N=2n", "train.n_eval=256", "train.checkpoints=2", "inal.n_inits=16"]
# The measured columns of a run that must agree between two ways of computing it.
NUMBERS = ["correlation", "correlation_se", "acc", "final_loss", "param_norm"]


@pytest.fixture(scope="session")
def compose_config():
    """The project's config composed as ``inal-sweep`` composes it: ``compose_config(overrides=(),
    hydra=False)`` is Hydra's ``compose("config", overrides)`` over ``sweeps/conf`` (``hydra=True``:
    with the ``hydra`` node). Each call composes in its own ``initialize_config_module`` context, so
    no Hydra global state outlives it (tests that run ``inal-sweep`` in-process clear that state)
    and module- or session-scoped fixtures can use it too."""
    from hydra import compose, initialize_config_module

    def compose_config(overrides=(), hydra: bool = False):
        with initialize_config_module("sweeps.conf", version_base="1.3"):
            return compose("config", overrides=list(overrides), return_hydra_config=hydra)

    return compose_config


@pytest.fixture(scope="session")
def ray_address():
    """A 2-CPU Ray on loopback shared by the session's Ray tests (one start-up, seconds here);
    always shut down. Yields the GCS address, which subprocess drivers join."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def multirun(overrides: List[str], results_dir: Path) -> List[Dict]:
    """``inal-sweep -m <overrides>`` in this process (the launcher reuses this process's Ray, no
    report); the jobs' return values."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    import sweeps.run

    GlobalHydra.instance().clear()
    hydra_ = Hydra.create_main_hydra_file_or_module(
        calling_file=None, calling_module="sweeps.run", config_path="conf", job_name="run"
    )
    try:
        returns = hydra_.multirun(
            config_name="config",
            task_function=sweeps.run.task,
            overrides=["hydra/sweeper=inal", "hydra.launcher.report=false", f"results_dir={results_dir}",
                       f"hydra.sweep.dir={results_dir}/_sweep"] + overrides,
            with_log_configuration=False,
        )
    finally:
        GlobalHydra.instance().clear()
    return [r.return_value for batch in returns for r in batch]
