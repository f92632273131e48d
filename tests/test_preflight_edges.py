"""Edges of the preflight: what is refused before Ray starts, with one line and exit status 2.

- a results_dir where no file can be created although permissions say yes (``/proc/...``): the
  preflight creates and removes a probe file;
- a results_dir that is, or passes through, a symbolic link leading out of its directory (a link
  to ``/``), and a study directory linked out of the results dir; a link within its own
  directory is followed;
- Hydra's own errors (an override it cannot parse, such as an unquoted non-ASCII study name; an
  unknown key or group) and a study of the previous store layout: exit 2, one line, no traceback;
- the study-name rule says what it accepts (ASCII).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.validation import ConfigError, check_results_dir, check_results_tree, read_study

BIN = Path(sys.executable).parent
INAL_SWEEP = str(BIN / "inal-sweep")
CELL = ["n=4", "T=1", "width=4", "inal.n_inits=2", "hydra.launcher.report=false", "hydra.launcher.progress=false"]


def _sweep(args, cwd):
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([INAL_SWEEP, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def _one_line(proc, *needles):
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert "Started a local Ray" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc on this system")
def test_proc_results_dir_is_refused_before_ray(tmp_path):
    line = _one_line(_sweep(["-m", *CELL, "results_dir=/proc/inal-results"], tmp_path),
                     "results_dir='/proc/inal-results'", "creating a file")
    assert "'/proc'" in line


def test_probe_leaves_nothing_behind(tmp_path):
    target = tmp_path / "results"
    check_results_dir(str(target))
    assert list(tmp_path.iterdir()) == []  # the probe went into the nearest parent and was removed
    target.mkdir()
    check_results_dir(str(target) + "/")  # a new value: checked again, in the directory itself
    assert list(target.iterdir()) == []


def test_symlinks_out_of_their_directory_are_refused(tmp_path):
    (tmp_path / "to_root").symlink_to("/")
    (tmp_path / "real").mkdir()
    (tmp_path / "inside").symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError, match="a link to '/'"):
        check_results_dir(str(tmp_path / "to_root"))
    with pytest.raises(ConfigError, match="passes through"):
        check_results_dir(str(tmp_path / "to_root" / "tmp" / "x"))
    assert check_results_dir(str(tmp_path / "inside")) == str(tmp_path / "inside")  # stays in its directory
    results = tmp_path / "results"
    results.mkdir()
    (results / "s").symlink_to("/")
    with pytest.raises(ConfigError, match="invalid study='s'"):
        check_results_tree(str(results), "s")
    check_results_tree(str(results), "other")  # not there yet: fine


def test_symlink_to_root_is_refused_by_inal_sweep(tmp_path):
    (tmp_path / "to_root").symlink_to("/")
    _one_line(_sweep(["-m", *CELL, f"results_dir={tmp_path}/to_root"], tmp_path), "a link to '/'")


@pytest.mark.parametrize("override, needle", [
    ("study=é", "invalid override"),            # Hydra's lexer: not a character of its grammar unquoted
    ("n=4,,", "invalid override"),
    ("nosuchkey=3", "Could not override 'nosuchkey'"),
    ("hydra/launcher=nosuch", "hydra/launcher/nosuch"),
])
def test_hydra_errors_exit_2_in_one_line(tmp_path, override, needle):
    _one_line(_sweep(["-m", *CELL, override, f"results_dir={tmp_path}/r"], tmp_path), needle)
    assert not (tmp_path / "r").exists()


def test_hydra_error_of_a_single_run_exits_2(tmp_path):
    _one_line(_sweep([*CELL[:4], "nosuchkey=3", f"results_dir={tmp_path}/r"], tmp_path), "nosuchkey")


def test_legacy_layout_exits_2(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "r" / "default" / "runs" / "target=parity"
    d.mkdir(parents=True)
    table = pa.table({"run_id": ["x"]}).replace_schema_metadata({"inal.schema_version": "1"})
    pq.write_table(table, d / "x.parquet")
    _one_line(_sweep(["-m", *CELL, f"results_dir={tmp_path}/r"], tmp_path), "python -m sweeps.store migrate")


def test_study_name_rule_says_ascii():
    with pytest.raises(ConfigError, match="ASCII letters"):
        read_study("study", "é")
    assert read_study("study", "a.b=c-d_1") == "a.b=c-d_1"


def test_a_uri_hydra_cannot_parse_is_named_with_the_form_that_parses(tmp_path):
    """``results_dir=s3://b/p?region=x`` unquoted: Hydra's grammar refuses the query's ``=``; the
    one line names the override and the doubly quoted form, which parses."""
    line = _one_line(_sweep(["-m", *CELL, "results_dir=s3://b/p?region=eu-west-1"], tmp_path),
                     "invalid override 'results_dir=s3://b/p?region=eu-west-1'")
    assert "\"results_dir='s3://b/p?region=eu-west-1'\"" in line


def test_documented_object_store_forms_parse_as_one_value():
    """Every ``results_dir=`` form the READMEs show, split as a shell splits it, is one override
    whose value is the whole URI (query included) for Hydra's parser."""
    import re
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    root = Path(__file__).resolve().parent.parent
    forms = []
    for doc in (root / "README.md", root / "cluster" / "README.md"):
        for text in doc.read_text().splitlines():
            if text.strip().startswith(("results_dir=", "\"results_dir=", "'results_dir=")):
                first = re.match(r"\"[^\"]*\"|'[^']*'|\S+", text.strip()).group(0)  # the first shell word
                forms.append(shlex.split(first)[0])
    assert len(forms) >= 8 and any("&" in f for f in forms)
    parser = OverridesParser.create()
    for word in forms:
        (override,) = parser.parse_overrides([word])
        value = override.value()
        assert "://" in value and word.rstrip("'").endswith(value), (word, value)  # the query kept


@pytest.mark.parametrize("override, needle", [
    ("train.seed=range(0,3,0)", "range() arg 3 must not be zero"),  # before: Python's traceback, exit 1
    ("n=interval(4,8)", "interval() needs an optimizing sweeper"),  # before: Hydra's traceback, exit 1
    ("n=range(8,4)", "it sweeps no value"),                          # before: a study of no cell, exit 0
    ("n=glob(*)", "the grid has no cell"),                           # before: the same, exit 0
])
def test_sweeps_that_cannot_be_enumerated_or_yield_nothing_exit_2(tmp_path, override, needle):
    _one_line(_sweep(["-m", *CELL[1:], override, f"results_dir={tmp_path}/r"], tmp_path), needle)
    assert not (tmp_path / "r").exists()
