"""Hydra config tree of inal-sweep (a package so `initialize_config_module("sweeps.conf")` finds it)."""
