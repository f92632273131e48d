"""``inal-submit``: run a study on a remote Ray cluster as a Ray Job, at most once at a time.

    inal-submit --address http://127.0.0.1:8265 -- +experiment=default results_dir=s3://bucket/inal
    inal-submit --print-id -- +experiment=default results_dir=/shared/inal    # the id only

The study is expanded here, before anything is sent: Hydra composes every cell of the grid and
``sweeps.validation.validate_job`` checks it (a bad value fails on the laptop, naming the key). The
submission id is a function of the study alone,

    id = "inal-<study>-" + sha256(study, results_dir, sorted run ids, sorted INAL ids)[:12],

so two spellings of one grid (``n=6,8`` and ``n=8,6``) share it and any other grid does not.
Ray refuses a second job with an existing submission id, which makes the id a lock:

- no job with this id yet: submit ``inal-sweep --multirun <overrides>`` (inside the job, the
  launcher joins the cluster through ``$RAY_ADDRESS``, Ray's convention);
- a job of this study is PENDING or RUNNING: refuse (exit 3), nothing runs twice;
- the last one FAILED or was STOPPED (lost head, killed driver, ...): submit attempt ``<id>-r<k>``,
  which resumes through the results store (cells already complete are skipped);
- the last one SUCCEEDED: nothing to do (exit 0); ``--resume`` submits a new attempt anyway.

Ray Jobs are reached through Ray's ``JobSubmissionClient`` (imported when a cluster is contacted,
so ``--help``, ``--print-id`` and bad input never import ray). The results location must be visible from every node
(an absolute shared path or a ``pyarrow.fs`` URI such as ``s3://bucket/prefix``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from .jobs import JobSpec
from .validation import ConfigError, validate_job

__all__ = ["StudyPlan", "expand_study", "submission_id", "RayJobsApi", "ray_auth_token", "main"]

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


@dataclass(frozen=True)
class StudyPlan:
    """The validated, deduplicated cells of one study (one multirun command line).

    ``jobs`` holds the cells' ``JobSpec`` objects for studies of at most ``KEEP_JOBS`` cells (an
    empty tuple beyond: the plan streams); the ids are always kept (16 bytes a cell).
    """

    study: str
    results_dir: str
    jobs: tuple[JobSpec, ...]
    n_configs: int  # composed configs before deduplication
    run_id_list: tuple[str, ...] | None = None
    inal_id_list: tuple[str, ...] | None = None

    @property
    def run_ids(self) -> list[str]:
        if self.run_id_list is not None:
            return sorted(self.run_id_list)
        return sorted(j.run_id for j in self.jobs if j.train)

    @property
    def inal_ids(self) -> list[str]:
        if self.inal_id_list is not None:
            return sorted(set(self.inal_id_list))
        return sorted({j.inal_id for j in self.jobs})

    @property
    def n_cells(self) -> int:
        return len(self.jobs) if self.run_id_list is None else self.n_unique

    n_unique: int = 0


KEEP_JOBS = 100_000


def _sweep_cells(overrides: Sequence[str]) -> tuple[Any, Any, list[list[str]]]:
    """Hydra's own materialized expansion of a multirun (``BasicSweeper.split_arguments``): the
    tests' independent reference for :func:`expand_study`, which streams (``sweeps.plan``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration("config", list(overrides), run_mode=RunMode.MULTIRUN)
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=loader)
    cells = BasicSweeper.split_arguments(parser.parse_overrides(params + list(overrides)), None)[0]
    return loader, master, [list(cell) for cell in cells]


