"""Every code block of README.md and docs/*.md runs, against a real small study.

A fenced block's language says how it is checked (a block in any other language fails the test,
so a new kind of block needs a policy here):

- ``python``: executed, the blocks of one file in order and in one namespace, in a working
  directory that holds a real small study at ``results/default`` (made by the real ``inal-sweep``
  on a local Ray, shrunk: two n, 10 steps);
- ``bash``: every command (continuation lines joined, comments dropped) is run as follows:
  ``inal-sweep ...`` with ``hydra.launcher.dry_run=true`` appended (the whole grid composed, validated
  and planned, no Ray, nothing written), or for real into another ``results_dir`` when it runs one
  job in-process (``hydra/launcher=basic``); ``inal-report <path>`` for real on the small study;
  ``make <target>`` as ``make -n <target>`` (the Makefile parses and would run its recipe:
  running the test suite from inside itself would recurse); anything else needs a cluster
  (``ray up``, ``sbatch``, ``kubectl``, ``inal-submit --address``): ``bash -n`` and every
  repository file it names exists;
- ``text``: layouts, diagrams and output, not code.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
LANGUAGES = ("python", "bash", "text")


def code_blocks(path: Path) -> list[tuple[str, str, int]]:
    """``(language, code, line)`` of every fenced block of ``path``."""
    text = path.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[-1] == "&":  # started in the background
            words = words[:-1]
        if words:
            out.append(shlex.join(words))
    return out


ALL_BLOCKS = [(p, *b) for p in DOCS for b in code_blocks(p)]


def _id(block) -> str:
    path, lang, _, line = block
    return f"{path.relative_to(ROOT)}:{line}:{lang}"


def test_every_block_has_a_known_language():
    unknown = [_id(b) for b in ALL_BLOCKS if b[1] not in LANGUAGES]
    assert not unknown, f"fenced blocks without a policy (use one of {LANGUAGES}): {unknown}"
    assert any(b[1] == "python" for b in ALL_BLOCKS) and any(b[1] == "bash" for b in ALL_BLOCKS)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory) -> Path:
    """A working directory with a real small default study at ``results/default``."""
    work = tmp_path_factory.mktemp("docs")
    cmd = [str(BIN / "inal-sweep"), "-m", "+experiment=default", "n=6,8", "T=10", "inal.n_inits=8",
           "train.n_eval=256", "hydra.launcher.report=false", "hydra.launcher.local_cpus=1",
           "hydra.launcher.progress=false"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (work / "results" / "default" / "runs").is_dir()
    return work


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.ray
@pytest.mark.parametrize("path", [p for p in DOCS if any(b[0] == "python" for b in code_blocks(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path, small_study, monkeypatch):
    monkeypatch.chdir(small_study)
    namespace: dict = {"__name__": "__docs__"}
    for lang, code, line in code_blocks(path):
        if lang == "python":
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as err:  # pragma: no cover - the message is the point
                pytest.fail(f"{path.relative_to(ROOT)}:{line}: {type(err).__name__}: {err}")


BASH = [(p, code, line) for p, lang, code, line in ALL_BLOCKS if lang == "bash"]


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env())


# Slow (8 tests, 141 s under load from other work): every bash block of the docs runs for real,
# each inal-sweep / inal-report a subprocess that imports torch, most of them starting a local Ray.
@pytest.mark.ray
@pytest.mark.parametrize("path,code,line", BASH, ids=[f"{p.relative_to(ROOT)}:{n}" for p, _, n in BASH])
def test_bash_blocks_run(path, code, line, small_study):
    where = f"{path.relative_to(ROOT)}:{line}"
    for command in shell_commands(code):
        words = shlex.split(command)
        if words[0] == "inal-sweep" and "hydra/launcher=basic" in words:  # one job in-process: run it
            proc = _run(words + [f"results_dir={small_study / 'elsewhere'}"], small_study)
            assert proc.returncode == 0, f"{where}: {command}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        elif words[0] == "inal-sweep":
            proc = _run(words + ["hydra.launcher.dry_run=true"], small_study)
            assert proc.returncode == 0, f"{where}: {command}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        elif words[0] == "inal-report":
            proc = _run(words, small_study)
            assert proc.returncode == 0, f"{where}: {command}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        elif words[0] == "make":
            proc = _run(["make", "-n", "-f", str(ROOT / "Makefile"), *words[1:]], ROOT, timeout=60)
            assert proc.returncode == 0, f"{where}: {command}\n{proc.stderr}"
        else:  # needs a cluster or a cloud account: syntax, and the repository files it names
            if shutil.which("bash"):
                proc = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
                assert proc.returncode == 0, f"{where}: {command}\n{proc.stderr}"
            for word in words:
                if word.startswith(("cluster/", "sweeps/", "analysis/", "docs/")):
                    assert (ROOT / word).exists(), f"{where}: {command} names {word}, which does not exist"
