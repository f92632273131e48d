"""docs/faults.md names, for each fault, the tests that show it: every one of them exists.

A reference is ``tests/<file>.py::<test>`` (a ``[parameter]`` suffix allowed), ``tests/<file>.py``
alone, or ``::<test>`` after a reference to a file in the same cell (that file's test). Each named
file must exist and each named test must be a test function defined at its module's top level,
so that renaming or deleting a test shows here instead of leaving the table pointing at nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+)(?:\[[^\]`]*\])?)?`")


def functions_of(path: Path) -> set:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def references() -> list:
    """``(row, file, test or None)`` of every test reference of the table's last column."""
    out = []
    for line in (ROOT / "docs" / "faults.md").read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| Fault") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        current = None
        for file, test in REF.findall(cells[-1]):
            if not file and not test:
                continue
            current = file or current
            assert current, f"{line[:80]}...: ::{test} with no file before it"
            out.append((cells[0][:60], current, test or None))
    return out


def test_every_test_docs_faults_names_exists():
    refs = references()
    assert len({row for row, _, _ in refs}) >= 40  # every row names at least one test
    missing = []
    for row, file, test in refs:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{row}: {file} (no such file)")
        elif test and test not in functions_of(path):
            missing.append(f"{row}: {file}::{test} (no such test)")
    assert not missing, "\n".join(missing)


def test_every_row_names_a_test():
    rows = [line for line in (ROOT / "docs" / "faults.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| Fault")]
    assert [line[:80] for line in rows if line.count("|") != 4] == []  # three cells each: no stray '|'
    named = {row for row, _, _ in references()}
    assert all(line.strip().strip("|").split(" | ")[0].strip()[:60] in named for line in rows), \
        [line[:80] for line in rows if line.strip().strip("|").split(" | ")[0].strip()[:60] not in named]
