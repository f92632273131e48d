"""Boolean cube enumeration/sampling and Fourier tools against direct formulas written here."""

import itertools
import math

import pytest
import torch

from inal_core.cube import enumerate_cube, iter_cube_chunks, sample_cube, truth_table
from inal_core.fourier import cumulative_weights, degree_weights, fourier_coefficients, fwht
from inal_core.rng import make_generator

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def direct_fourier(values: list[float], n: int) -> list[float]:
    """fhat(S) = 2^-n sum_x f(x) prod_{i in S} x_i by plain loops (x_i = 1 - 2 bit_i(j))."""
    coeffs = []
    for S in range(2**n):
        total = 0.0
        for j in range(2**n):
            chi = 1
            for i in range(n):
                if (S >> i) & 1:
                    chi *= 1 - 2 * ((j >> i) & 1)
            total += values[j] * chi
        coeffs.append(total / 2**n)
    return coeffs


@pytest.mark.parametrize("n", [1, 3, 5])
def test_enumerate_cube_row_convention(n):
    x = enumerate_cube(n, dtype=torch.float64)
    assert x.shape == (2**n, n)
    for j in range(2**n):
        assert x[j].tolist() == [1 - 2 * ((j >> i) & 1) for i in range(n)]


def test_chunks_cover_the_cube_in_order():
    chunks = list(iter_cube_chunks(7, 30))
    assert [s for s, _ in chunks] == list(range(0, 128, 30))
    assert torch.equal(torch.cat([c for _, c in chunks]), enumerate_cube(7))
    assert torch.equal(enumerate_cube(7, 5, 9), enumerate_cube(7)[5:9])


def test_enumerate_rejects_bad_ranges():
    with pytest.raises(ValueError, match="start"):
        enumerate_cube(3, 4, 20)
    with pytest.raises(ValueError, match="n must be"):
        enumerate_cube(0)
    with pytest.raises(ValueError, match="chunk_rows"):
        list(iter_cube_chunks(3, 0))


def test_sample_cube_seeded_and_uniform():
    a = sample_cube(20000, 6, make_generator(3, "x"), dtype=torch.float64)
    b = sample_cube(20000, 6, make_generator(3, "x"), dtype=torch.float64)
    c = sample_cube(20000, 6, make_generator(4, "x"), dtype=torch.float64)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    # each coordinate and each pairwise product has mean 0 within 5 standard errors (1/sqrt(m))
    se = 1 / math.sqrt(20000)
    assert a.mean(0).abs().max() < 5 * se
    assert (a[:, 0] * a[:, 1]).mean().abs() < 5 * se


@pytest.mark.parametrize("n", [1, 2, 4, 6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fwht_matches_direct_fourier_sum(n, dtype):
    values = torch.randn(2**n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    expected = torch.tensor(direct_fourier(values.tolist(), n), dtype=torch.float64)
    got = fourier_coefficients(values.to(dtype))
    assert torch.allclose(got, expected, atol=TOL[dtype], rtol=0)
    # unnormalized transform applied twice gives 2^n times the input; batched rows are independent
    batch = torch.randn(3, 2**n, dtype=dtype)
    assert torch.allclose(fwht(fwht(batch)), 2**n * batch, atol=TOL[dtype] * 2**n)
    assert torch.allclose(fwht(batch)[1], fwht(batch[1]))


def test_fwht_rejects_non_power_of_two():
    with pytest.raises(ValueError, match="2\\^n"):
        fwht(torch.ones(6))


@pytest.mark.parametrize("n", [3, 6, 9])
def test_parseval_for_random_boolean_functions(n):
    f = torch.randint(0, 2, (2**n,), generator=torch.Generator().manual_seed(n)).double() * 2 - 1
    w = degree_weights(f)
    assert w.shape == (n + 1,)
    assert abs(w.sum().item() - 1.0) < 1e-12
    assert torch.allclose(cumulative_weights(f), torch.cumsum(w, 0))
    # W^{=k} equals the direct sum of squared coefficients over |S| = k
    coeffs = direct_fourier(f.tolist(), n) if n <= 6 else fourier_coefficients(f).tolist()
    for k in range(n + 1):
        direct = sum(c * c for S, c in enumerate(coeffs) if bin(S).count("1") == k)
        assert abs(direct - w[k].item()) < 1e-12


@pytest.mark.parametrize("n,k", [(5, 1), (6, 3), (8, 8)])
def test_parity_spectrum_is_a_single_degree(n, k):
    x = enumerate_cube(n, dtype=torch.float64)
    f = x[:, :k].prod(1)
    w = degree_weights(f)
    expected = torch.zeros(n + 1, dtype=torch.float64)
    expected[k] = 1.0
    assert torch.allclose(w, expected, atol=1e-12)
    coeffs = fourier_coefficients(f)
    assert coeffs[(1 << k) - 1].item() == pytest.approx(1.0)


def test_majority3_coefficients_closed_form():
    # Maj3 = (x1 + x2 + x3)/2 - x1 x2 x3 / 2
    x = enumerate_cube(3, dtype=torch.float64)
    f = torch.sign(x.sum(1))
    coeffs = fourier_coefficients(f)
    expected = torch.zeros(8, dtype=torch.float64)
    expected[[0b001, 0b010, 0b100]] = 0.5
    expected[0b111] = -0.5
    assert torch.allclose(coeffs, expected, atol=1e-15)
    assert torch.allclose(degree_weights(f), torch.tensor([0, 0.75, 0, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("n", [3, 5, 7, 9, 11])
def test_majority_level_one_weight_closed_form(n):
    # W^{=1}[Maj_n] = n * (binom(n-1, (n-1)/2) / 2^(n-1))^2  (O'Donnell, Thm 5.19 ff.)
    f = torch.sign(enumerate_cube(n, dtype=torch.float64).sum(1))
    expected = n * (math.comb(n - 1, (n - 1) // 2) / 2 ** (n - 1)) ** 2
    assert degree_weights(f)[1].item() == pytest.approx(expected, abs=1e-12)
    # odd function: no weight at even degrees
    assert degree_weights(f)[0::2].abs().max().item() < 1e-12


def test_truth_table_matches_direct_evaluation():
    def f(x):
        return torch.where(x[:, 0] * x[:, 2] > 0, x[:, 1], -x[:, 3])

    table = truth_table(f, 5, chunk_rows=7)
    expected = [f(torch.tensor([row])).item() for row in itertools.islice(enumerate_cube(5).tolist(), None)]
    assert table.tolist() == expected
