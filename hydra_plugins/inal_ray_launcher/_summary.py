"""The end-of-study summary the fast path prints, and the optional report subprocess.

Example::

    [inal-sweep] 24 configs -> 18 distinct cells (6 duplicates); 0 already complete, 18 run:
                 17 ok, 1 diverged, 0 failed
    [inal-sweep] tasks: 9 INAL settings computed (0 failed), 18 training runs in 9 packs
    [inal-sweep] wall 41.2 s (1.8 s composing 24 configs with 2 full Hydra compositions)
    [inal-sweep] results: /home/me/results/default/{runs,curves,inal}
    [inal-sweep] analyse: inal-report /home/me/results/default
"""

from __future__ import annotations

import importlib.util
import logging
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List

from sweeps.location import is_uri

PREFIX = "[inal-sweep]"

log = logging.getLogger("inal_sweep")


def show_summary(text: str) -> None:
    """The summary through ``logging`` (Hydra's console handler shows it on the terminal, the
    sweep directory's ``run.log`` keeps it); printed when no handler would show it."""
    if logging.getLogger().handlers and log.isEnabledFor(logging.INFO):
        for line in text.splitlines():
            log.info("%s", line)
    else:
        print(text, flush=True)


@dataclass
class StudySummary:
    """Counts of one launched batch. ``cell_status`` counts the cells that ran this time."""

    n_configs: int
    n_cells: int
    n_complete: int
    cell_status: Dict[str, int]
    inal_computed: int
    inal_failed: int
    n_train_runs: int
    n_packs: int
    packs_lost: int
    compositions: int
    wall_s: float
    study_roots: List[str] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)
    runs_by_others: int = 0  # cells another driver of the same study stored meanwhile (sweeps.claims)
    inal_by_others: int = 0  # INAL settings another driver of the same study stored meanwhile

    def text(self, report_follows: bool = False) -> str:
        """The summary lines; the hint to run the report is left out when the report runs next."""
        ran = self.n_cells - self.n_complete
        dup = self.n_configs - self.n_cells
        s = self.cell_status
        lines = [
            f"{PREFIX} {self.n_configs} configs -> {self.n_cells} distinct cells"
            + (f" ({dup} duplicates)" if dup else "")
            + f"; {self.n_complete} already complete (skipped), {ran} run: "
            f"{s['ok']} ok, {s['diverged']} diverged, {s['failed']} failed",
            f"{PREFIX} tasks: {self.inal_computed} INAL settings computed ({self.inal_failed} failed), "
            f"{self.n_train_runs} training runs in {self.n_packs} packs"
            + (f" ({self.packs_lost} lost past their retries)" if self.packs_lost else "")
            + (f"; {self.runs_by_others} runs stored by another driver of the study" if self.runs_by_others else "")
            + (f"; {self.inal_by_others} INAL settings stored by another driver" if self.inal_by_others else ""),
            f"{PREFIX} wall {self.wall_s:.1f} s ({self.compositions} full Hydra compositions for "
            f"{self.n_configs} configs)",
        ]
        lines += [f"{PREFIX} failed {f}" for f in self.failures[:10]]
        if len(self.failures) > 10:
            lines.append(f"{PREFIX} ... and {len(self.failures) - 10} more failures (see the error column of runs)")
        for root in self.study_roots:
            where = f"{root}/{{runs,curves,inal}}" if not is_uri(root) else f"{root} (runs/, curves/, inal/)"
            lines.append(f"{PREFIX} results: {where}")
        if self.study_roots and not report_follows:
            lines.append(f"{PREFIX} analyse: inal-report {shlex.quote(self.study_roots[0])}")
        return "\n".join(lines)


def run_report(study_root: str) -> int:
    """Run ``python -m analysis.report <study_root>`` in a subprocess; return its exit code.
    ``study_root`` is the study's location as one value (a path, or a URI with its query).

    A missing ``analysis.report`` module is reported clearly (exit code 127), never raised:
    the study's results are on disk whatever happens here.
    """
    if importlib.util.find_spec("analysis") is None or importlib.util.find_spec("analysis.report") is None:
        print(f"{PREFIX} report skipped: the module analysis.report is not installed "
              f"(install the project with `pip install -e .`); results are in {study_root}", flush=True)
        return 127
    print(f"{PREFIX} report: inal-report {shlex.quote(study_root)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "analysis.report", study_root])
    if proc.returncode != 0:
        print(f"{PREFIX} report failed (exit code {proc.returncode}); results are in {study_root}", flush=True)
    return proc.returncode
