"""A user's own target family: written in the user's module outside the package, named by its import
path in the user's Hydra config directory, validated, estimated by every estimator, run on a real
local Ray whose workers cannot import the module (it is shipped with ``runtime_env``), and loaded back."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY

MODULE = '''
"""A user's target family: the threshold ``+1`` iff at least ``t`` of the first ``m`` bits are +1."""
from inal_core.targets import Family, FamilyParam, Target


class Threshold(Target):
    name = "threshold"

    def __init__(self, n, m=3, t=2):
        super().__init__(n, 1.0, tuple(range(m)), {"m": m, "t": t})
        self.m, self.t = m, t

    def _evaluate(self, x):
        ones = (x[..., : self.m] > 0).sum(dim=-1)
        return (ones >= self.t).to(x.dtype) * 2 - 1


THRESHOLD = Family("threshold", Threshold, "fixed", (
    FamilyParam("m", "int", 3, 1, lambda n: n, "n", doc="bits read"),
    FamilyParam("t", "int", 2, 0, lambda n: n, "n", doc="+1 votes needed"),
), fixed_c=1.0, doc="at least t of the first m bits are +1")
NOT_A_FAMILY = 3
'''


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """``tmp/lib/user_threshold.py`` (on this process's path only) and ``tmp/conf/target/threshold.yaml``;
    the registration and the module are removed afterwards."""
    from inal_core.targets import available_targets, unregister_family

    lib, conf = tmp_path / "lib", tmp_path / "conf" / "target"
    lib.mkdir()
    conf.mkdir(parents=True)
    (lib / "user_threshold.py").write_text(textwrap.dedent(MODULE))
    (conf / "threshold.yaml").write_text("name: user_threshold:THRESHOLD\nm: 3\nt: 2\n")
    monkeypatch.syspath_prepend(str(lib))
    yield tmp_path
    for name in available_targets():
        if name.startswith("user_threshold:"):
            unregister_family(name)
    sys.modules.pop("user_threshold", None)


def test_import_path_family_in_every_estimator(user_dir):
    import torch

    from inal_core.inal import estimate_inal
    from inal_core.networks import NetworkSpec
    from inal_core.targets import make_target

    target = make_target("user_threshold:THRESHOLD", 8, m=3, t=2)
    x = torch.tensor([[1, 1, -1] + [1] * 5, [1, -1, -1] + [1] * 5], dtype=torch.float64)
    assert target(x).tolist() == [1.0, -1.0] and target.relevant_bits == (0, 1, 2)
    spec = NetworkSpec(8, 4, 1)
    exact = estimate_inal(target, spec, n_inits=4, method="exact", dtype=torch.float64)
    plain = estimate_inal(target, spec, n_inits=4, method="exact", dtype=torch.float64, engine="plain")
    np.testing.assert_allclose(exact.per_init, plain.per_init, rtol=1e-10)
    for method in ("mc", "junta"):  # sampled estimates land near the exact value
        res = estimate_inal(target, spec, n_inits=4, method=method, n_inputs=4096, dtype=torch.float64)
        assert res.method == method and abs(res.value - exact.value) < 0.25 * exact.value


@pytest.mark.parametrize("name,why", [
    ("no_such_module:FAMILY", "cannot import module 'no_such_module' (ModuleNotFoundError"),
    ("user_threshold:MISSING", "'MISSING' in module 'user_threshold' is missing, not an inal_core.targets.Family"),
    ("user_threshold:NOT_A_FAMILY",
     "'NOT_A_FAMILY' in module 'user_threshold' is int, not an inal_core.targets.Family"),
])
def test_a_bad_import_path_is_one_clear_line(user_dir, name, why, compose_config):
    from sweeps.validation import ConfigError, validate_job

    cfg = compose_config([f"target.name={name}", f"results_dir={user_dir / 'res'}"])
    with pytest.raises(ConfigError) as info:
        validate_job(cfg)
    message = str(info.value)
    assert message.startswith(f"invalid target.name={name!r} (allowed: a built-in family or an import path")
    assert why in message
    assert "\n" not in message


@pytest.mark.ray
@pytest.mark.slow  # a subprocess driver (its own torch import) and fresh Ray workers for the shipped runtime_env
def test_user_family_runs_on_ray_from_its_own_directory(ray_address, user_dir):
    # ``inal-sweep`` run from the user's directory, with the module on its PYTHONPATH only: the Ray
    # workers (started by this test process, before the module existed) import it because the
    # launcher ships it with runtime_env py_modules when it joins the cluster
    import os
    import subprocess

    from analysis.load import load_study

    results = user_dir / "results"
    env = dict(os.environ, PYTHONPATH=str(user_dir / "lib"), PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    args = ["-m", *TINY, f"hydra.searchpath=[file://{user_dir / 'conf'}]", "target=threshold", "n=5",
            "target.t=1,2", f"results_dir={results}", f"hydra.sweep.dir={user_dir}/sweep",
            f"hydra.launcher.address={ray_address}", "hydra.launcher.report=false", "hydra.launcher.progress=false"]
    proc = subprocess.run([str(Path(sys.executable).parent / "inal-sweep"), *args], cwd=user_dir, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 ok" in proc.stdout, proc.stdout[-3000:]
    study = load_study(str(results / "default"))
    assert len(study.runs) == 2 and set(study.runs.status) == {"ok"}
    assert set(study.runs.target) == {"user_threshold:THRESHOLD"}
    assert len(study.inal) == 2 * 2 and (study.inal["inal"] > 0).all()
    from analysis.report import main as report  # the report works for it

    assert report([str(results), "--out", str(user_dir / "report"), "--format", "png"]) == 0
    assert "user_threshold:THRESHOLD" in (user_dir / "report" / "report.md").read_text()


def test_runtime_env_ships_a_module_that_is_not_installed(user_dir):
    from hydra_plugins.inal_ray_launcher._ray import _with_user_code, user_code_runtime_env
    from inal_core.targets import make_target

    assert user_code_runtime_env() == {}
    make_target("user_threshold:THRESHOLD", 5)  # registers it
    module = str((user_dir / "lib" / "user_threshold.py").resolve())
    assert user_code_runtime_env() == {"py_modules": [module]}
    kwargs = _with_user_code({"runtime_env": {"env_vars": {"A": "1"}, "py_modules": ["x.whl"]}})
    assert kwargs["runtime_env"] == {"env_vars": {"A": "1"}, "py_modules": ["x.whl", module]}
