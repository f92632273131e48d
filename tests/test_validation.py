"""Bad input is refused before any work, with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import OmegaConf

from sweeps.run import main
from sweeps.validation import ConfigError, validate_job

REPO = Path(__file__).resolve().parent.parent

# (overrides, key named, value shown, words of the allowed set)
BAD_INPUTS = [
    (["n=0"], "n", "0", "integer >= 1"),
    (["n=-3"], "n", "-3", "integer >= 1"),
    (["n=abc"], "n", "'abc'", "integer >= 1"),
    (["n=8.5"], "n", "8.5", "integer >= 1"),
    (["n=5000"], "n", "5000", "<= 4096"),
    (["n=1e12"], "n", "1000000000000", "<= 4096"),
    (["width=0"], "width", "0", "integer >= 1"),
    (["width=abc"], "width", "'abc'", "integer >= 1"),
    (["n=64", "width=100000"], "width", "100000", "at most 268435456 parameters"),
    (["depth=-1"], "depth", "-1", "integer >= 1"),
    (["T=-1"], "T", "-1", "integer >= 0"),
    (["T=1.5"], "T", "1.5", "integer >= 0"),
    (["gamma=0"], "gamma", "0", "> 0"),
    (["gamma=-0.1"], "gamma", "-0.1", "> 0"),
    (["gamma=fast"], "gamma", "'fast'", "> 0"),
    (["gamma=inf"], "gamma", "inf", "finite number > 0"),
    (["sigma=-1e-4"], "sigma", "-0.0001", ">= 0"),
    (["sigma=inf"], "sigma", "inf", "finite number >= 0"),
    (["sigma=nan"], "sigma", "nan", "finite number >= 0"),
    (["train.A=0"], "train.A", "0", "> 0"),
    (["train.A=inf"], "train.A", "inf", "finite number > 0"),
    (["target.name=parityy"], "target.name", "'parityy'", "majority, parity, planted"),
    (["init.name=xavier"], "init.name", "'xavier'", "normal, normal_bias1, rademacher"),
    (["init.name=null"], "init.name", "None", "normal, normal_bias1, rademacher"),
    (["train.loss=l1"], "train.loss", "'l1'", "squared, correlation, hinge"),
    (["train.precision=float"], "train.precision", "'float'", "clip, round"),
    (["train.gamma_schedule=fast"], "train.gamma_schedule", "'fast'", "constant"),
    (["inal.estimator=magic"], "inal.estimator", "'magic'", "auto, exact, mc, junta"),
    (["n=8", "train.N=4"], "train.N", "4", "integer >= n (n=8)"),
    (["train.N='n^3'"], "train.N", "'n^3'", '"n^2" (alias n2), "2n"'),
    (["train.N=1000000000000"], "train.N", "1000000000000", "N <= 4096"),
    (["n=100"], "train.N", "'n^2'", "N <= 4096 (n=100) when T > 0"),
    (["n=8", "c=9"], "c", "9", "k = c in 1..n (n=8)"),
    (["c=1.5"], "c", "1.5", "integer >= 1"),
    (["c=abc"], "c", "'abc'", "finite number"),
    (["c=inf"], "c", "inf", "finite number"),
    (["target=planted", "n=12", "c=0.5"], "c", "0.5", ">= 1"),
    (["target=planted", "n=8", "c=5"], "c", "5.0", "a c whose event fits"),
    (["target=planted", "n=2", "c=1"], "n", "2", "integer >= 3"),
    (["target=planted", "n=12", "c=1.5", "+target.resolution_bits=17"], "target.resolution_bits", "17",
     "integer in [0, 16]"),
    (["target=planted", "n=12", "c=1.5", "+target.parity_degree=0"], "target.parity_degree", "0",
     "integer in [1, 11]"),
    (["train.batch=-1"], "train.batch", "-1", "integer >= 0"),
    (["train.batch=1.5"], "train.batch", "1.5", "integer >= 0"),
    (["inal.n_inits=0"], "inal.n_inits", "0", "integer >= 1"),
    (["inal.n_inputs=1"], "inal.n_inputs", "1", "integer >= 2"),
    (["inal.n_inputs=abc"], "inal.n_inputs", "'abc'", "integer >= 2"),
    (["inal.memory_budget_gb=0"], "inal.memory_budget_gb", "0", "> 0"),
    (["inal.memory_budget_gb=-1"], "inal.memory_budget_gb", "-1", "> 0"),
    (["train.n_eval=1"], "train.n_eval", "1", "integer >= 2"),
    (["train.n_eval=abc"], "train.n_eval", "'abc'", "integer >= 2"),
    (["train.checkpoints=0"], "train.checkpoints", "0", "count >= 1"),
    (["train.checkpoints=[10,5]"], "train.checkpoints", "[10, 5]", "increasing list of steps in [0, T=200]"),
    (["train.checkpoints=[]"], "train.checkpoints", "[]", "increasing list of steps"),
    (["T=10", "train.checkpoints=[0,50]"], "train.checkpoints", "[0, 50]", "steps in [0, T=10]"),
    (["device=tpu"], "device", "'tpu'", "auto, cpu, cuda"),
    (["device=cuda:x"], "device", "'cuda:x'", "cuda:<index>"),
    (["train.seed=-1"], "train.seed", "-1", "integer >= 0"),
    (["train.seed=9223372036854775808"], "train.seed", "9223372036854775808", "<= 9223372036854775807"),
    (["network.bias=maybe"], "network.bias", "'maybe'", "true or false"),
    (["network.bias=1"], "network.bias", "1", "true or false"),
    (["target.subset=middle"], "target.subset", "'middle'", "first, random"),
    (["target.subset_seed=-1"], "target.subset_seed", "-1", "integer >= 0"),
    (["target.subset_seed=1.5"], "target.subset_seed", "1.5", "integer >= 0"),
    (["c=2", "+target.k=3"], "target.k", "3", "equal to c"),
    (["target=staircase", "n=4", "+target.k=7"], "target.k", "7", "integer in [1, 4]"),
    (["study=a/b"], "study", "'a/b'", "no slashes"),
    (["study=.hidden"], "study", "'.hidden'", "starting with a letter or digit"),
    (["study=''"], "study", "''", "letters, digits"),
    (["results_dir=''"], "results_dir", "''", "non-empty"),
    (["results_dir=foo://bucket/x"], "results_dir", "'foo://bucket/x'", "a scheme among file"),
    (["results_dir=file://relative/x"], "results_dir", "'file://relative/x'", "absolute path"),
    # keys the job spec does not know: added (+key) or misspelt, at the top level, in a group, in the target
    (["+widht=8"], "widht", "8", "one of the keys"),
    (["+train.momentum=0.9"], "train.momentum", "0.9", "one of the keys A, N, batch"),
    (["+inal.foo=1"], "inal.foo", "1", "estimator, memory_budget_gb, n_inits, n_inputs"),
    (["+network.dropout=0.1"], "network.dropout", "0.1", "one of the keys activation, bias"),
    (["+init.scale=2"], "init.scale", "2", "one of the keys name"),
    (["+target.kk=2"], "target.kk", "2", "k, subset, subset_seed"),
    (["target=majority", "+target.k=3"], "target.k", "3", "parameters: none"),
    (["target=staircase", "+target.subset=first"], "target.subset", "'first'", "parameters: k"),
]
# study names no shell spelling gets through Hydra's parser: set on the composed config
DICT_CASES = [
    ("study", "abc\n", "study", "'abc\\n'", "no slashes, spaces or newlines"),
    ("study", "a b", "study", "'a b'", "no slashes, spaces or newlines"),
    ("results_dir", "./x\n", "results_dir", "'./x\\n'", "non-empty local path"),
]


def test_there_are_at_least_fifty_kinds():
    assert len({key for _, key, _, _ in BAD_INPUTS}) >= 35
    kinds = {(key, allowed) for _, key, _, allowed in BAD_INPUTS} | {(key, allowed) for *_, key, _, allowed in DICT_CASES}
    assert len(kinds) >= 50


@pytest.mark.parametrize("overrides,key,value,allowed", BAD_INPUTS, ids=[" ".join(o) for o, *_ in BAD_INPUTS])
def test_bad_input_names_key_value_and_allowed(compose_config, overrides, key, value, allowed):
    cfg = compose_config(overrides)
    with pytest.raises(ConfigError) as info:
        validate_job(cfg)
    message = str(info.value)
    assert f"invalid {key}=" in message and info.value.key == key
    assert value in message
    assert "allowed:" in message and allowed in message


def test_exact_enumeration_beyond_what_fits(compose_config):
    with pytest.raises(ConfigError) as info:
        validate_job(compose_config(["inal=exact", "n=40"]))
    assert str(info.value).startswith("invalid inal.estimator='exact' (allowed: one of auto, exact, mc, junta that "
                                      "can serve n=40 (exact enumeration only while it fits inal.memory_budget_gb=2)")
    with pytest.raises(ConfigError) as info:
        validate_job(compose_config(["inal=exact", "n=20", "width=4096", "inal.memory_budget_gb=1e-4"]))
    assert str(info.value).startswith("invalid inal.memory_budget_gb=0.0001 (allowed: a budget the smallest INAL "
                                      "chunk fits in, or another inal.estimator)")
    validate_job(compose_config(["inal=exact", "n=6"]))  # small n fits


def test_good_configs_pass(compose_config):
    for overrides in ([], ["target=majority", "c=3"], ["target=full_parity"], ["target=planted", "n=12", "c=1.5"],
                      ["target=staircase"], ["init=rademacher", "network=no_bias"], ["T=0"], ["train.N=2n"], ["train.N=n2"], ["train.N='n^2'"],
                      ["train.N=100"], ["train.checkpoints=[0,100,200]"], ["device=cuda:1"], ["n=8.0"]):
        validate_job(compose_config(overrides))


def _cli(args, cwd, monkeypatch, capsys):
    """``inal-sweep <args>`` in this process: (exit code, stdout + stderr)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["inal-sweep", *args])
    backup = get_gh_backup()  # keep whatever Hydra global state the caller holds
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
    assert "invalid n=0 (allowed: an integer >= 1" in output
    assert list(tmp_path.iterdir()) == []  # no results, no Hydra output directory


