"""Hydra's own launcher test suites, run against ``hydra/launcher=inal_ray`` on a real local Ray.

``LauncherTestSuite`` runs sweeps in this process (the launcher reuses the module's Ray);
``IntegrationTestSuite`` runs small Hydra apps in subprocesses, which join the module's Ray
through ``hydra.launcher.address`` instead of each starting their own (Ray start-up costs
seconds here).
"""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

ray = pytest.importorskip("ray")

from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(autouse=True)
def unset_hydra_version_base():
    """Hydra's version base is process-global: tests that use the compose API elsewhere set it to
    1.3, which changes the default of ``hydra.job.chdir`` that Hydra's suites assume. Run each
    suite test with the base unset (as in a fresh process), then restore the previous state."""
    from hydra.core.singleton import Singleton
    from hydra.version import VersionBase

    state = Singleton.get_state()
    Singleton._instances.pop(VersionBase, None)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        Singleton.set_state(state)


@pytest.mark.usefixtures("ray_address")
@pytest.mark.parametrize("launcher_name, overrides", [("inal_ray", ["hydra.launcher.progress=false"])])
class TestInalRayLauncher(LauncherTestSuite):
    pass


@pytest.fixture
def task_launcher_cfg(ray_address: str) -> Dict[str, Any]:
    return {
        "defaults": [
            {"override hydra/launcher": "inal_ray"},
            {"override hydra/hydra_logging": "hydra_debug"},
            {"override hydra/job_logging": "disabled"},
        ],
        "hydra": {"launcher": {"address": ray_address, "progress": False}},
    }


@pytest.fixture
def extra_flags() -> List[str]:
    return ["-m"]


@pytest.mark.slow  # twelve subprocess runs, a few seconds each
class TestInalRayLauncherIntegration(IntegrationTestSuite):
    pass
