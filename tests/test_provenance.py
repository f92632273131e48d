"""``git_commit`` provenance: this package's own commit, never another repository's.

References: ``git rev-parse HEAD`` of this checkout run here, and real throwaway git repositories in
``tmp_path`` holding a copy of the module where a virtualenv would put it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import sweeps.provenance as provenance
from sweeps.jobs import git_commit as reexported

ROOT = Path(__file__).resolve().parent.parent
git = shutil.which("git")
pytestmark = pytest.mark.skipif(git is None, reason="git is not installed")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _repo(path: Path, pyproject: str) -> Path:
    path.mkdir(parents=True)
    (path / "pyproject.toml").write_text(pyproject)
    _git(path, "init", "-q")
    _git(path, "-c", "user.email=t@t", "-c", "user.name=t", "add", "pyproject.toml")
    _git(path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "other project")
    return path


def _commit_seen_by_copy(package_dir: Path) -> str:
    """``git_commit()`` of a copy of the module placed at ``package_dir/provenance.py``."""
    package_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(provenance.__file__, package_dir / "provenance.py")
    code = (f"import importlib.util as u; s = u.spec_from_file_location('p', {str(package_dir / 'provenance.py')!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print(m.git_commit())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_own_checkout_records_its_head() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not running from a git checkout")
    head = _git(ROOT, "rev-parse", "HEAD")
    assert provenance.git_commit().split("+")[0] == head
    assert reexported is provenance.git_commit  # sweeps.jobs keeps the name


def test_installed_inside_an_unrelated_work_tree_records_version_not_that_commit(tmp_path: Path) -> None:
    other = _repo(tmp_path / "other", '[project]\nname = "someone-else"\nversion = "9.9"\n')
    seen = _commit_seen_by_copy(other / ".venv" / "lib" / "site-packages" / "sweeps")
    assert _git(other, "rev-parse", "HEAD") not in seen
    assert seen == f"unknown (inal-sweeps {metadata.version('inal-sweeps')})"


def test_copy_inside_a_checkout_of_this_project_but_not_its_package_is_not_its_commit(tmp_path: Path) -> None:
    clone = _repo(tmp_path / "clone", '[project]\nname = "inal-sweeps"\nversion = "0.0"\n')
    # a virtualenv inside a checkout of this project: the copy there is not the checkout's code
    assert _commit_seen_by_copy(clone / ".venv" / "lib" / "site-packages" / "sweeps").startswith("unknown (")
    # the checkout's own package: its commit
    assert _commit_seen_by_copy(clone / "sweeps").split("+")[0] == _git(clone, "rev-parse", "HEAD")
