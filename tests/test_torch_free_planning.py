"""The driver imports no torch: validation, identity, a study's driver, its dry run and its rerun.

Importing torch costs about 2 s on a 2-core machine, more than the rest of the rerun of a complete
10^5-cell study (``inal-bench scale``'s ``scale_resume_1e5``). The planner needs the engines'
contracts, not their tensors: ``inal_core.specs`` (network shapes, the INAL request check and
memory model, the noisy-GD cost model) and ``inal_core.targets`` (families validated and built as
plain objects) import no torch, and ``inal_core``'s other names load on first use. The launcher's
driver reads its tasks' results (``sweeps.outcome.JobOutcome``) without the engines: only Ray's
workers import torch.

Each check runs a fresh interpreter in which any import of torch raises, and compares what it
computes with the same computation in this process, where torch may be loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweeps.validation import validate_job

pytest.importorskip("torch")  # the study below trains cells (in Ray's workers)
pd = pytest.importorskip("pandas")

NO_TORCH = textwrap.dedent('''
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} was imported on the planning path")

    sys.meta_path.insert(0, _NoTorch())
''')

# every family, every estimator choice the planner resolves (auto -> exact, junta, mc), training on
GRIDS = [
    ["target=parity", "n=6", "c=2", "width=4", "depth=2", "T=10"],
    ["target=parity", "n=30", "c=3", "width=4", "inal.estimator=auto"],  # auto -> junta
    ["target=majority", "n=30", "width=4", "inal.n_inputs=256"],  # auto -> mc (30 relevant bits)
    ["target=staircase", "n=7", "+target.k=3", "width=8", "train.loss=hinge"],
    ["target=full_parity", "n=5", "width=2", "init=rademacher"],
    ["target=planted", "n=12", "c=1.5", "width=8", "train.gamma_schedule=inverse_sqrt"],
]


def run_without_torch(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-c", NO_TORCH + textwrap.dedent(code), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_blocker_blocks(tmp_path: Path) -> None:
    proc = run_without_torch("import inal_core; inal_core.estimate_inal", cwd=tmp_path)
    assert proc.returncode != 0 and "torch was imported on the planning path" in proc.stderr


def test_validation_and_identity_of_every_family_without_torch(tmp_path: Path, compose_config) -> None:
    code = '''
        import json, sys
        from hydra import compose, initialize_config_module
        from sweeps.plan import inal_cost, pack_cost
        from sweeps.validation import ConfigError, validate_job

        out = []
        with initialize_config_module("sweeps.conf", version_base="1.3"):
            for overrides in json.loads(sys.argv[1]):
                job = validate_job(compose("config", overrides=overrides + ["results_dir=res"]))
                out.append([job.run_id, job.inal_id, job.values["inal_method"], pack_cost(job), inal_cost(job)])
            try:  # a family's own check, and the INAL memory check, still refuse bad input
                validate_job(compose("config", overrides=["target=parity", "n=4", "c=5", "results_dir=res"]))
            except ConfigError as err:
                out.append(str(err))
            try:
                validate_job(compose("config", overrides=["n=20", "width=4096", "inal.estimator=exact",
                                                          "inal.memory_budget_gb=0.0001", "results_dir=res"]))
            except ConfigError as err:
                out.append(str(err))
        print(json.dumps(out))
        assert "torch" not in sys.modules
    '''
    proc = run_without_torch(code, json.dumps(GRIDS), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])

    from sweeps.plan import inal_cost, pack_cost

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        want = []
        for overrides in GRIDS:
            job = validate_job(compose_config(overrides + ["results_dir=res"]))
            want.append([job.run_id, job.inal_id, job.values["inal_method"], pack_cost(job), inal_cost(job)])
    finally:
        os.chdir(cwd)
    assert got[: len(GRIDS)] == want
    assert [w[2] for w in want] == ["exact", "junta", "mc", "exact", "exact", "exact"]
    assert got[len(GRIDS)].startswith("invalid c=5") and "n=4" in got[len(GRIDS)]
    assert got[len(GRIDS) + 1].startswith("invalid inal.memory_budget_gb=0.0001")


@pytest.mark.ray
def test_a_study_its_dry_run_and_its_rerun_drive_without_torch(ray_address: str, tmp_path: Path) -> None:
    """The driver of a whole study (on the session's Ray: its workers import torch, the driver
    never does), then the dry run of a larger grid and the rerun of the complete one, each in an
    interpreter where torch cannot be imported; the rerun runs nothing and exits 0."""
    res = tmp_path / "res"
    cells = ["n=4", "c=1,2", "width=2", "T=1", "train.N=2n", "train.checkpoints=1", "train.n_eval=64",
             "inal.n_inits=4", f"results_dir={res}", f"hydra.launcher.address={ray_address}",
             "hydra.launcher.progress=false", "hydra.launcher.report=false"]
    main = '''
        import sys
        from sweeps.run import main
        sys.argv = ["inal-sweep"] + sys.argv[1:]
        main()
    '''
    made = run_without_torch(main, "-m", *cells, f"hydra.sweep.dir={tmp_path}/sweep0", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    text = made.stdout + made.stderr
    assert "2 distinct cells; 0 already complete (skipped), 2 run: 2 ok" in text, text[-2000:]
    assert len(pd.read_parquet(res / "default" / "runs")) == 2

    plan = run_without_torch(main, "-m", *cells, "width=2,3,4", "hydra.launcher.dry_run=true",
                             f"hydra.sweep.dir={tmp_path}/sweep1", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr[-3000:]
    text = plan.stdout + plan.stderr
    assert "6 configs" in text and "2 already complete" in text, text[-2000:]

    rerun = run_without_torch(main, "-m", *cells, f"hydra.sweep.dir={tmp_path}/sweep2", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    text = rerun.stdout + rerun.stderr
    assert "2 already complete (skipped), 0 run" in text, text[-2000:]