def test_cli_single_run_dry_run_plans_the_cell_and_runs_nothing(tmp_path, monkeypatch, capsys):
    """Hydra's run mode calls the task without the launcher: ``hydra.launcher.dry_run=true`` on a
    single run must still plan (exit 0) and run nothing (it used to train the cell)."""
    from sweeps.validation import validate_job
    from hydra import compose, initialize_config_module

    args = ["n=6", "c=2", "width=8", "T=5", f"results_dir={tmp_path / 'results'}"]
    code, output = _cli([*args, "hydra.launcher.dry_run=true"], tmp_path, monkeypatch, capsys)
    assert code == 0, output
    GlobalHydra.instance().clear()
    with initialize_config_module("sweeps.conf", version_base="1.3"):
        run_id = validate_job(compose("config", overrides=args)).run_id
    assert f"a single run (no -m), run {run_id[:12]}" in output, output
    assert "dry run: nothing was started or written" in output
    assert list(tmp_path.iterdir()) == []  # no results, no Hydra output directory


def test_cli_basic_multirun_refuses_before_any_result(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    code, output = _cli(["-m", "hydra/launcher=basic", "gamma=-1", "n=4,5", "width=8", "T=2",
                         f"results_dir={results}"], tmp_path, monkeypatch, capsys)
    assert code not in (0, None)
    assert "invalid gamma=-1.0 (allowed: a finite number > 0)" in output
    assert not results.exists() or not list(results.rglob("*.parquet"))


@pytest.mark.parametrize("path,bad,key,value,allowed", DICT_CASES, ids=[c[0] + "=" + repr(c[1]) for c in DICT_CASES])
def test_bad_values_set_on_the_composed_config(compose_config, path, bad, key, value, allowed):
    cfg = OmegaConf.to_container(compose_config([]), resolve=True)
    cfg[path] = bad
    with pytest.raises(ConfigError) as info:
        validate_job(cfg)
    message = str(info.value)
    assert info.value.key == key and f"invalid {key}={value}" in message and allowed in message
    assert "\n" not in message  # one line


# ----------------------------------------------------------------------------- results_dir


def _refused_results_dir(compose_config, results_dir):
    with pytest.raises(ConfigError) as info:
        validate_job(compose_config([f"results_dir={results_dir}"]))
    assert info.value.key == "results_dir" and f"invalid results_dir={str(results_dir)!r}" in str(info.value)
    return str(info.value)


def test_results_dir_that_is_a_file_or_under_one(compose_config, tmp_path):
    afile = tmp_path / "a_file"
    afile.write_text("x")
    assert "it is an existing file" in _refused_results_dir(compose_config, afile)
    assert "a file" in _refused_results_dir(compose_config, afile / "sub" / "dir")
    assert "it is an existing file" in _refused_results_dir(compose_config, f"file://{afile}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing made


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory (run as a user to see it)")
def test_results_dir_not_writable(compose_config, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "its nearest existing parent" in _refused_results_dir(compose_config, ro / "results" / "x")
        assert "it is not writable" in _refused_results_dir(compose_config, ro)
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_results_dir_scheme_pyarrow_does_not_know(compose_config):
    assert "a scheme among file" in _refused_results_dir(compose_config, "s4://bucket/prefix")
    validate_job(compose_config(["results_dir=s3://bucket/prefix"]))  # known scheme: no network call at validation


def test_results_dir_checked_once_per_distinct_value(compose_config, tmp_path, monkeypatch):
    calls = []
    real = os.access
    monkeypatch.setattr(os, "access", lambda *a, **k: calls.append(a) or real(*a, **k))
    cfg = OmegaConf.to_container(compose_config([f"results_dir={tmp_path / 'r'}"]), resolve=True)
    for seed in range(50):
        cfg["train"]["seed"] = seed
        validate_job(cfg)
    assert len(calls) == 1


def test_remote_results_dir_skips_the_local_filesystem(compose_config, tmp_path):
    afile = tmp_path / "f"
    afile.write_text("x")
    validate_job(compose_config([f"results_dir={afile}"]), local=False)  # a path on the cluster, not here
    with pytest.raises(ConfigError):
        validate_job(compose_config(["results_dir=s4://x"]), local=False)


# ----------------------------------------------------------------------------- unknown keys


def test_unknown_key_names_a_close_match(compose_config):
    with pytest.raises(ConfigError) as info:
        validate_job(compose_config(["+widht=8"]))
    assert "did you mean width?" in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate_job(compose_config(["+train.sedd=3"]))
    assert "did you mean train.seed?" in str(info.value)


def test_hydra_node_is_not_a_task_key(compose_config):
    validate_job(compose_config([], hydra=True))


def test_every_family_parameter_in_the_target_group_is_accepted(compose_config):
    validate_job(compose_config(["c=2", "+target.k=2"]))
    validate_job(compose_config(["target=staircase", "+target.k=3"]))
    validate_job(compose_config(["target=planted", "n=12", "c=1.5", "+target.parity_degree=4", "+target.resolution_bits=3"]))


# ----------------------------------------------------------------------------- the real command line

CLI_CASES = [
    (["+widht=8"], "invalid widht=8 (allowed: one of the keys"),
    (["+train.momentum=0.9"], "invalid train.momentum=0.9 (allowed: one of the keys"),
    (["train.N=1000000000000"], "invalid train.N=1000000000000 (allowed:"),
    (["target.subset_seed=-1"], "invalid target.subset_seed=-1 (allowed: an integer >= 0)"),
    (["results_dir=s4://bucket/x"], "invalid results_dir='s4://bucket/x' (allowed: a local path or a pyarrow.fs URI"),
]


@pytest.mark.parametrize("args,line", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
@pytest.mark.parametrize("multirun", [False, True], ids=["single", "multirun"])
def test_cli_refuses_with_one_line_exit_2_nothing_written_no_ray(tmp_path, monkeypatch, capsys, args, line, multirun):
    """The real ``inal-sweep`` (default ``inal_ray`` launcher for -m): exit 2, the one line, no
    results, no Hydra output directory, no Ray."""
    ray = pytest.importorskip("ray")
    was_up = ray.is_initialized()
    results = tmp_path / "results"
    argv = (["-m", "n=4,5"] if multirun else []) + [*args, "width=8", "T=2"]
    if "results_dir=" not in " ".join(args):
        argv.append(f"results_dir={results}")
    code, output = _cli(argv, tmp_path, monkeypatch, capsys)
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert any(line in ln for ln in lines), output
    assert "Traceback" not in output and len(lines) <= 2, output  # the message (and Hydra's hint line at most)
    # single runs exit 2 (sweeps.run.precheck_single_run); a multirun's error goes through Hydra's
    # error path (exit 1 on this branch: the exit-code work of issue 9 makes it 2)
    assert code == 2 if not multirun else code not in (0, None), (code, output)
    assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))  # no results, no outputs/ or multirun/
    assert ray.is_initialized() == was_up  # no Ray started


# ----------------------------------------------------------------------------- throughput (printed, not asserted)


def test_validation_throughput_is_printed(compose_config, tmp_path, capsys):
    """How long validating 10^5 composed cells takes (a grid over width, gamma and seed, as plain
    dicts: what a streaming planner hands over), and a few thousand DictConfigs. Printed only."""
    import time

    base = OmegaConf.to_container(compose_config(["n=6", "T=50", f"results_dir={tmp_path}"]), resolve=True)
    cells = 100_000
    t0 = time.perf_counter()
    for i in range(cells):
        cfg = dict(base)
        cfg["width"], cfg["gamma"] = 1 + i % 100, 0.01 * (1 + i // 100 % 10)
        cfg["train"] = {**base["train"], "seed": i // 1000}
        validate_job(cfg)
    plain_us = (time.perf_counter() - t0) / cells * 1e6
    dict_configs = [compose_config([f"width={w}", f"results_dir={tmp_path}"]) for w in range(1, 6)]
    t0 = time.perf_counter()
    for i in range(2000):
        validate_job(dict_configs[i % 5])
    omega_us = (time.perf_counter() - t0) / 2000 * 1e6
    t0 = time.perf_counter()
    for _ in range(200_000):
        sum(range(100))
    calibration_us = (time.perf_counter() - t0) / 200_000 * 1e6
    with capsys.disabled():
        print(f"\n[validate_job] 1e5 plain-dict cells: {plain_us:.1f} us/cell ({plain_us * 1e6 / 1e6:.0f} s per 1e6); "
              f"DictConfig: {omega_us:.0f} us/cell; machine calibration sum(range(100)): {calibration_us:.2f} us")


def test_cached_checks_tell_true_from_one(compose_config):
    """Validation results are cached per distinct value; ``True == 1`` in Python, not here."""
    validate_job(compose_config(["target.subset_seed=1"]))
    with pytest.raises(ConfigError) as info:
        validate_job(compose_config(["target.subset_seed=true"]))
    assert info.value.key == "target.subset_seed"
