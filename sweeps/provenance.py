"""Provenance of the code that computed a row: the package's version and, where known, its commit.

``git_commit()`` is what the ``git_commit`` column of ``runs`` and ``inal`` holds:

- ``<sha>[+dirty]`` when the package runs from its own git checkout: the git top level above this
  file is the project's source root, i.e. it holds a ``pyproject.toml`` whose project name is
  ``inal-sweeps`` and this package lies inside it (``+dirty``: tracked files modified);
- ``unknown (inal-sweeps <version>)`` otherwise: an installed wheel, or a package installed inside
  an unrelated git work tree (a venv in another repository), whose commit is not this code's.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

__all__ = ["PROJECT", "package_version", "source_root", "git_commit"]

PROJECT = "inal-sweeps"
_PACKAGE_DIR = Path(__file__).resolve().parent


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``pyproject.toml``'s."""
    from importlib import metadata

    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        pyproject = _PACKAGE_DIR.parent / "pyproject.toml"
        match = re.search(r'^version\s*=\s*"([^"]+)"', _read(pyproject), re.M)
        return match.group(1) if match else "0+unknown"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _project_name(pyproject: Path) -> str | None:
    """``[project] name`` of a pyproject.toml (tomllib where available, else a plain match)."""
    text = _read(pyproject)
    if not text:
        return None
    try:
        import tomllib  # Python >= 3.11

        return tomllib.loads(text).get("project", {}).get("name")
    except ImportError:
        match = re.search(r'^\[project\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
        return match.group(1) if match else None
    except ValueError:
        return None


def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()


def source_root(start: Path = _PACKAGE_DIR) -> Path | None:
    """The git top level of ``start`` if it is this project's source root, else ``None``."""
    try:
        top = _git(["rev-parse", "--show-toplevel"], start)
    except (OSError, subprocess.SubprocessError):
        return None
    if not top:
        return None
    root = Path(top).resolve()
    if _project_name(root / "pyproject.toml") != PROJECT:
        return None
    # this package must be a package of that checkout, not a venv's copy lying inside it
    if start.resolve().parent != root:
        return None
    return root


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """``<sha>[+dirty]`` of the project's own checkout, else ``unknown (inal-sweeps <version>)``."""
    fallback = f"unknown ({PROJECT} {package_version()})"
    root = source_root()
    if root is None:
        return fallback
    try:
        sha = _git(["rev-parse", "HEAD"], root)
        if not sha:
            return fallback
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], root)
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback
