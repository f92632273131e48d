"""Tables generated into a README between two marker comments, and the ``--write`` command line
that refreshes them (``python -m sweeps.settings --write sweeps/README.md``, the same with
``sweeps.columns``). Plain Python: the generators are ``sweeps.settings`` and ``sweeps.columns``.
"""

from __future__ import annotations

import re
from typing import Callable

__all__ = ["marked_block", "replace_marked_block", "write_command"]


def marked_block(text: str, start: str, end: str) -> str | None:
    """The lines between the ``start`` and ``end`` markers in ``text`` (None: no markers)."""
    m = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    return m.group(1) if m else None


def replace_marked_block(text: str, start: str, end: str, body: str, what: str) -> str:
    """``text`` with the block between its one pair of markers replaced by ``body``; ``what`` names
    the table in the error raised when the markers are missing or repeated."""
    pattern = re.escape(start) + r"\n(?:.*?\n)?" + re.escape(end)
    text, count = re.subn(pattern, lambda _m: f"{start}\n{body}\n{end}", text, flags=re.S)
    if count != 1:
        raise ValueError(f"README has {count} {what} (want one: {start} ... {end})")
    return text


def write_command(argv: list[str], write: Callable[[str], str], show: Callable[[], str]) -> int:
    """``--write PATH``: rewrite PATH's generated tables with ``write`` (only when they changed);
    no arguments: print ``show()``."""
    if len(argv) == 2 and argv[0] == "--write":
        with open(argv[1], encoding="utf-8") as fh:
            text = fh.read()
        new = write(text)
        if new != text:
            with open(argv[1], "w", encoding="utf-8") as fh:
                fh.write(new)
        return 0
    print(show())
    return 0
