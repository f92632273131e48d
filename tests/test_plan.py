"""The plan module: lazy grid expansion equals Hydra's, factored validation equals full composition,
packing is bounded, ``max_cells`` and the dry run act before any work.

References: Hydra's own ``BasicSweeper.split_arguments`` (the materialized expansion) and Hydra's full
composition of every cell (``load_sweep_config``) followed by ``validate_job``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from sweeps.compose import GroupwiseComposer
from sweeps.execute import plan_packs
from sweeps.plan import CellFactory, GridSource, check_max_cells, grid_axes, iter_packs
from sweeps.validation import ConfigError, validate_job

REPO = Path(__file__).resolve().parent.parent

GRIDS = [
    ["n=4,5", "c=1", "gamma=0.1,0.2", "train.seed=range(0,3)"],
    ["target=parity,majority", "c=1,2", "n=4", "sigma=0,1e-3", "train.seed=0,1"],
    ["n=4", "width=2,3", "T=0,2", "gamma=0.05,0.1", "train.seed=choice(5,6)"],  # T=0 collapses seeds
    ["n=4", "gamma=0.1", "gamma=0.3,0.4", "train.seed=1"],  # a key given twice: the later one wins, in place
    ["+experiment=default", "n=4", "T=2", "width=4"],  # the preset's hydra.sweeper.params
]


@pytest.fixture
def hydra_loader():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="sweeps.conf", version_base="1.3"):
        yield GlobalHydra.instance().config_loader()
    GlobalHydra.instance().clear()


def _parsed(loader, overrides):
    master = loader.load_configuration("config", list(overrides), run_mode=RunMode.MULTIRUN)
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
    return master, OverridesParser.create(config_loader=loader).parse_overrides(params + list(overrides))


@pytest.mark.parametrize("overrides", GRIDS)
def test_lazy_grid_equals_hydra_split_arguments(hydra_loader, overrides):
    _, parsed = _parsed(hydra_loader, overrides)
    reference = BasicSweeper.split_arguments(parsed, None)[0]
    source = GridSource(grid_axes(parsed))
    assert len(source) == len(reference)
    assert [list(cell) for cell in source] == reference
    assert [list(source[i]) for i in range(len(source))] == reference


@pytest.mark.parametrize("overrides", GRIDS)
def test_factored_validation_equals_full_composition(hydra_loader, overrides):
    master, parsed = _parsed(hydra_loader, overrides + ["results_dir=/tmp/x", "train.checkpoints=1"])
    cells = BasicSweeper.split_arguments(parsed, None)[0]
    reference = [validate_job(hydra_loader.load_sweep_config(master, cell)) for cell in cells]
    composer = GroupwiseComposer(hydra_loader, master)
    source = GridSource(grid_axes(parsed, composer.is_group_override))
    composer.set_shared([a.lines[0] for a in source.axes if len(a.lines) == 1])
    factory = CellFactory(source, composer.compose_task, validate_job)
    got = [job for _, _, job in factory]
    assert [j.run_id for j in got] == [j.run_id for j in reference]
    assert [j.inal_id for j in got] == [j.inal_id for j in reference]
    assert [j.pack_key for j in got] == [j.pack_key for j in reference]
    assert [j.seed for j in got] == [j.seed for j in reference]
    assert all(a.values == b.values for a, b in zip(got, reference))


def test_seed_axes_are_factored(hydra_loader):
    master, parsed = _parsed(hydra_loader, ["n=4", "width=2,3", "train.seed=range(0,50)", "gamma=0.1,0.2"])
    composer = GroupwiseComposer(hydra_loader, master)
    source = GridSource(grid_axes(parsed, composer.is_group_override))
    factory = CellFactory(source, composer.compose_task, validate_job)
    jobs = [job for _, _, job in factory]
    assert len(jobs) == 200 and len({j.run_id for j in jobs}) == 200
    # width is structural (2), seed and gamma are per-run scalars: 2 + 50 + 2 - 1 validations at most
    assert factory.full_validations <= 2 + 50 + 2
    assert sorted(key for key, _ in factory.vectorized.values()) == ["gamma", "train_seed"]


def test_a_bad_value_is_named_with_its_cell(hydra_loader):
    master, parsed = _parsed(hydra_loader, ["n=4", "train.seed=0,-1"])
    composer = GroupwiseComposer(hydra_loader, master)
    with pytest.raises(ConfigError, match=r"train.seed=-1.*job overrides: .*train.seed=-1"):
        list(CellFactory(GridSource(grid_axes(parsed, composer.is_group_override)), composer.compose_task,
                         validate_job))


def test_max_cells():
    check_max_cells(10, 10)
    with pytest.raises(ConfigError) as err:
        check_max_cells(11, 10)
    assert "hydra.launcher.max_cells" in str(err.value) and "11" in str(err.value)


class _Job:
    def __init__(self, key, i):
        self.pack_key, self.run_id, self.results_dir, self.study = key, str(i), "r", "s"


def test_packs_are_bounded_and_complete():
    jobs = [_Job(f"k{i % 7}", i) for i in range(1000)]
    packs = list(iter_packs(jobs, 16, max_buffered=40))
    assert sorted(int(j.run_id) for p in packs for j in p) == list(range(1000))
    assert all(len(p) <= 16 and len({j.pack_key for j in p}) == 1 for p in packs)
    assert [len(p) for p in plan_packs(jobs, 16)][:7] == [16] * 7
    assert sum(len(p) for p in plan_packs(jobs, 1)) == 1000


def _cli(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "sweeps.run", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    proc = _cli(["-m", "n=4", "c=1", "width=2", "T=1", "train.N=2n", "train.checkpoints=1",
                 "gamma=0.1,0.2", "train.seed=range(0,30)", f"results_dir={tmp_path / 'r'}",
                 "hydra.launcher.dry_run=true", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "60 configs -> 60 distinct cells; 0 already complete, 60 to run" in out
    assert "1 INAL settings to compute, 60 training runs in 1 packs" in out
    assert "estimated" in out and "dry run" in out
    assert not (tmp_path / "r").exists() and not (tmp_path / "sweep").exists()
    assert "Started a local Ray" not in proc.stderr + out


def test_a_grid_over_max_cells_is_refused_before_any_work(tmp_path):
    proc = _cli(["-m", "n=4", "train.seed=range(0,30)", f"results_dir={tmp_path / 'r'}",
                 "hydra.launcher.max_cells=20", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert proc.returncode != 0
    assert "hydra.launcher.max_cells" in proc.stderr and "30 cells" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "sweep").exists()


# ------------------------------------------------------------------------------ GPU pack sizes


def _gpu(**over):
    from sweeps.plan import gpu_pack_size

    kw = dict(device_memory_bytes=80 * 2**30, flops_per_s=50e12, num_parameters=64 * 64 + 64 * 64 + 64,
              layer_sizes=[64, 64, 64, 1], batch=4096, T=1000, n_eval=8192, cap=10**9)
    kw.update(over)
    return gpu_pack_size(**kw), kw


def test_gpu_pack_fits_the_memory_budget():
    """A huge network: memory binds. The stack's 4E float32 state fits in 80% of the device share
    minus one chunk, and one more run would not."""
    E = 50_000_000
    for memory, fraction in ((80 * 2**30, 1.0), (80 * 2**30, 0.25), (16 * 2**30, 1.0)):
        R, _ = _gpu(num_parameters=E, T=1, device_memory_bytes=memory, gpu_fraction=fraction)
        budget = 0.8 * memory * fraction - 2**30
        assert R * 16 * E <= budget < (R + 1) * 16 * E
    quarter, _ = _gpu(num_parameters=E, T=1, gpu_fraction=0.25)
    whole, _ = _gpu(num_parameters=E, T=1)
    assert 3.5 < whole / quarter < 4.6  # a quarter of a GPU (num_gpus=0.25): about a quarter of the stack


def test_gpu_pack_lasts_about_a_minute_but_fills_the_device():
    from inal_core import NetworkSpec
    from inal_core.ngd import ngd_flops_per_step

    R, kw = _gpu()
    step = ngd_flops_per_step(NetworkSpec(64, 64, 2), 4096)
    assert R * kw["T"] * step / kw["flops_per_s"] <= 60.0 < (R + 1) * kw["T"] * step / kw["flops_per_s"]
    # a tiny job: a minute would be millions of runs; memory and the cap bound it
    tiny, _ = _gpu(num_parameters=10, layer_sizes=[4, 2, 1], batch=16, T=1, cap=4096)
    assert tiny == 4096
    # a very long job still packs enough runs to fill the device (>= 5e10 FLOP a step)
    long_job, _ = _gpu(T=10**9)
    assert long_job * step >= 5e10 and (long_job - 1) * step < 5e10
    assert _gpu(num_parameters=10**12, T=1)[0] == 1  # never below one run


def test_a_study_of_the_previous_layout_stops_with_the_migration_command(tmp_path):
    """inal-sweep over a study written by 0767b9c's store: one line naming the command, nothing quarantined."""
    from datetime import datetime, timezone

    import pyarrow as pa

    from test_store import _old_store_module

    old = _old_store_module(tmp_path)
    row = {f.name: (datetime(2026, 1, 1, tzinfo=timezone.utc) if pa.types.is_timestamp(f.type) else
                    {pa.string(): "x", pa.int64(): 3, pa.float64(): 0.5, pa.bool_(): True}[f.type])
           for f in old.RUNS_SCHEMA}
    row.update(study="default", run_id="r0", status="ok")
    old.ResultsStore(str(tmp_path / "r"), "default").write_run("parity", row, None)
    proc = _cli(["-m", "n=4", "c=1", "width=2", "T=1", "train.N=2n", f"results_dir={tmp_path / 'r'}",
                 "hydra.launcher.dry_run=true", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert proc.returncode != 0
    assert f"python -m sweeps.store migrate {tmp_path / 'r' / 'default'}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "default" / "_quarantine").exists()
