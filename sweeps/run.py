"""Entry point of a study: ``inal-sweep`` (console script) and ``python -m sweeps.run``.

One Hydra job = one cell of a grid: validate the composed config, compute its INAL (once per
``inal_id``, skipped if stored) and, when ``T > 0``, train it, writing Parquet rows under
``<results_dir>/<study>/``. Jobs already complete in the store are skipped.

    inal-sweep                                    # the default study (-m +experiment=default), local Ray
    inal-sweep -m n=8,12,16 c=1,2,3 width=64,256 depth=1,2 T=2000 gamma=0.05 sigma=1e-4
    inal-sweep -m +experiment=inal_scaling hydra/launcher=basic   # in-process, one job at a time

The ``inal_ray`` launcher (``hydra_plugins/inal_ray_launcher``) recognizes ``task`` by its
``__inal_sweep__`` attribute and runs whole grids through ``sweeps.execute`` on Ray, with
packing, resume and a study summary; Hydra's basic launcher calls ``task`` once per job.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from . import outcome
from .validation import ConfigError, validate_job
from .store import ResultsStore

log = logging.getLogger(__name__)

__all__ = ["task", "main"]

DEFAULT_STUDY_ARGS = ["-m", "+experiment=default"]


def _task(cfg: DictConfig) -> dict[str, Any]:
    """Validate, compute (unless already stored) and summarize one job; returns a small dict."""
    job = validate_job(cfg)  # ConfigError before any work
    store = ResultsStore(job.results_dir, job.study)
    done = store.has_inal(job.inal_id, job.target) and (not job.train or store.has_run(job.run_id, job.target))
    if done:
        status, error = "skipped", ""
    else:
        from .execute import run_training_pack  # torch's engine, imported when a job runs

        (done,) = run_training_pack([job])
        status, error = done.status, done.error
    outcome.TALLY.add_cell(status)
    v = job.values
    what = f"target={v['target']} c={v['c']:g} n={v['n']} width={v['width']} depth={v['depth']} T={v['T']}"
    log.info("[inal-sweep] %-8s run %s (%s) -> %s", status, job.run_id[:12], what, store.root)
    if error:
        log.error("%s", error.rstrip().splitlines()[-1])
    return {"run_id": job.run_id, "inal_id": job.inal_id, "status": status, "error": error,
            "results": str(store.location)}


_task.__inal_sweep__ = True  # type: ignore[attr-defined]  # the inal_ray launcher's fast path
task = hydra.main(version_base="1.3", config_path="conf", config_name="config")(_task)


def precheck_single_run(overrides: list[str]) -> None:
    """Validate a single run (no ``-m``) before Hydra creates its output directory; exit 2 on bad input.

    Hydra writes ``outputs/<date>/.hydra/`` before calling the task, and its callbacks cannot stop
    a run, so the config is composed here first (about 50 ms). The run is refused, as a multirun's
    cell is, when its memory exceeds this machine's (or ``hydra.launcher.worker_memory_gb``) or its
    estimated time ``hydra.launcher.max_cell_hours`` (``sweeps.plan.check_single_cell``; the cost
    model's cached calibration, measured first on a new host). Multiruns are validated job by job
    by the ``inal_ray`` launcher before any task starts.
    """
    if any(a.startswith("-") for a in overrides):  # --multirun, --cfg, --help, ...: Hydra's business
        return
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException

    try:
        with initialize_config_module("sweeps.conf", version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
    except HydraException as err:  # unknown key or group: a bad setting, one line
        print(f"inal-sweep: invalid setting: {_hydra_error_line(err)}", file=sys.stderr)
        sys.exit(2)
    single = "MULTIRUN" not in str(cfg.hydra.mode)  # a preset is a multirun: the launcher checks its cells
    try:
        job = validate_job(cfg)
        if single:
            from .plan import check_single_cell  # memory and time, as a multirun's cells (CellLimits)

            inal_s, run_s = check_single_cell(job, cfg.hydra.launcher)
    except ConfigError as err:
        print(f"inal-sweep: {err}", file=sys.stderr)
        sys.exit(2)
    if single and cfg.hydra.launcher.get("dry_run", False):
        # Hydra's run mode calls the task without the launcher, whose dry run would be skipped and
        # the run made: the plan of this one cell (the estimate just checked), and nothing run
        print(f"[inal-sweep] plan: a single run (no -m), run {job.run_id[:12]}, INAL setting {job.inal_id[:12]}: "
              f"estimated {inal_s:.3g} s of INAL and {run_s:.3g} s of training on this machine")
        print(f"[inal-sweep] plan: results {job.results_dir}")
        print("[inal-sweep] plan: dry run: nothing was started or written")
        sys.exit(0)


def _hydra_error_line(err: BaseException) -> str:
    """Hydra's message in one line (its first line; the grammar link and traceback hint dropped)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    text = " ".join(line for line in lines[:2] if not line.startswith("See https://hydra.cc"))
    return text or type(err).__name__


def _bad_override(parser: Any, overrides: list[str]) -> tuple[str, str]:
    """``(" '<the first override Hydra cannot parse>'", hint)``: for a URI the hint is the form
    that parses (its query's ``=`` and ``&`` need Hydra's quotes too); ``("", "")`` when none
    fails alone."""
    from hydra.errors import OverrideParseException

    for text in overrides:
        try:
            parser.parse_overrides([text])
        except OverrideParseException:
            key, _, value = text.partition("=")
            hint = ""
            if "://" in value and value[:1] not in "'\"":
                hint = f"; a URI is written {key}='{value}' (in a shell: \"{key}='{value}'\")"
            return f" {text!r}", hint
    return "", ""


def _refuse_override(text: str, why: str) -> None:
    print(f"inal-sweep: invalid override {text!r}: {why}", file=sys.stderr)
    sys.exit(2)


def precheck_overrides(args: list[str]) -> None:
    """Refuse a command line Hydra cannot parse or compose before Hydra does, with one line and
    exit status 2 (a bad setting, nothing run). Hydra itself would print a multi-line error and
    exit 1, the status reserved for failed cells. The overrides are parsed by Hydra's own parser
    (``OverridesParser``); a multirun's first cell (each sweep's first value) is composed by
    Hydra's ``compose`` (about 50 ms); cells are validated later, by the launcher, as before.
    Command lines with other flags (``--cfg``, ``--help``, ``-cn`` ...) are Hydra's business."""
    flags = [a for a in args if a.startswith("-")]
    if any(f not in ("-m", "--multirun") for f in flags):
        return
    overrides = [a for a in args if not a.startswith("-")]
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except OverrideParseException as err:
        bad, hint = _bad_override(parser, overrides)
        print(f"inal-sweep: invalid override{bad}: {_hydra_error_line(err)} (Hydra's override grammar: "
              f"https://hydra.cc/docs/advanced/override_grammar/basic; quote values with other characters){hint}",
              file=sys.stderr)
        sys.exit(2)
    if not flags:
        return  # a single run: precheck_single_run composes and validates it
    first = []
    for o in parsed:
        if o.is_sweep_override():
            if not o.is_discrete_sweep():  # interval(): Hydra's basic sweeper raises with a traceback
                _refuse_override(o.input_line, "interval() needs an optimizing sweeper; this sweeper takes a list "
                                               "(a,b,c), range() or choice()")
            try:
                value = next(iter(o.sweep_string_iterator()), None)
            except ValueError as err:  # range(0,3,0): Python's range() refuses it, with a traceback
                _refuse_override(o.input_line, str(err))
            except Exception:  # noqa: BLE001 - glob() needs the group's options: the sweeper's business
                return
            if value is None:  # range(4,8,-1): a study of no cell, which exits 0 having done nothing
                _refuse_override(o.input_line, "it sweeps no value")
            first.append(f"{o.input_line.split('=', 1)[0]}={value}")
        else:
            first.append(o.input_line)
    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module("sweeps.conf", version_base="1.3"):
            compose("config", overrides=first)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"inal-sweep: invalid setting: {_hydra_error_line(err)}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """``inal-sweep``: no arguments runs the default study; otherwise the arguments go to Hydra.

    Exits with the study's status (``sweeps.outcome``): 0 every cell ok or diverged, 1 a cell
    failed, 2 a configuration error before any work, 130/143 on SIGINT/SIGTERM after one line
    saying how many cells are stored.
    """
    if len(sys.argv) == 1:
        sys.argv.extend(DEFAULT_STUDY_ARGS)
    tally = outcome.TALLY
    tally.reset()
    tally.cli = True  # expected errors become one line and an exit status (sweeper, launcher)
    previous_handlers = outcome.install_signal_handlers()
    try:
        precheck_overrides(sys.argv[1:])
        precheck_single_run(sys.argv[1:])
        task()
    except KeyboardInterrupt:
        tally.signal = tally.signal or 2  # SIGINT unless the handler recorded SIGTERM
        _shutdown_ray()
        print(f"inal-sweep: {tally.interrupted_line()}", file=sys.stderr, flush=True)
    finally:
        tally.cli = False  # in-process callers (tests) get exceptions again
        outcome.restore_signal_handlers(previous_handlers)
    sys.exit(tally.exit_code())


def _shutdown_ray() -> None:
    """Stop this process's Ray connection (and a local Ray it started), quietly."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    import signal as _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # a second Ctrl-C must not interrupt the shutdown
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    # While its processes go, Ray's C++ core may log to this process's stderr at ERROR level (e.g.
    # task_manager.cc "Failed to push error to driver" for a task it was retrying), which no
    # documented setting silences short of hiding every error: after the user asked to stop it
    # says nothing they can act on, and the one line printed next is the outcome. So stderr
    # (file descriptor 2, where Ray's C++ logger writes) points at /dev/null for the shutdown.
    import os

    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        ray.shutdown()
    except Exception:  # noqa: BLE001 - the study's outcome is reported whatever Ray does now
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if __name__ == "__main__":
    main()
