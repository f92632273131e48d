"""Bad input is refused before any work, with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import sys

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.initialize import get_gh_backup, restore_gh_from_backup

from sweeps.run import main
from sweeps.schema import ConfigError, validate_job

# (overrides, key named, value shown, words of the allowed set)
BAD_INPUTS = [
    (["n=0"], "n", "0", "integer >= 1"),
    (["n=-3"], "n", "-3", "integer >= 1"),
    (["n=abc"], "n", "'abc'", "integer >= 1"),
    (["n=8.5"], "n", "8.5", "integer >= 1"),
    (["width=0"], "width", "0", "integer >= 1"),
    (["depth=-1"], "depth", "-1", "integer >= 1"),
    (["T=-1"], "T", "-1", "integer >= 0"),
    (["gamma=0"], "gamma", "0", "> 0"),
    (["gamma=-0.1"], "gamma", "-0.1", "> 0"),
    (["gamma=fast"], "gamma", "'fast'", "> 0"),
    (["sigma=-1e-4"], "sigma", "-0.0001", ">= 0"),
    (["sigma=inf"], "sigma", "inf", "finite number >= 0"),
    (["train.A=0"], "train.A", "0", "> 0"),
    (["target.name=parityy"], "target.name", "'parityy'", "majority, parity, planted"),
    (["init.name=xavier"], "init.name", "'xavier'", "normal, normal_bias1, rademacher"),
    (["train.loss=l1"], "train.loss", "'l1'", "squared, correlation, hinge"),
    (["train.precision=float"], "train.precision", "'float'", "clip, round"),
    (["inal.estimator=magic"], "inal.estimator", "'magic'", "auto, exact, mc, junta"),
    (["n=8", "train.N=4"], "train.N", "4", "integer >= n (n=8)"),
    (["train.N='n^3'"], "train.N", "'n^3'", '"n^2" (alias n2), "2n"'),
    (["n=8", "c=9"], "c", "9", "k = c in 1..n (n=8)"),
    (["c=1.5"], "c", "1.5", "integer >= 1"),
    (["c=abc"], "c", "'abc'", "finite number"),
    (["target=planted", "n=12", "c=0.5"], "c", "0.5", ">= 1"),
    (["train.batch=-1"], "train.batch", "-1", "integer >= 0"),
    (["inal.n_inits=0"], "inal.n_inits", "0", "integer >= 1"),
    (["inal.n_inputs=1"], "inal.n_inputs", "1", "integer >= 2"),
    (["inal.memory_budget_gb=0"], "inal.memory_budget_gb", "0", "> 0"),
    (["train.n_eval=1"], "train.n_eval", "1", "integer >= 2"),
    (["train.checkpoints=0"], "train.checkpoints", "0", "count >= 1"),
    (["train.checkpoints=[10,5]"], "train.checkpoints", "[10, 5]", "increasing list of steps in [0, T=200]"),
    (["T=10", "train.checkpoints=[0,50]"], "train.checkpoints", "[0, 50]", "steps in [0, T=10]"),
    (["device=tpu"], "device", "'tpu'", "auto, cpu, cuda"),
    (["train.seed=-1"], "train.seed", "-1", "integer >= 0"),
    (["network.bias=maybe"], "network.bias", "'maybe'", "true or false"),
    (["target.subset=middle"], "target.subset", "'middle'", "first, random"),
    (["study=a/b"], "study", "'a/b'", "no slashes"),
    (["target=staircase", "n=4", "+target.k=7"], "target", "'k': 7", "make_target"),
]


@pytest.fixture(scope="module")
def composer():
    with initialize_config_module("sweeps.conf", version_base="1.3"):
        yield lambda overrides: compose("config", overrides=overrides)


def test_there_are_at_least_twenty_kinds():
    assert len({key for _, key, _, _ in BAD_INPUTS}) >= 20
    assert len(BAD_INPUTS) >= 30


@pytest.mark.parametrize("overrides,key,value,allowed", BAD_INPUTS, ids=[" ".join(o) for o, *_ in BAD_INPUTS])
def test_bad_input_names_key_value_and_allowed(composer, overrides, key, value, allowed):
    cfg = composer(overrides)
    with pytest.raises(ConfigError) as info:
        validate_job(cfg)
    message = str(info.value)
    assert f"invalid {key}=" in message and info.value.key == key
    assert value in message
    assert "allowed:" in message and allowed in message


def test_exact_enumeration_beyond_what_fits(composer):
    with pytest.raises(ConfigError) as info:
        validate_job(composer(["inal=exact", "n=40"]))
    assert str(info.value).startswith("invalid inal.estimator='exact' (allowed: one of auto, exact, mc, junta that "
                                      "can serve n=40 (exact enumeration only while it fits inal.memory_budget_gb=2)")
    with pytest.raises(ConfigError) as info:
        validate_job(composer(["inal=exact", "n=20", "width=4096", "inal.memory_budget_gb=1e-4"]))
    assert str(info.value).startswith("invalid inal.memory_budget_gb=0.0001 (allowed: a budget the smallest INAL "
                                      "chunk fits in, or another inal.estimator)")
    validate_job(composer(["inal=exact", "n=6"]))  # small n fits


def test_good_configs_pass(composer):
    for overrides in ([], ["target=majority", "c=3"], ["target=full_parity"], ["target=planted", "n=12", "c=1.5"],
                      ["target=staircase"], ["init=rademacher", "network=no_bias"], ["T=0"], ["train.N=2n"], ["train.N=n2"], ["train.N='n^2'"],
                      ["train.N=100"], ["train.checkpoints=[0,100,200]"], ["device=cuda:1"], ["n=8.0"]):
        validate_job(composer(overrides))


def _cli(args, cwd, monkeypatch, capsys):
    """``inal-sweep <args>`` in this process: (exit code, stdout + stderr)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["inal-sweep", *args])
    backup = get_gh_backup()  # a compose fixture may hold Hydra's global state
    GlobalHydra.instance().clear()
    code = 0
    try:
        main()
    except SystemExit as stop:
        code = stop.code
    finally:
        restore_gh_from_backup(backup)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_single_run_refuses_before_writing_anything(tmp_path, monkeypatch, capsys):
    code, output = _cli(["n=0", f"results_dir={tmp_path / 'results'}"], tmp_path, monkeypatch, capsys)
    assert code not in (0, None)
    assert "invalid n=0 (allowed: an integer >= 1)" in output
    assert list(tmp_path.iterdir()) == []  # no results, no Hydra output directory


def test_cli_basic_multirun_refuses_before_any_result(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    code, output = _cli(["-m", "hydra/launcher=basic", "gamma=-1", "n=4,5", "width=8", "T=2",
                         f"results_dir={results}"], tmp_path, monkeypatch, capsys)
    assert code not in (0, None)
    assert "invalid gamma=-1.0 (allowed: a finite number > 0)" in output
    assert not results.exists() or not list(results.rglob("*.parquet"))
