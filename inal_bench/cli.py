"""``inal-bench``: run a benchmark suite and print one JSON line per measurement.

    inal-bench core     # inal_core engines: exact/junta INAL, noisy-GD throughput, GPU stacking
    inal-bench sweep    # end-to-end cost per cell of the Ray launcher
    inal-bench scale    # 10^5-10^6 cells: plan, run, resume, load, report (--cells, --plan-cells)
    inal-bench stats    # calibration of the analysis: power, size, coverage by simulation
    inal-bench plan     # the cost model: dry-run ETA vs measured wall time, makespan vs its lower bound
    inal-bench all      # core, sweep and plan (scale and stats are long: run them on their own)
    inal-bench <suite> --smoke   # every line of a suite at the smallest size (what CI runs)

Each suite module exposes ``run(args) -> Iterable[Measurement]``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import emit

SUITES: dict[str, list[str]] = {
    "core": ["inal_bench.core_inal", "inal_bench.core_ngd"],
    "sweep": ["inal_bench.sweep"],
    "scale": ["inal_bench.scale"],
    "stats": ["inal_bench.stats"],
    "plan": ["inal_bench.plan"],
}
IN_ALL = ("core", "sweep", "plan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inal-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=sorted(SUITES) + ["all"], help="which measurements to take")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest sizes (stats: a small replicate count): every line of the suite, with "
                             "its baseline, in seconds (CI runs each suite so; the numbers mean little)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU measurements skip without CUDA)")
    parser.add_argument("--only", default=None, help="run only measurements whose name contains this string")
    from . import scale

    scale.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.quick = True  # suites without a smoke size of their own use their quick size
    modules = [m for s in (IN_ALL if args.suite == "all" else [args.suite]) for m in SUITES[s]]
    for name in modules:
        module = importlib.import_module(name)
        for measurement in module.run(args):
            emit(measurement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
