"""What Hydra users expect of ``inal-sweep``, on the launcher's fast path, with real Hydra and Ray:

- a ``hydra.callbacks`` callback sees ``on_job_start`` and ``on_job_end`` for every job, with the
  job's config and a ``JobReturn`` carrying the cell's status;
- the sweep directory holds the multirun's ``.hydra/`` (config, hydra, overrides), a pointer to
  the results and a non-empty ``run.log``;
- a preset (``+experiment=...``) runs as a multirun without ``-m``;
- ``--help`` says what inal-sweep is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest
import yaml

ray = pytest.importorskip("ray")

from conftest import TINY, multirun  # noqa: E402

BIN = Path(sys.executable).parent


class RecordingCallback:
    """A Hydra callback recording what it is told (instantiated by Hydra from ``hydra.callbacks``)."""

    started: List[Any] = []
    ended: List[Any] = []

    def __init__(self, **kwargs: Any) -> None:
        pass

    def on_multirun_start(self, config, **kwargs):
        pass

    def on_multirun_end(self, config, **kwargs):
        pass

    def on_job_start(self, config, *, task_function, **kwargs):
        RecordingCallback.started.append((config.n, config.train.seed))

    def on_job_end(self, config, job_return, **kwargs):
        RecordingCallback.ended.append(((config.n, config.train.seed), job_return.return_value["status"],
                                        list(job_return.overrides)))


@pytest.mark.ray
def test_callback_sees_every_job_and_the_sweep_dir_is_hydras(ray_address: str, tmp_path: Path,
                                                               hydra_restore_singletons) -> None:
    RecordingCallback.started.clear()
    RecordingCallback.ended.clear()
    grid = ["n=4,5", "c=1", "train.seed=0,1", "gamma=0.05,1e30", *TINY,
            f"+hydra.callbacks.recorder._target_={__name__}.RecordingCallback"]
    out = multirun(grid, tmp_path)
    assert len(out) == 8
    cells = sorted((n, s) for n in (4, 5) for s in (0, 1) for _ in (0.05, 1e30))
    assert sorted(RecordingCallback.started) == cells
    assert sorted(c for c, _, _ in RecordingCallback.ended) == cells
    statuses = sorted(status for _, status, _ in RecordingCallback.ended)
    assert statuses == ["diverged"] * 4 + ["ok"] * 4  # gamma=1e30 diverges
    assert all(any(o.startswith("gamma=") for o in overrides) for _, _, overrides in RecordingCallback.ended)

    sweep = tmp_path / "_sweep"
    hydra_dir = sweep / ".hydra"
    config = yaml.safe_load((hydra_dir / "config.yaml").read_text())
    assert config["study"] == "default" and "hydra" not in config and config["width"] == 8
    assert "hydra" in yaml.safe_load((hydra_dir / "hydra.yaml").read_text())
    assert f"results_dir={tmp_path}" in yaml.safe_load((hydra_dir / "overrides.yaml").read_text())
    results = yaml.safe_load((sweep / "results.yaml").read_text())
    assert results["results"] == [str(tmp_path / "default")]
    log = (sweep / "run.log").read_text()
    assert "8 configs -> 8 distinct cells" in log and "4 ok, 4 diverged, 0 failed" in log

    # the rerun: every job skipped, and still told to the callback
    RecordingCallback.ended.clear()
    multirun(grid, tmp_path)
    assert sorted(status for _, status, _ in RecordingCallback.ended) == ["skipped"] * 8


@pytest.mark.ray
def test_preset_runs_as_a_multirun_without_dash_m(ray_address: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    # the preset's own grid narrowed to one cell by command-line values (they win over the preset's)
    proc = subprocess.run(
        [str(BIN / "inal-sweep"), "+experiment=default", "target=parity", "c=1", "n=4", "train.seed=0", *TINY,
         f"results_dir={tmp_path}", f"hydra.sweep.dir={tmp_path}/_sweep", f"hydra.launcher.address={ray_address}",
         "hydra.launcher.report=false", "hydra.launcher.progress=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 configs -> 1 distinct cells" in proc.stdout, proc.stdout[-3000:]
    assert (tmp_path / "_sweep" / "multirun.yaml").exists()  # Hydra's multirun, not a single run


def test_help_says_what_inal_sweep_is() -> None:
    proc = subprocess.run([str(BIN / "inal-sweep"), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = proc.stdout
    assert text.startswith("inal-sweep:") and "Initial Alignment" in text
    assert "run is powered by Hydra" not in text and "``" not in text and "inal-report" in text
