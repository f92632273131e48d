"""Execute every notebook in analysis/notebooks/ with nbclient against a small study made here.

The study is a tiny real one: jobs composed from the project's Hydra config, validated by
``sweeps.validation.validate_job`` and computed by ``sweeps.execute.run_training_pack`` (INAL and noisy
GD, written by the real store), in-process without Ray: 3 n x 2 c x 3 seeds, width 8, T = 10
(about 10 s on an idle 2-core machine). The report tests use synthetic studies with known answers.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "analysis" / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, compose_config):
    pytest.importorskip("sweeps.execute")
    from omegaconf import open_dict

    from sweeps.execute import plan_packs, run_training_pack
    from sweeps.validation import validate_job

    results = tmp_path_factory.mktemp("nb")
    base = compose_config([
        "width=8", "depth=1", "T=10", "gamma=0.05", "sigma=1e-3", "study=nbstudy", f"results_dir={results}",
        "inal.n_inits=64", "train.checkpoints=3", "train.n_eval=1024", "device=cpu"])
    jobs = []
    for n in (4, 6, 8):
        for c in (1, 2):
            for seed in (0, 1, 2):
                cfg = base.copy()
                with open_dict(cfg):
                    cfg.n, cfg.c, cfg.train.seed = n, c, seed
                jobs.append(validate_job(cfg))
    for pack in plan_packs(jobs, 8):
        outcomes = run_training_pack(pack, device="cpu")
        assert all(o.status == "ok" for o in outcomes), outcomes
    return str(results / "nbstudy")


def test_there_is_a_notebook():
    assert NOTEBOOKS, "analysis/notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, study_dir, monkeypatch):
    monkeypatch.setenv("INAL_STUDY_DIR", study_dir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    # slow-ish: a Jupyter kernel per notebook, every cell run; the per-cell timeout bounds a hang,
    # not a speed (a loaded machine runs a cell many times slower)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()   # raises CellExecutionError with the cell's traceback on any error
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, f"expected the report's four figures, got {len(images)}"
    assert os.environ["INAL_STUDY_DIR"] == study_dir
