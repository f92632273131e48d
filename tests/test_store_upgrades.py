"""Upgrades keep results: studies written by earlier commits of this repository (tests/fixtures/store_*)
are read by today's store as they are, and only really corrupt files are quarantined."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweeps.validation import validate_job
from sweeps.store import ResultsStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: the grid that wrote the fixtures (their READMEs)
GRID = [[f"n={n}", "c=1", "width=4", "T=5", f"train.seed={s}", "inal.n_inits=8", "train.n_eval=64"]
        for n in (4, 6) for s in (0, 1)]


def _copy(tmp_path: Path, name: str) -> tuple[Path, str]:
    study = name.split("_", 1)[1]
    shutil.copytree(FIXTURES / name / f"s{study}", tmp_path / f"s{study}")
    return tmp_path, f"s{study}"


def _jobs(compose_config, results_dir: Path, study: str):
    return [validate_job(compose_config(cell + [f"results_dir={results_dir}", f"study={study}"])) for cell in GRID]


def test_a_study_written_before_the_boot_columns_is_complete_and_read_with_nulls(tmp_path, caplog, compose_config):
    from analysis.load import load_study

    results, study = _copy(tmp_path, "store_28046c5")
    store = ResultsStore(str(results), study)
    jobs = _jobs(compose_config, results, study)
    with caplog.at_level(logging.INFO):
        assert store.pending(jobs) == []  # every cell complete: nothing recomputed
    assert not (results / study / "_quarantine").exists()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    inal = store.read("inal")
    assert inal.column("inal_boot_lo").null_count == inal.num_rows > 0
    runs = store.read("runs")
    assert runs.num_rows == 4 and runs.column("weight_decay").to_pylist() == [0.0] * 4  # ran at the default
    loaded = load_study(str(results / study))
    assert len(loaded.runs) == 4 and loaded.runs["run_id"].nunique() == 4
    assert loaded.inal["inal_boot_hi"].isna().all() and loaded.inal["inal"].notna().all()
    assert (loaded.runs["weight_decay"] == 0.0).all()
    assert {j.run_id for j in jobs} == set(loaded.runs["run_id"])


def _rewrite(path: Path, change) -> None:
    table = pq.read_table(path)
    meta = table.schema.metadata
    pq.write_table(change(table).replace_schema_metadata(meta), path)


@pytest.mark.parametrize("corruption", ["wrong_type", "missing_needed_column", "bad_footer", "truncated"])
def test_only_really_corrupt_files_are_quarantined(tmp_path, corruption):
    results, study = _copy(tmp_path, "store_28046c5")
    files = sorted((results / study / "inal").rglob("*.parquet"))
    bad, good = files[0], files[1:]
    if corruption == "wrong_type":
        _rewrite(bad, lambda t: t.set_column(t.column_names.index("inal"), "inal", t.column("inal").cast(pa.string())))
    elif corruption == "missing_needed_column":
        _rewrite(bad, lambda t: t.drop(["inal_se"]))
    elif corruption == "bad_footer":
        table = pq.read_table(bad)  # an inal file whose footer says it holds runs rows
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"inal.kind": b"runs"}), bad)
    else:
        bad.write_bytes(bad.read_bytes()[:-100])
    store = ResultsStore(str(results), study)
    entries = store.scan("inal")
    assert {Path(e.path).name for e in entries} == {g.name for g in good}
    moved = sorted((results / study / "_quarantine").iterdir())
    assert [p.name.startswith(f"inal__target=parity__{bad.name}") for p in moved] == [True, True]  # file, reason
    reason = next(p for p in moved if p.name.endswith(".reason.txt")).read_text()
    if corruption == "wrong_type":
        assert "inal is string (expected double)" in reason
    if corruption == "missing_needed_column":
        assert "missing column inal_se" in reason and "inal_boot" not in reason


def _migrate(study_dir: Path) -> str:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "sweeps.store", "migrate", str(study_dir)], capture_output=True,
                         text=True, check=True, cwd=study_dir.parent)
    return out.stdout


def test_migrate_carries_the_identities_of_a_study_written_before_the_typed_spec(tmp_path, compose_config):
    """0767b9c hashed another payload: after migrate the same command finds every cell complete
    (the dry run of the real launcher says so), and the study holds each cell once."""
    import subprocess
    import sys

    from analysis.load import load_study

    results, study = _copy(tmp_path, "store_0767b9c")
    jobs = _jobs(compose_config, results, study)
    old_ids = {p.stem for p in (results / study / "runs").rglob("*.parquet")}
    assert old_ids and not old_ids & {j.run_id for j in jobs}  # the old hashes differ from today's
    print(_migrate(results / study))
    store = ResultsStore(str(results), study)
    assert store.pending(jobs) == []
    loaded = load_study(str(results / study))
    assert sorted(loaded.runs["run_id"]) == sorted(j.run_id for j in jobs)  # 4 cells, 4 rows
    assert set(loaded.curves["run_id"]) == set(loaded.runs["run_id"])
    assert set(loaded.inal["inal_id"]) == {j.inal_id for j in jobs} and len(loaded.inal) == 4  # 2 settings x 2 layers
    assert set(loaded.runs["config_id"]) == {j.config_id for j in jobs}
    before = {p: p.read_bytes() for p in (results / study).rglob("*.parquet")}
    assert "'rows_reidentified': 0" in _migrate(results / study)  # idempotent: nothing rewritten
    assert {p: p.read_bytes() for p in (results / study).rglob("*.parquet")} == before
    cmd = [sys.executable, "-m", "sweeps.run", "-m", "n=4,6", "c=1", "width=4", "T=5", "train.seed=0,1",
           "inal.n_inits=8", "train.n_eval=64", f"study={study}", f"results_dir={results}",
           "hydra.launcher.dry_run=true", f"hydra.sweep.dir={tmp_path / 'hydra'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert "4 already complete, 0 to run" in out.stdout + out.stderr, out.stdout + out.stderr


def test_migrate_supersedes_rows_whose_identity_truly_changed(tmp_path, compose_config):
    """A row of another engine version is moved aside (kept under _superseded/, never counted):
    its cell is pending again; the other cells keep theirs."""
    from analysis.load import load_study

    results, study = _copy(tmp_path, "store_0767b9c")
    victim = sorted((results / study / "runs").rglob("*.parquet"))[0]
    table = pq.read_table(victim)
    col = table.column_names.index("engine_version")
    pq.write_table(table.set_column(col, "engine_version", pa.array([-1] * table.num_rows, pa.int64()))
                   .replace_schema_metadata(table.schema.metadata), victim)
    _migrate(results / study)
    jobs = _jobs(compose_config, results, study)
    pending = ResultsStore(str(results), study).pending(jobs)
    assert len(pending) == 1 and pending[0].train
    loaded = load_study(str(results / study))
    assert len(loaded.runs) == 3 and loaded.runs["run_id"].is_unique and (loaded.runs["engine_version"] != -1).all()
    assert pending[0].run_id not in set(loaded.curves["run_id"])
    kept = list((results / study / "_superseded").rglob("*.parquet"))
    assert kept and sum(pq.read_metadata(p).num_rows for p in kept) >= 1


def test_migrate_leaves_a_study_of_today_s_hashes_untouched(tmp_path, compose_config):
    results, study = _copy(tmp_path, "store_28046c5")
    before = {p: p.read_bytes() for p in (results / study).rglob("*.parquet")}
    assert "'rows_reidentified': 0" in _migrate(results / study)
    assert {p: p.read_bytes() for p in (results / study).rglob("*.parquet")} == before
    assert ResultsStore(str(results), study).pending(_jobs(compose_config, results, study)) == []
