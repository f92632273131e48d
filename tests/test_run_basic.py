"""``python -m sweeps.run`` end to end with Hydra's basic launcher (the Ray path is tested with the launcher).

A tiny grid into ``tmp_path``: every cell lands once in the store, a rerun recomputes nothing, a
damaged file is detected and only its cell recomputed with the same numbers.
"""

from __future__ import annotations

import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq
from hydra.core.global_hydra import GlobalHydra
from hydra.initialize import get_gh_backup, restore_gh_from_backup

from sweeps.run import main, task
from sweeps.store import ResultsStore

GRID = ["-m", "hydra/launcher=basic", "n=4,5", "c=1,2", "width=8", "T=2", "train.N=2n", "train.checkpoints=2",
        "train.n_eval=64", "inal.n_inits=8", "device=cpu", "study=basic"]


def cli(args, cwd, monkeypatch, capsys):
    """``inal-sweep <args>`` in this process (a subprocess would pay the torch import again)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["inal-sweep", *args])
    backup = get_gh_backup()  # a compose fixture may hold Hydra's global state
    GlobalHydra.instance().clear()
    try:
        main()
    except SystemExit as stop:
        assert not stop.code, capsys.readouterr().err[-3000:]
    finally:
        restore_gh_from_backup(backup)
    return capsys.readouterr().out


def table(results, kind):
    return ds.dataset(results / "basic" / kind, format="parquet", partitioning="hive").to_table().to_pandas()


def test_grid_rerun_and_repair_with_the_basic_launcher(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    out = cli([*GRID, f"results_dir={results}"], cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert out.count("[inal-sweep] ok") == 4 and str(results / "basic") in out
    runs = table(results, "runs")
    assert len(runs) == 4 and set(runs.status) == {"ok"}
    assert sorted(zip(runs.n, runs.c)) == [(4, 1.0), (4, 2.0), (5, 1.0), (5, 2.0)]
    assert len(table(results, "curves")) == 4 * 2
    inal = table(results, "inal")
    assert len(inal) == 4 * 2 and set(inal.target) == {"parity"}

    # rerun: every job skipped, no file rewritten
    files = {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet")}
    out = cli([*GRID, f"results_dir={results}"], cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert out.count("[inal-sweep] skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet")} == files

    # damage one runs file: detected, quarantined, only that cell recomputed, same numbers
    victim = sorted((results / "basic" / "runs" / "target=parity").glob("*.parquet"))[0]
    victim_id = pq.read_metadata(victim).metadata[b"inal.ids"].decode()  # one job: a task of one run
    before = runs.set_index("run_id").loc[victim_id, ["correlation", "acc", "param_norm"]].to_numpy()
    victim.write_bytes(victim.read_bytes()[:100])
    out = cli([*GRID, f"results_dir={results}"], cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert out.count("[inal-sweep] skipped") == 3 and out.count("[inal-sweep] ok") == 1
    assert list((results / "basic" / "_quarantine").glob(f"runs__target=parity__{victim.name}.*"))
    runs = table(results, "runs")
    assert len(runs) == 4 and runs.run_id.is_unique
    after = runs.set_index("run_id").loc[victim_id, ["correlation", "acc", "param_norm"]].to_numpy()
    assert (before == after).all()


def test_task_in_process(tmp_path, caplog, compose_config):
    cfg = compose_config(["n=4", "width=8", "T=0", "inal.n_inits=8", "device=cpu", "study=one",
                          f"results_dir={tmp_path.as_uri()}"])
    result = task(cfg)
    assert result["status"] == "ok" and result["results"] == (tmp_path / "one").as_uri()  # the location as given
    assert "[inal-sweep] ok" in caplog.text  # through logging (Hydra's job log, run.log)
    assert ResultsStore(str(tmp_path), "one").completed_inal_ids() == {result["inal_id"]}
    assert task(cfg)["status"] == "skipped"
