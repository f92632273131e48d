"""Benchmarks of the project: `inal-bench <suite>` prints one JSON object per measurement.

Every measurement carries ``name``, ``value``, ``unit``, ``baseline`` and ``ratio``, where
the baseline is measured in the same process run (never a stored number), so ratios stay
meaningful on a noisy or shared machine.
"""
