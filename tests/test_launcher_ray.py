"""The ``inal_ray`` launcher's fast path on a real local Ray: grids end to end, resume, packing.

References are independent of the code under test: row counts come from the grid's arithmetic
(distinct cells after dedupe), "recomputes nothing" from file modification times, packed vs
unpacked from two separate runs of the same grid, groupwise composition from Hydra's own full
composition of the same overrides.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")

from hydra._internal.config_loader_impl import ConfigLoaderImpl  # noqa: E402
from hydra._internal.hydra import Hydra  # noqa: E402
from hydra._internal.utils import create_config_search_path  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.types import RunMode  # noqa: E402

from sweeps.compose import GroupwiseComposer, configs_equal, task_view  # noqa: E402
from hydra_plugins.inal_ray_launcher.progress import ProgressBar, format_duration  # noqa: E402

from conftest import NUMBERS, TINY, multirun  # noqa: E402


def files_with_mtimes(root: Path) -> Dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.parquet")}


# ------------------------------------------------------------------------------ no Ray needed


def test_groupwise_composition_equals_hydra_full_composition(hydra_restore_singletons) -> None:
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://sweeps.conf"))
    master = loader.load_configuration("config", overrides=["+experiment=default"], run_mode=RunMode.MULTIRUN)
    composer = GroupwiseComposer(loader, master)
    shared = ["+experiment=default", "gamma=0.1", "train.A=2.0"]  # in every job of the first batch
    grid = [
        [f"target={t}", f"c={c}", shared[0], f"n={n}", shared[1], f"train.seed={s}", shared[2]]
        for t in ("parity", "majority") for c in (1, 2) for n in (6, 8) for s in (0, 1)
    ]
    overlapping = shared + ["train.A=3.0", "train={A: 4.0}"]  # same keys as shared ones: no hoisting
    misc = [
        ["n=9", "network=no_bias", "inal=mc", "inal.n_inputs=128", "train.A=2.5", "sigma=0"],
        ["init=rademacher", "train.checkpoints=[0,2,4]", "T=4", "++extra_key=3"],
        ["n=9", "network=no_bias", "inal=mc", "inal.n_inputs=64", "~train.n_eval"],
    ]
    for batch, sample in ((grid + [overlapping], grid[::4] + [overlapping]), (misc, misc)):
        composer.set_batch(batch)
        for overrides in sample:  # a sample: Hydra's full composition is the slow part
            reference = loader.load_sweep_config(master, overrides)
            assert configs_equal(composer.compose(overrides), reference), overrides
            assert configs_equal(composer.compose_task(overrides), task_view(reference)), overrides
        for overrides in batch:
            composer.compose_task(overrides)
    # group tuples: the grid's (target=parity|majority, +experiment=default) 2, the overlapping
    # job's (+experiment=default) 1, the misc jobs' (network=no_bias, inal=mc) and (init=rademacher) 2
    assert composer.full_compositions == 5


def test_groupwise_composition_rejects_what_hydra_rejects(hydra_restore_singletons) -> None:
    from hydra.errors import ConfigCompositionException

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://sweeps.conf"))
    master = loader.load_configuration("config", overrides=[], run_mode=RunMode.MULTIRUN)
    composer = GroupwiseComposer(loader, master)
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        loader.load_sweep_config(master, ["no_such_key=1"])
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        composer.compose_task(["no_such_key=1"])


def test_progress_bar_plain_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    bar = ProgressBar(4, unit="cells", stream=out, line_interval_s=0.0)
    bar.update(1)
    bar.update(3, failed=1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split("|")[2].split()[0] == "0/4"
    assert "4/4 100%" in lines[-1] and "cells/s" in lines[-1] and "(1 failed)" in lines[-1]
    assert "\r" not in out.getvalue()
    assert format_duration(3725) == "1:02:05" and format_duration(float("nan")) == "--:--"


@pytest.mark.parametrize("setting, value, allowed", [
    ("max_pack", 0, "an integer >= 1"),
    ("max_retries", -1, "an integer >= 0"),
    ("num_gpus", -0.5, "a finite number >= 0"),
    ("num_cpus", "two", "a finite number >= 0"),
    ("local_cpus", 0, "an integer >= 1"),
])
def test_bad_launcher_settings_are_named(setting, value, allowed) -> None:
    from hydra_plugins.inal_ray_launcher.ray_launcher import InalRayLauncher

    with pytest.raises(ValueError) as info:
        InalRayLauncher(**{setting: value})
    assert f"hydra.launcher.{setting}={value!r}" in str(info.value) and allowed in str(info.value)


def test_report_subprocess_failure_and_absence_are_reported_not_raised(tmp_path: Path, monkeypatch, capsys) -> None:
    from hydra_plugins.inal_ray_launcher import _summary

    empty = tmp_path / "no_such_study"
    code = _summary.run_report(str(empty))  # the real `python -m analysis.report` on a missing study
    assert code != 0 and "report failed" in capsys.readouterr().out
    real_find_spec = _summary.importlib.util.find_spec
    monkeypatch.setattr(_summary.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("analysis") else real_find_spec(name, *a))
    assert _summary.run_report(str(empty)) == 127
    assert "analysis.report is not installed" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- real Ray


@pytest.mark.ray
def test_grid_end_to_end_rerun_and_extend(ray_address, tmp_path: Path, hydra_restore_singletons) -> None:
    grid = ["target=parity,majority", "c=1,2", "n=4,5", "train.seed=0,1"] + TINY
    out = multirun(grid, tmp_path)
    # 16 configs; majority ignores c -> parity 2*2*2 + majority 2*2 = 12 distinct cells
    assert len(out) == 16
    assert {o["status"] for o in out} == {"ok"}
    assert len({o["run_id"] for o in out}) == 12
    runs = pd.read_parquet(tmp_path / "default" / "runs")
    inal = pd.read_parquet(tmp_path / "default" / "inal")
    curves = pd.read_parquet(tmp_path / "default" / "curves")
    assert len(runs) == 12 and runs.run_id.is_unique
    assert set(runs.status) == {"ok"}
    # INAL once per (target, c, n): parity 2*2 + majority 2; depth 1 -> 2 layers each
    assert inal.inal_id.nunique() == 6 and len(inal) == 12
    assert set(runs.inal_id) == set(inal.inal_id)
    assert len(curves) == 12 * 2
    before = files_with_mtimes(tmp_path / "default")

    again = multirun(grid, tmp_path)  # rerun: nothing recomputed, nothing rewritten
    assert {o["status"] for o in again} == {"skipped"}
    assert files_with_mtimes(tmp_path / "default") == before

    extended = multirun(["target=parity,majority", "c=1,2", "n=4,5,6", "train.seed=0,1"] + TINY, tmp_path)
    new = [o for o in extended if o["status"] != "skipped"]
    assert {o["status"] for o in new} == {"ok"} and len({o["run_id"] for o in new}) == 6  # the n=6 cells
    after = files_with_mtimes(tmp_path / "default")
    assert {k: after[k] for k in before} == before  # old files untouched
    # 6 new runs in 3 tasks (one per new INAL setting's pack): 3 runs + 3 curves files, and 3 INAL files
    assert len(after) == len(before) + 3 + 3 + 3


@pytest.mark.ray
def test_packed_and_unpacked_give_the_same_numbers(ray_address, tmp_path: Path, hydra_restore_singletons) -> None:
    grid = ["n=4", "c=1", "gamma=0.05,0.2", "sigma=0,0.01", "train.seed=0,1,2"] + TINY
    packed = multirun(grid + ["hydra.launcher.max_pack=64"], tmp_path / "packed")
    unpacked = multirun(grid + ["hydra.launcher.max_pack=1"], tmp_path / "unpacked")
    assert [o["run_id"] for o in packed] == [o["run_id"] for o in unpacked]
    a = pd.read_parquet(tmp_path / "packed" / "default" / "runs").set_index("run_id").sort_index()
    b = pd.read_parquet(tmp_path / "unpacked" / "default" / "runs").set_index("run_id").sort_index()
    assert len(a) == 12 and list(a.index) == list(b.index)
    assert set(a.status) == {"ok"} and set(b.status) == {"ok"}
    for col in NUMBERS:
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-5, atol=1e-7, err_msg=col)
    ca = pd.read_parquet(tmp_path / "packed" / "default" / "curves").sort_values(["run_id", "step"])
    cb = pd.read_parquet(tmp_path / "unpacked" / "default" / "curves").sort_values(["run_id", "step"])
    np.testing.assert_allclose(ca["correlation"].to_numpy(), cb["correlation"].to_numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.ray
def test_default_study_end_to_end(ray_address, tmp_path: Path, hydra_restore_singletons) -> None:
    out = multirun(["+experiment=default", "width=8", "T=4", "train.n_eval=256", "inal.n_inits=16",
                    "hydra.launcher.report=true"], tmp_path)
    # default grid: target {parity, majority} x c {1, 2} x n {6, ..., 14} x seed {0, 1} = 40 configs,
    # majority ignores c -> 20 + 10 = 30 cells, INAL settings: parity 2*5 + majority 5 = 15
    assert len(out) == 40 and len({o["run_id"] for o in out}) == 30
    assert {o["status"] for o in out} == {"ok"}
    runs = pd.read_parquet(tmp_path / "default" / "runs")
    inal = pd.read_parquet(tmp_path / "default" / "inal")
    assert len(runs) == 30 and set(runs.target) == {"parity", "majority"}
    assert sorted(runs.n.unique()) == [6, 8, 10, 12, 14] and set(runs.N) == {36, 64, 100, 144, 196}
    assert inal.inal_id.nunique() == 15 and (inal.groupby("inal_id").is_max.sum() == 1).all()
    # the study ends with its report (analysis/, in a subprocess): Markdown, figures, summary.json
    report = tmp_path / "default" / "report"
    assert (report / "report.md").stat().st_size > 0 and (report / "summary.json").stat().st_size > 0
    assert any(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in report.glob("*.png"))


@pytest.mark.ray
def test_generic_task_function_still_runs_on_the_generic_path(ray_address, tmp_path: Path,
                                                               hydra_restore_singletons) -> None:
    """A task function without ``__inal_sweep__`` gets Hydra's run_job per job (output dirs, return values)."""
    GlobalHydra.instance().clear()
    hydra_ = Hydra.create_main_hydra_file_or_module(calling_file=None, calling_module="sweeps.run",
                                                    config_path="conf", job_name="generic")
    try:
        returns = hydra_.multirun(config_name="config", task_function=lambda cfg: cfg.n * 10,
                                  overrides=["n=3,4", f"hydra.sweep.dir={tmp_path}"], with_log_configuration=False)
    finally:
        GlobalHydra.instance().clear()
    assert [r.return_value for r in returns[0]] == [30, 40]
    assert (tmp_path / "0" / ".hydra" / "config.yaml").exists() and (tmp_path / "1" / ".hydra").exists()
    assert not (tmp_path / "default").exists()  # the fast path (and the store) were not involved


@pytest.mark.ray
def test_inal_only_study_T0(ray_address, tmp_path: Path, hydra_restore_singletons) -> None:
    grid = TINY + ["T=0", "n=4,5", "c=1,2", "gamma=0.05,0.1"]  # gamma is irrelevant without training
    out = multirun(grid, tmp_path)
    assert len(out) == 8 and {o["status"] for o in out} == {"ok"}
    assert not list((tmp_path / "default").glob("runs/**/*.parquet"))  # T=0: no training rows
    inal = pd.read_parquet(tmp_path / "default" / "inal")
    assert inal.inal_id.nunique() == 4 and len(inal) == 4 * 2  # (n, c) settings x 2 layers
    assert {o["status"] for o in multirun(grid, tmp_path)} == {"skipped"}


@pytest.mark.ray
def test_ray_workers_of_the_tests_are_not_niced(ray_address) -> None:
    """conftest.py sets ``RAY_worker_niceness=0`` so that the tests' Ray workers compete on equal
    terms on a busy machine (Ray's default, 15, left them a few percent of a CPU beside two busy
    loops). If Ray renamed the setting, the workers would be niced again: a task reports its
    niceness relative to this process's."""
    import os

    @ray.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)