def expand_study(overrides: Sequence[str]) -> StudyPlan:
    """Compose and validate every cell of ``inal-sweep --multirun <overrides>``, streaming.

    The same plan as the launcher's (``sweeps.plan``): Hydra's override grammar and axes, the
    product iterated lazily, composition once per distinct set of group choices
    (``sweeps.compose.GroupwiseComposer``), exact validation per structural cell, dedupe by
    ``run_id``; a grid over ``hydra.launcher.max_cells`` is refused first.

    Raises
    ------
    ConfigError
        On the first cell with a value that is not allowed (key, value, what is allowed), or a
        grid over ``max_cells``.
    """
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    from .compose import GroupwiseComposer
    from .plan import CellFactory, GridSource, check_max_cells, grid_axes

    GlobalHydra.instance().clear()  # a CLI: no Hydra app of ours is running in this process
    try:
        with initialize_config_module(config_module="sweeps.conf", version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            master = loader.load_configuration("config", list(overrides), run_mode=RunMode.MULTIRUN)
            params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
            composer = GroupwiseComposer(loader, master)  # the launcher's own composition shortcut
            parser = OverridesParser.create(config_loader=loader)
            source = GridSource(grid_axes(parser.parse_overrides(params + list(overrides)),
                                          composer.is_group_override))
            max_cells = master.hydra.launcher.get("max_cells")  # the inal_ray launcher's setting, default included
            if max_cells is not None:  # another launcher: no such limit
                check_max_cells(len(source), int(max_cells))
            composer.set_shared([a.lines[0] for a in source.axes if len(a.lines) == 1])
            # results_dir is a path on the cluster: its form and URI scheme are checked, not this machine's disk
            factory = CellFactory(source, composer.compose_task, lambda cfg: validate_job(cfg, local=False))
            seen: set[bytes] = set()
            keep = len(source) <= KEEP_JOBS
            jobs: list[JobSpec] = []
            run_ids: list[str] = []
            inal_ids: set[str] = set()
            first = None
            for _, _, job in factory:
                rid = bytes.fromhex(job.run_id)
                if rid in seen:
                    continue
                seen.add(rid)
                first = first or job
                if keep:
                    jobs.append(job)
                if job.train:
                    run_ids.append(job.run_id)
                inal_ids.add(job.inal_id)
    finally:
        GlobalHydra.instance().clear()
    assert first is not None
    if keep:
        return StudyPlan(study=first.study, results_dir=first.results_dir, jobs=tuple(jobs),
                         n_configs=len(source))
    return StudyPlan(study=first.study, results_dir=first.results_dir, jobs=(), n_configs=len(source),
                     run_id_list=tuple(run_ids), inal_id_list=tuple(sorted(inal_ids)), n_unique=len(seen))


def submission_id(plan: StudyPlan) -> str:
    """``inal-<study>-<12 hex>``: the hash of the study's location and its set of cells."""
    digest = hashlib.sha256(json.dumps(
        {"study": plan.study, "results_dir": plan.results_dir, "runs": plan.run_ids,
         "inal": plan.inal_ids}, sort_keys=True).encode()).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", plan.study).strip("-")[:40] or "study"
    return f"inal-{slug}-{digest[:12]}"


def attempt_number(job_id: str, base: str) -> int | None:
    """0 for ``base``, k for ``base-r<k>``, None for any other id."""
    if job_id == base:
        return 0
    match = re.fullmatch(re.escape(base) + r"-r(\d+)", job_id)
    return int(match.group(1)) if match else None


def ray_auth_token() -> str | None:
    """Ray's token (token authentication, Ray >= 2.52): where the ``ray`` CLI looks for it,
    in its order: ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


class RayJobsApi:
    """The Ray Jobs API of a cluster's dashboard (``http://<head>:8265``) through Ray's own
    ``ray.job_submission.JobSubmissionClient`` (its version check, auth headers and errors),
    seen as plain dicts. ``ray`` is imported here, when a cluster is contacted, not when
    ``inal-submit`` starts (``--help``, ``--print-id`` and bad input stay fast).

    A Ray token found where the ``ray`` CLI looks (:func:`ray_auth_token`) is sent as
    ``Authorization: Bearer <token>`` (ignored by clusters without token authentication).
    """

    def __init__(self, address: str, timeout_s: float = 30.0, token: str | None = None) -> None:
        if "://" not in address:
            address = "http://" + address
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s
        self.token = token if token is not None else ray_auth_token()
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            headers = {"Authorization": "Bearer " + self.token} if self.token else None
            try:
                self._client = JobSubmissionClient(self.address, headers=headers)
            except ConnectionError as err:
                raise ConnectionError(f"cannot reach the Ray Jobs API at {self.address}: {err} (start the "
                                      "cluster; for `ray up` clusters run `ray dashboard <cluster.yaml>` "
                                      "to forward port 8265)") from None
            except RuntimeError as err:
                if "401" in str(err) or "403" in str(err) or "auth" in str(err).lower():
                    raise PermissionError(f"the Ray Jobs API at {self.address} refused the token: set "
                                          "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH") from None
                raise
        return self._client

    @staticmethod
    def _as_dict(details: Any) -> dict:
        status = details.status
        return {"submission_id": details.submission_id, "status": getattr(status, "value", str(status)),
                "metadata": dict(details.metadata or {}), "entrypoint": details.entrypoint}

    def info(self, job_id: str) -> dict | None:
        try:
            return self._as_dict(self.client.get_job_info(job_id))
        except RuntimeError as err:
            if "does not exist" in str(err) or "404" in str(err):
                return None
            raise

    def list(self) -> list[dict]:
        return [self._as_dict(j) for j in self.client.list_jobs() if j.submission_id]

    def submit(self, payload: dict) -> tuple[bool, str]:
        """(True, submission id) or (False, Ray's reason), e.g. an id that already exists."""
        try:
            job_id = self.client.submit_job(entrypoint=payload["entrypoint"],
                                            submission_id=payload["submission_id"],
                                            runtime_env=payload.get("runtime_env"),
                                            metadata=payload.get("metadata"))
        except RuntimeError as err:
            text = str(err).strip()
            return False, text.splitlines()[-1] if text else "refused"
        return True, job_id

    def logs(self, job_id: str) -> str:
        try:
            return self.client.get_job_logs(job_id)
        except RuntimeError:
            return ""


def follow(api: RayJobsApi, job_id: str, poll_s: float = 2.0, out=sys.stdout) -> str:
    """Print the job's driver log as it grows until the job ends; returns the final status."""
    printed = 0
    while True:
        info = api.info(job_id) or {}
        status = info.get("status", "PENDING")
        text = api.logs(job_id)
        if len(text) > printed:
            out.write(text[printed:])
            out.flush()
            printed = len(text)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="inal-submit", description=__doc__.split("\n\n")[0],
        epilog="Everything after -- is handed to `inal-sweep --multirun` on the cluster.")
    parser.add_argument("--address", default=None,
                        help="Ray dashboard / Jobs API (default $RAY_API_SERVER_ADDRESS, an http "
                             f"$RAY_ADDRESS, else {DEFAULT_DASHBOARD})")
    parser.add_argument("--print-id", action="store_true", help="print the submission id and exit")
    parser.add_argument("--resume", action="store_true",
                        help="submit a new attempt even if the last one SUCCEEDED")
    parser.add_argument("--no-wait", action="store_true", help="return once the job is submitted")
    parser.add_argument("--runtime-env-json", default=None,
                        help="runtime_env for the job as JSON (remote URIs only; the project "
                             "must be installed on the cluster)")
    parser.add_argument("--allow-relative-results", action="store_true",
                        help="accept a relative results_dir (single-node clusters only)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    return parser.parse_args(argv)


def _default_address() -> str:
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(var, "")
        if value.startswith("http"):
            return value
    return DEFAULT_DASHBOARD


def _is_remote_or_absolute(results_dir: str) -> bool:
    return "://" in results_dir or os.path.isabs(os.path.expanduser(results_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``inal-submit``; returns the exit status: 0 done (or already complete),
    1 the job failed, 2 bad input, 3 refused (the study is running, or Ray rejected the id),
    4 the Jobs API cannot be reached or refused the token."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    args.runtime_env = None
    if args.runtime_env_json is not None:  # checked before anything is composed or contacted
        try:
            args.runtime_env = json.loads(args.runtime_env_json)
            if not isinstance(args.runtime_env, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            print(f"inal-submit: invalid --runtime-env-json={args.runtime_env_json!r} (allowed: a JSON "
                  f"object, e.g. '{{\"env_vars\": {{\"OMP_NUM_THREADS\": \"1\"}}}}'): {err}", file=sys.stderr)
            return 2
    overrides = [o for o in args.overrides if o not in ("-m", "--multirun")]
    from hydra.errors import HydraException  # hydra is imported lazily: --help stays fast

    try:
        plan = expand_study(overrides)
    except (ConfigError, HydraException) as err:
        print(f"inal-submit: {err}", file=sys.stderr)
        return 2
    if not (args.allow_relative_results or _is_remote_or_absolute(plan.results_dir)):
        err = ConfigError("results_dir", plan.results_dir,
                          "an absolute path on a file system shared by all nodes, or a pyarrow.fs "
                          "URI (s3://..., gs://...)", "a relative path resolves on every node apart")
        print(f"inal-submit: {err}", file=sys.stderr)
        return 2
    base = submission_id(plan)
    if args.print_id:
        print(base)
        return 0

    api = RayJobsApi(args.address or _default_address())
    try:
        return _submit_or_refuse(api, plan, base, overrides, args)
    except (ConnectionError, PermissionError) as err:
        print(f"inal-submit: {err}", file=sys.stderr)
        return 4


def _submit_or_refuse(api: RayJobsApi, plan: StudyPlan, base: str, overrides: list[str],
                      args: argparse.Namespace) -> int:
    """The lock protocol of the module docstring; returns ``main``'s exit status."""
    attempts = sorted((attempt_number(j["submission_id"], base), j) for j in api.list()
                      if attempt_number(j["submission_id"], base) is not None)
    if any(j["status"] not in TERMINAL for _, j in attempts):
        live = [j["submission_id"] for _, j in attempts if j["status"] not in TERMINAL]
        print(f"inal-submit: study {plan.study!r} is already running as Ray job {live[0]}; "
              f"not submitted again (follow it: ray job logs -f {live[0]})", file=sys.stderr)
        return 3
    if attempts and attempts[-1][1]["status"] == "SUCCEEDED" and not args.resume:
        print(f"inal-submit: study {plan.study!r} already completed as Ray job "
              f"{attempts[-1][1]['submission_id']} (results in {plan.results_dir}); "
              "--resume submits it again")
        return 0
    job_id = base if not attempts else f"{base}-r{attempts[-1][0] + 1}"
    command = ["inal-sweep", "--multirun", *overrides]  # the job's $RAY_ADDRESS names the cluster
    payload: dict[str, Any] = {
        "entrypoint": shlex.join(command), "submission_id": job_id,
        "metadata": {"inal_study": plan.study, "inal_results_dir": plan.results_dir,
                     "inal_study_id": base, "inal_cells": str(plan.n_cells)}}
    if args.runtime_env is not None:
        payload["runtime_env"] = args.runtime_env
    ok, detail = api.submit(payload)
    if not ok:
        print(f"inal-submit: Ray rejected submission {job_id}: {detail}", file=sys.stderr)
        return 3
    print(f"inal-submit: submitted study {plan.study!r} ({plan.n_cells} jobs, "
          f"{len(plan.inal_ids)} INAL settings) as Ray job {job_id} to {api.address}", flush=True)
    if args.no_wait:
        return 0
    status = follow(api, job_id)
    print(f"inal-submit: Ray job {job_id} {status}", flush=True)
    return 0 if status == "SUCCEEDED" else 1


def console_main() -> None:
    """Entry point of the ``inal-submit`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
