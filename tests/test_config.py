"""The config tree composes, the presets expand into the grids their headers state, and job identity is stable."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import inal_core
from sweeps.jobs import dedupe_jobs
from sweeps.validation import validate_job

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "sweeps" / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def test_top_level_axes_and_groups(compose_config):
    cfg = compose_config()
    for key in ("n", "c", "width", "depth", "T", "gamma", "sigma", "study", "results_dir", "device"):
        assert key in cfg, key
    assert cfg.results_dir == "./results" and cfg.device == "auto"
    assert set(cfg.train) >= {"A", "precision", "loss", "batch", "N", "checkpoints", "n_eval", "seed"}
    assert set(cfg.inal) >= {"estimator", "n_inits", "n_inputs", "memory_budget_gb"}
    assert "bias" in cfg.network and "name" in cfg.init and "name" in cfg.target
    for group, options in {"target": {"parity", "majority", "staircase", "full_parity", "planted"},
                           "init": {"normal", "normal_bias1", "rademacher"},
                           "inal": {"auto", "exact", "mc", "junta"}}.items():
        assert {p.stem for p in (CONF / group).glob("*.yaml")} >= options
        for option in options:
            compose_config([f"{group}={option}"])


def test_default_launcher_is_inal_ray(compose_config):
    cfg = compose_config(hydra=True)
    assert "inal_ray" in cfg.hydra.launcher._target_.lower() or cfg.hydra.runtime.choices["hydra/launcher"] == "inal_ray"


def _expand(compose_config, preset):
    """The job override lists Hydra's BasicSweeper makes of a preset's hydra.sweeper.params."""
    cfg = compose_config([f"+experiment={preset}"], hydra=True)
    # a preset is a study: `inal-sweep +experiment=<name>` must run its grid, not one default cell
    assert "MULTIRUN" in str(cfg.hydra.mode), f"{preset}.yaml: hydra.mode is {cfg.hydra.mode}, not MULTIRUN"
    params = cfg.hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    batches = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return [job for batch in batches for job in batch]


def _fast_configs(compose_config, preset, configs):
    """Compose once per config-group choice, then set the scalar overrides with OmegaConf (Hydra's
    full composition costs ~0.1-0.4 s a job on this machine)."""
    parser = OverridesParser.create()
    cache, out = {}, []
    for job in configs:
        parsed = parser.parse_overrides(job)
        groups = tuple(o.input_line for o in parsed if o.key_or_group in ("target", "init", "network", "train", "inal"))
        if groups not in cache:
            cache[groups] = compose_config([f"+experiment={preset}", *groups])
        cfg = copy.deepcopy(cache[groups])
        for o in parsed:
            if o.input_line not in groups:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
        out.append(cfg)
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_header_and_grid(compose_config, preset):
    """Each preset says its command, grid size and wall time; its grid composes and validates."""
    text = (CONF / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert f"+experiment={preset}" in text or (preset == "default" and "inal-sweep" in text)
    assert re.search(r"Wall time on this 2-core machine: about \d+", text)
    configs = _expand(compose_config, preset)
    stated = re.search(r"= (\d+) (?:configs|runs)", text)
    assert stated and int(stated.group(1)) == len(configs)
    jobs = [validate_job(cfg) for cfg in _fast_configs(compose_config, preset, configs)]
    for k in (0, len(configs) // 2, len(configs) - 1):  # the shortcut equals Hydra's own composition
        assert validate_job(compose_config([f"+experiment={preset}", *configs[k]])).run_id == jobs[k].run_id
    distinct = len(dedupe_jobs(jobs))
    stated_distinct = re.search(r"(\d+) distinct", text)
    if stated_distinct:
        assert int(stated_distinct.group(1)) == distinct
    stated_inal = re.search(r"(\d+) INAL settings", text)
    if stated_inal:
        assert int(stated_inal.group(1)) == len({j.inal_id for j in jobs})
    assert all(j.study == preset for j in jobs)


# ----------------------------------------------------------------------------- identity


def ids(job):
    return job.run_id, job.inal_id, job.pack_key, job.seed


def test_same_config_same_identity(compose_config):
    a = validate_job(compose_config(["n=6", "c=2"]))
    b = validate_job(compose_config(["c=2", "n=6"]))
    assert ids(a) == ids(b) and a.values == b.values


def test_location_device_and_hydra_settings_are_not_identity(compose_config, tmp_path):
    base = ids(validate_job(compose_config()))
    for overrides in ([f"results_dir={tmp_path / 'elsewhere'}"], [f"results_dir=file://{tmp_path}/x/y"],
                      ["results_dir=s3://bucket/p"], ["device=cpu"], ["device=cuda"],
                      ["study=other"], ["inal.memory_budget_gb=8"], ["hydra.job.name=foo"]):
        assert ids(validate_job(compose_config(overrides))) == base, overrides
    assert ids(validate_job(compose_config(hydra=True))) == base  # with the hydra node present


@pytest.mark.parametrize("override,run,inal,pack", [
    ("gamma=0.07", True, False, False),
    ("sigma=0.001", True, False, False),
    ("train.seed=1", True, False, False),
    ("T=300", True, False, True),
    ("train.A=2", True, False, True),
    ("train.loss=hinge", True, False, True),
    ("train.N=2n", True, False, True),
    ("width=32", True, True, True),
    ("n=9", True, True, True),
    ("c=2", True, True, True),
    ("init=rademacher", True, True, True),
    ("inal.n_inits=64", True, True, True),
    ("inal=mc", True, True, True),
])
def test_what_changes_the_identity(compose_config, override, run, inal, pack):
    a, b = validate_job(compose_config()), validate_job(compose_config([override]))
    assert (a.run_id != b.run_id, a.inal_id != b.inal_id, a.pack_key != b.pack_key) == (run, inal, pack)
    assert (a.seed != b.seed) == run


def test_auto_resolving_to_exact_is_exact(compose_config):
    a, b = validate_job(compose_config(["n=6"])), validate_job(compose_config(["n=6", "inal=exact"]))
    assert a.values["inal_method"] == "exact" and (a.run_id, a.inal_id) == (b.run_id, b.inal_id)


def test_fixed_exponent_families_collapse(compose_config):
    jobs = [validate_job(compose_config([f"target={t}", f"c={c}", "n=7"])) for t in ("majority", "staircase", "full_parity")
            for c in (1, 2, 3)]
    assert len(dedupe_jobs(jobs)) == 3
    assert {j.values["c"] for j in jobs} == {1.0, float("inf")}
    parity = [validate_job(compose_config([f"c={c}", "n=7"])) for c in (1, 2, 3)]
    assert len(dedupe_jobs(parity)) == 3


def test_inal_only_jobs_ignore_training_settings(compose_config):
    jobs = [validate_job(compose_config(["T=0", *o])) for o in ([], ["gamma=0.5"], ["sigma=0"], ["train.seed=3"],
                                                          ["train.loss=hinge", "train.N=2n"])]
    assert len(dedupe_jobs(jobs)) == 1 and not jobs[0].train
    assert validate_job(compose_config(["T=0", "width=32"])).run_id != jobs[0].run_id


def test_engine_version_is_part_of_the_identity(compose_config, monkeypatch):
    a = validate_job(compose_config())
    monkeypatch.setattr(inal_core, "ENGINE_VERSION", inal_core.ENGINE_VERSION + 1)
    b = validate_job(compose_config())
    assert a.run_id != b.run_id and a.inal_id != b.inal_id


def test_identity_is_the_same_in_another_process(compose_config):
    job = validate_job(compose_config(["n=7", "gamma=0.03"]))
    code = ("from hydra import compose, initialize_config_module\nfrom sweeps.validation import validate_job\n"
            "with initialize_config_module('sweeps.conf', version_base='1.3'):\n"
            "    j = validate_job(compose('config', overrides=['gamma=0.03', 'n=7']))\n"
            "print(j.run_id, j.inal_id, j.pack_key, j.seed)")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [job.run_id, job.inal_id, job.pack_key, str(job.seed)]


# ----------------------------------------------------------------------------- identity of validated values


@pytest.mark.parametrize("a,b", [
    (["target.subset_seed=0"], ["target.subset_seed=0.0"]),
    (["target=parity", "target.subset=random", "target.subset_seed=3"], ["target.subset=random", "target.subset_seed=3.0"]),
    (["n=8"], ["n=8.0"]),
    (["width=16"], ["width=16.0"]),
    (["train.A=1"], ["train.A=1.0"]),
    (["gamma=1"], ["gamma=1.0"]),
    (["sigma=0"], ["sigma=0.0"]),
    (["c=2"], ["c=2.0"]),
    (["c=2"], ["c=2", "+target.k=2"]),  # parity's k is another name for c
    (["train.seed=3"], ["train.seed=3.0"]),
    (["train.batch=0"], ["train.batch=null"]),
    (["train.N=2n"], ["train.N='2*n'"]),
    (["train.N=n2"], ["train.N='n^2'"]),
    (["n=8", "train.N=64"], ["n=8", "train.N=64.0"]),
    (["train.checkpoints=[0,100,200]"], ["train.checkpoints=[0.0,100,200.0]"]),
    (["inal.n_inputs=null"], ["inal.n_inputs=null", "inal.memory_budget_gb=3"]),
    (["target=staircase", "n=8"], ["target=staircase", "n=8", "+target.k=null"]),
    (["target=planted", "n=12", "c=2"], ["target=planted", "n=12", "c=2.0", "+target.resolution_bits=2.0"]),
])
def test_identity_is_invariant_to_spellings_of_one_value(compose_config, a, b):
    ja, jb = validate_job(compose_config(a)), validate_job(compose_config(b))
    assert ids(ja) == ids(jb) and ja.config_id == jb.config_id and ja.inal_config_id == jb.inal_config_id, (a, b)


def test_unknown_added_key_never_reuses_the_cells_of_the_plain_command(compose_config):
    from sweeps.validation import ConfigError

    validate_job(compose_config(["train.N=2n"]))
    for extra in ("+train.momentum=0.9", "+widht=8", "+target.kk=1", "+inal.tolerance=1e-3"):
        with pytest.raises(ConfigError):
            validate_job(compose_config(["train.N=2n", extra]))


def test_config_id_is_everything_but_n_seed_and_location(compose_config, tmp_path):
    from sweeps.spec import config_id_keys

    base = validate_job(compose_config(["target=staircase", "+target.k=3", "n=8", "train.N=2n"]))
    same = [["n=10"], ["n=12", "train.seed=4"], [f"results_dir={tmp_path}"], ["study=other"], ["device=cpu"],
            ["inal.memory_budget_gb=4"]]
    for extra in same:
        job = validate_job(compose_config(["target=staircase", "+target.k=3", "n=8", "train.N=2n", *extra]))
        assert job.config_id == base.config_id and job.inal_config_id == base.inal_config_id, extra
    # staircase k=3 and k=5 (both nominal c=1) are two configs; so is every other config value
    differ = [["target.k=5"], ["width=32"], ["gamma=0.1"], ["sigma=0.01"], ["T=100"], ["train.N=n2"], ["inal.n_inits=64"],
              ["init=rademacher"], ["train.loss=hinge"]]
    for extra in differ:
        job = validate_job(compose_config(["target=staircase", "+target.k=3", "n=8", "train.N=2n", *extra]))
        assert job.config_id != base.config_id, extra
        inal_side = any(k in extra[0] for k in ("target.k", "width", "n_inits", "init"))
        assert (job.inal_config_id != base.inal_config_id) == inal_side, extra
    # auto resolving to exact at small n and to mc at large n stays one config across n
    small, large = (validate_job(compose_config(["n=8", f"n={n}", "T=0"])) for n in (8, 40))
    assert small.values["inal_method"] != large.values["inal_method"] and small.inal_config_id == large.inal_config_id
    runs_keys, inal_keys = config_id_keys("runs", ("k",)), config_id_keys("inal", ("k",))
    assert "n" not in runs_keys and "train_seed" not in runs_keys and "target.k" in runs_keys
    assert set(inal_keys) < set(runs_keys) and "gamma" not in inal_keys and "width" in inal_keys


def test_values_are_a_read_only_view_of_the_typed_spec(compose_config):
    import pickle

    from sweeps.spec import FIELDS

    job = validate_job(compose_config(["c=2"]))
    with pytest.raises(TypeError):
        job.values["n"] = 9  # type: ignore[index]
    assert {f.flat for f in FIELDS} <= set(job.values)
    assert job.values["n"] == job.config.n and job.values["train_seed"] == job.config.training.seed
    assert job.values["target.subset_seed"] == 0 and isinstance(job.values["target.subset_seed"], int)
    back = pickle.loads(pickle.dumps(job))
    assert ids(back) == ids(job) and dict(back.values) == dict(job.values)
    moved = job.with_location(results_dir="/x", study="s2", device="cpu")
    assert ids(moved) == ids(job) and (moved.results_dir, moved.study, moved.device) == ("/x", "s2", "cpu")
    assert job.results_dir != "/x"


def test_interpolations_are_resolved_before_validation(compose_config, tmp_path):
    job = validate_job(compose_config([f"results_dir={tmp_path}/${{study}}_out", "study=s1", "width=${depth}"]))
    assert job.results_dir == f"{tmp_path}/s1_out" and job.values["width"] == job.values["depth"] == 1
    plain = validate_job(OmegaConf.to_container(compose_config([f"results_dir={tmp_path}/s1_out", "study=s1", "width=1"]),
                                                resolve=True))
    assert ids(plain) == ids(job)
