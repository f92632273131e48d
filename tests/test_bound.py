"""The bound and the Fourier-step ratio against hand computations (SCIENCE.md §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inal_core.bound import bound_prefactor, bound_value, fourier_step_ratio, normalized_correlation


def test_bound_prefactor_formula():
    # gamma T sqrt(E A) / sigma = 0.01 * 1000 * sqrt(2500 * 4) / 0.2 = 10 * 100 / 0.2
    assert bound_prefactor(0.01, 1000, 2500, 4.0, 0.2) == pytest.approx(5000.0)
    assert bound_prefactor(0.01, 1000, 2500, 4.0, 0.0) == math.inf
    arr = bound_prefactor(np.array([0.1, 0.2]), 10, 100, 1.0, np.array([1.0, 0.0]))
    assert arr[0] == pytest.approx(10.0) and arr[1] == math.inf


def test_bound_value_scaling_in_n():
    # c = 1: no decay in n; c = 9: n^{-1}
    assert bound_value(3.0, 1000, 1.0) == pytest.approx(3.0)
    assert bound_value(3.0, 1000, 9.0) == pytest.approx(3e-3)
    ns = np.array([10.0, 100.0, 1000.0])
    slope = np.polyfit(np.log(ns), np.log(bound_value(1.0, ns, 5.0)), 1)[0]
    assert slope == pytest.approx(-0.5)


def test_normalized_correlation_is_corr_over_prefactor():
    corr, gamma, T, E, A, sigma = -0.3, 0.05, 200, 1234, 2.0, 0.01
    expected = 0.3 * 0.01 / (0.05 * 200 * math.sqrt(1234 * 2.0))
    assert normalized_correlation(corr, gamma, T, E, A, sigma) == pytest.approx(expected)
    assert normalized_correlation(corr, gamma, T, E, A, sigma) * bound_prefactor(gamma, T, E, A, sigma) == pytest.approx(0.3)


def test_fourier_step_ratio():
    # W^{<=k} / (n^{k+1} INAL) = 0.6 / (20^3 * 1e-5)
    assert fourier_step_ratio(0.6, 20, 2, 1e-5) == pytest.approx(0.6 / (8000 * 1e-5))
    assert fourier_step_ratio(0.6, 20, 2, 0.0) == math.inf
    out = fourier_step_ratio(np.array([0.5, 1.0]), np.array([4, 8]), 1, np.array([0.01, 0.02]))
    np.testing.assert_allclose(out, [0.5 / (16 * 0.01), 1.0 / (64 * 0.02)])
