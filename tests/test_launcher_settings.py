"""The launcher's settings follow Ray's conventions (no Ray started here).

- address: explicit wins, ``local`` forces a new local Ray, unset means ``$RAY_ADDRESS`` (as set by
  ``ray job submit``), else a local Ray;
- ``ray_init``: every keyword ``ray.init`` declares is accepted, anything else (and ``address``)
  refused with the key, the value and what is allowed — the reference is ``inspect.signature``
  of ``ray.init`` itself, read here independently.
"""

from __future__ import annotations

import inspect

import pytest

ray = pytest.importorskip("ray")

from hydra_plugins.inal_ray_launcher._ray import resolve_address  # noqa: E402


@pytest.mark.parametrize("address, env, expected", [
    (None, None, None),                       # nothing said: a new local Ray
    (None, "10.0.0.5:6379", "10.0.0.5:6379"),  # inside `ray job submit`: the job's cluster
    ("", "10.0.0.5:6379", "10.0.0.5:6379"),
    ("auto", "10.0.0.5:6379", "auto"),        # explicit wins (ray.init then applies its own rule)
    ("host:1234", "10.0.0.5:6379", "host:1234"),
    ("local", "10.0.0.5:6379", None),         # forced local
])
def test_address_follows_ray_address_convention(address, env, expected, monkeypatch) -> None:
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert resolve_address(address) == expected


def test_every_ray_init_keyword_is_accepted_and_others_are_named() -> None:
    # looked up now: Hydra's plugin discovery may have re-imported the module since collection
    from hydra_plugins.inal_ray_launcher.ray_launcher import InalRayLauncher, LauncherConfigError

    declared = [p.name for p in inspect.signature(inspect.unwrap(ray.init)).parameters.values()
                if p.kind is p.KEYWORD_ONLY]
    assert "runtime_env" in declared and "namespace" in declared
    InalRayLauncher(ray_init={k: None for k in declared})  # no error
    InalRayLauncher(ray_init={"_temp_dir": "/tmp/x"})  # a private option Ray pops from **kwargs
    for key, value in (("bogus_kw", 1), ("runtime_envs", {}), ("address", "auto")):
        with pytest.raises(LauncherConfigError) as info:
            InalRayLauncher(ray_init={key: value})
        message = str(info.value)
        assert f"hydra.launcher.ray_init.{key}={value!r}" in message and "allowed" in message
    with pytest.raises(ValueError, match="hydra.launcher.address"):
        InalRayLauncher(address="  ")
