"""``sweeps.location``: a results location is one value, the URI's query kept through every join."""

from __future__ import annotations

import subprocess

import pytest

from sweeps.location import Location

Q = "endpoint_override=127.0.0.1:5055&scheme=http"


def shell_words(command: str) -> list:
    """The words bash makes of ``command`` (``?`` and ``&`` are special there, not to ``shlex``)."""
    proc = subprocess.run(["bash", "-c", f"set -- {command}; printf '%s\\n' \"$@\""], capture_output=True, text=True,
                          check=True)
    return proc.stdout.splitlines()


def test_children_and_parents_keep_the_query():
    root = Location(f"s3://bkt/studies?{Q}")
    study = root.child("s3s")
    assert study.text == f"s3://bkt/studies/s3s?{Q}" and study.path == "bkt/studies/s3s" and study.name == "s3s"
    assert study.child("runs").text == f"s3://bkt/studies/s3s/runs?{Q}"
    assert study.split() == (root, "s3s")
    assert study.fs.type_name == "s3" and not study.is_local
    assert Location("s3://bkt?region=eu-west-1").child("a", "b").text == "s3://bkt/a/b?region=eu-west-1"


def test_local_paths_and_file_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Location("results").child("s").text == str(tmp_path / "results" / "s")
    loc = Location(f"file://{tmp_path}/r").child("s")
    assert loc.is_local and loc.path == str(tmp_path / "r" / "s") and loc.text == f"file://{tmp_path}/r/s"
    assert Location(str(tmp_path / "r" / "s")).split() == (Location(str(tmp_path / "r")), "s")


def test_the_store_hint_and_report_folder_name_the_study_whole(tmp_path, monkeypatch):
    from analysis.report import _default_out
    from hydra_plugins.inal_ray_launcher._summary import StudySummary
    from sweeps.store import ResultsStore

    store = ResultsStore(f"s3://bkt/studies?{Q}", "s3s")
    assert str(store.location) == f"s3://bkt/studies/s3s?{Q}" and store.root == "bkt/studies/s3s"
    assert store.dataset_uri("runs") == f"s3://bkt/studies/s3s/runs?{Q}"
    summary = StudySummary(n_configs=1, n_cells=1, n_complete=1, cell_status={"ok": 0, "diverged": 0, "failed": 0},
                           inal_computed=0, inal_failed=0, n_train_runs=0, n_packs=0, packs_lost=0, compositions=1,
                           wall_s=0.0, study_roots=[str(store.location)])
    hint = summary.text().splitlines()[-1].split("analyse: ", 1)[1]
    assert shell_words(hint) == ["inal-report", f"s3://bkt/studies/s3s?{Q}"]
    monkeypatch.chdir(tmp_path)
    assert _default_out(str(store.location)) == str(tmp_path / "report-s3s")
    assert _default_out(str(tmp_path / "r" / "s")) == str(tmp_path / "r" / "s" / "report")


def test_an_empty_location_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        Location(" ")
