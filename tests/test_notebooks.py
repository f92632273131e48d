"""Execute every notebook in analysis/notebooks/ with nbclient against a small study made here.

The study is synthetic (analysis.synthetic: the store's layout and schema, known power laws), so
the test is fast and independent of the sweep machinery.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from analysis.synthetic import SyntheticTarget, write_synthetic_study  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "analysis" / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    targets = [SyntheticTarget("parity", c=1, inal_exponent=1.0, r_slope=-0.5),
               SyntheticTarget("parity", c=2, inal_exponent=2.0, r_slope=-0.3),
               SyntheticTarget("majority", c=1, inal_exponent=1.0, r_slope=None)]
    return write_synthetic_study(tmp_path_factory.mktemp("nb"), "nbstudy", targets, n_values=(8, 12, 16, 24),
                                 seeds=range(4), rng_seed=3)


def test_there_is_a_notebook():
    assert NOTEBOOKS, "analysis/notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, study_dir, monkeypatch):
    monkeypatch.setenv("INAL_STUDY_DIR", study_dir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()   # raises CellExecutionError with the cell's traceback on any error
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, f"expected the report's four figures, got {len(images)}"
    assert os.environ["INAL_STUDY_DIR"] == study_dir
