"""The schemas, the row builders and the README column tables agree (all derived from sweeps/columns.py),
and the job columns of a stored row hold the values of the config that produced it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sweeps.store
from sweeps.columns import SCHEMAS, TABLES, columns_of, readme_tables, render_table
from sweeps.execute import _run_row, run_training_pack
from sweeps.validation import validate_job

REPO = Path(__file__).resolve().parent.parent
README = REPO / "sweeps" / "README.md"
TINY = ["n=4", "width=4", "depth=2", "T=3", "train.N=2n", "train.checkpoints=[0,2,3]", "train.n_eval=64",
        "inal.n_inits=8", "device=cpu", "study=cols", "gamma=0.07", "sigma=0.002", "train.A=0.5",
        "train.seed=5", "c=2", "target.subset=random", "target.subset_seed=3"]
_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
          "timestamp (UTC)": pa.timestamp("us", tz="UTC")}


def _parse_readme_table(block: str) -> list[tuple[str, pa.DataType]]:
    """(column, type) pairs of a README table, read from the markdown itself."""
    out = []
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`([^`]+)`", cells[0])
        types = [t.strip() for t in cells[1].split(",")]
        types = types * len(names) if len(types) == 1 else types
        assert len(types) == len(names), line
        out.extend((n, _TYPES[t]) for n, t in zip(names, types))
    return out


def test_readme_tables_are_the_generated_ones():
    found = readme_tables(README.read_text())
    assert set(found) == set(TABLES), "README lacks a marked column table; run python -m sweeps.columns --write"
    for kind in TABLES:
        assert found[kind] == render_table(kind), f"README {kind} table is stale: python -m sweeps.columns --write sweeps/README.md"


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_readme_names_and_types_are_the_schema(kind):
    documented = _parse_readme_table(readme_tables(README.read_text())[kind])
    stored = [(n, t) for n, t in documented if n != "target"]  # target: the hive partition, in the path
    assert ("target", pa.string()) in documented
    schema = SCHEMAS[kind]
    assert stored == [(f.name, f.type) for f in schema]
    assert getattr(sweeps.store, f"{kind.upper()}_SCHEMA").equals(schema)  # the store uses these very schemas
    assert sweeps.store.DATASETS[kind][0].equals(schema)


def test_config_id_in_runs_and_inal():
    assert "config_id" in SCHEMAS["runs"].names and "config_id" in SCHEMAS["inal"].names
    assert {"correlation", "correlation_se", "n_steps"} <= set(SCHEMAS["runs"].names)
    assert not {"corr", "corr_se", "T"} & set(SCHEMAS["runs"].names)


@pytest.fixture(scope="module")
def job_and_files(tmp_path_factory, compose_config):
    root = tmp_path_factory.mktemp("cols")
    cfg = compose_config([*TINY, f"results_dir={root}"])
    job = validate_job(cfg)
    (outcome,) = run_training_pack([job])
    assert outcome.status == "ok", outcome.error
    files = {kind: sorted(p for p in root.rglob("*.parquet") if kind in p.relative_to(root).parts) for kind in TABLES}
    return cfg, job, files


def test_row_builder_makes_exactly_the_runs_columns(job_and_files):
    _, job, _ = job_and_files
    row = _run_row(job, "cpu", 10, 0.5)
    assert set(row) == set(columns_of("runs"))


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_written_files_have_the_schema(job_and_files, kind):
    _, _, files = job_and_files
    assert files[kind], kind
    for path in files[kind]:
        written = pq.read_schema(path).remove_metadata()
        assert written.equals(SCHEMAS[kind]), (path, written)


def test_stored_job_columns_hold_the_config_values(job_and_files):
    """Each job column against the composed config it came from (not against the job spec)."""
    cfg, job, files = job_and_files
    run = pq.read_table(files["runs"][0]).to_pylist()[0]
    assert (run["n"], run["N"], run["N_spec"], run["c"]) == (cfg.n, 2 * cfg.n, "2n", float(cfg.c))
    assert (run["width"], run["depth"], run["init"], run["bias"]) == (cfg.width, cfg.depth, cfg.init.name, cfg.network.bias)
    assert (run["n_steps"], run["gamma"], run["sigma"], run["A"]) == (cfg.T, cfg.gamma, cfg.sigma, cfg.train.A)
    assert (run["precision"], run["loss"], run["batch"], run["gamma_schedule"]) == (
        cfg.train.precision, cfg.train.loss, cfg.train.batch, cfg.train.gamma_schedule)
    assert json.loads(run["checkpoints"]) == list(cfg.train.checkpoints) and run["n_eval"] == cfg.train.n_eval
    assert run["seed"] == cfg.train.seed and run["study"] == cfg.study
    assert (run["estimator"], run["n_inits"], run["n_inputs"]) == (cfg.inal.estimator, cfg.inal.n_inits, 0)
    assert "subset=random" in run["target_params"] and "subset_seed=3" in run["target_params"]
    assert (run["run_id"], run["inal_id"], run["config_id"]) == (job.run_id, job.inal_id, job.config_id)
    inal = pq.read_table(files["inal"][0]).to_pylist()
    assert [r["layer"] for r in inal] == [1, 2, 3]  # depth + 1 rows
    assert {r["config_id"] for r in inal} == {job.inal_config_id} and {r["n"] for r in inal} == {cfg.n}
    curves = pq.read_table(files["curves"][0]).to_pylist()
    assert [r["step"] for r in curves] == list(cfg.train.checkpoints)


def test_config_columns_are_constant_within_a_config_id(compose_config):
    """A grid over n, seed and staircase k: config_id splits k=3 from k=5 (both nominal c=1) and
    nothing else; the config columns are constant within a group, n and seed are not."""
    from sweeps.columns import config_columns, job_columns

    base = compose_config(["target=staircase", "+target.k=3", "train.N=2n", "T=10"])
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(base, resolve=True)
    rows = []
    for k in (3, 5):
        for n in (6, 8, 10):
            for seed in (0, 1):
                cfg = {**plain, "n": n, "target": {**plain["target"], "k": k}, "train": {**plain["train"], "seed": seed}}
                rows.append(job_columns("runs", validate_job(cfg)) | {"target": "staircase", "k": k})
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["config_id"], []).append(row)
    assert sorted({r["k"] for r in g}.pop() for g in groups.values()) == [3, 5] and len(groups) == 2
    for group in groups.values():
        for col in config_columns("runs"):
            assert len({r[col] for r in group}) == 1, col
        assert {r["n"] for r in group} == {6, 8, 10} and {r["seed"] for r in group} == {0, 1}
    assert "n" not in config_columns("inal") and "target" in config_columns("inal")
