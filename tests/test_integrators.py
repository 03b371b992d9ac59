"""Randomized-midpoint Brownian integrals against their closed-form joint law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from scoresample.diffusion.integrators import (
    kinetic_brownian_integrals,
    leapfrog_energy_error,
    one_minus_exp_neg,
    overdamped_brownian_pair,
)


def exact_covariance(gamma, h, a):
    """Cov of (W1, W2, W3) by quadrature of products of their integrands (Itô isometry)."""
    f1 = lambda s: (1 - np.exp(-gamma * (a - s))) * (s <= a)
    f2 = lambda s: 1 - np.exp(-gamma * (h - s))
    f3 = lambda s: np.exp(-gamma * (h - s))
    fs = [f1, f2, f3]
    cov = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            fi, fj = fs[i], fs[j]
            cov[i, j] = integrate.quad(lambda s, fi=fi, fj=fj: fi(s) * fj(s), 0, h, points=[a])[0]
    return cov


@pytest.mark.parametrize("gamma,h,alpha", [(2.0, 0.5, 0.3), (0.5, 1.0, 0.9), (5.0, 0.2, 0.05)])
def test_kinetic_integrals_joint_covariance(gamma, h, alpha):
    n = 400_000
    w = kinetic_brownian_integrals(jax.random.key(0), gamma, h, alpha * h, (n,))
    sample = np.stack([np.asarray(w.w1), np.asarray(w.w2), np.asarray(w.w3)])
    emp = np.cov(sample)
    exact = exact_covariance(gamma, h, alpha * h)
    # Monte Carlo sd of a covariance entry ≈ sqrt((Σii Σjj + Σij²)/n); allow 5 sd.
    tol = 5 * np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + exact**2) / n)
    np.testing.assert_array_less(np.abs(emp - exact), tol + 1e-9)


def test_small_midpoint_variance_nonnegative_float32():
    # At α → 0 the closed-form Var W1 cancels catastrophically in float32; ours must not go NaN.
    for alpha in [1e-7, 1e-5, 1e-3]:
        w = kinetic_brownian_integrals(jax.random.key(1), 2.0, 0.1, alpha * 0.1, (1000,))
        for part in w:
            assert part.dtype == jnp.float32
            assert np.all(np.isfinite(np.asarray(part)))


def test_overdamped_pair_is_one_path():
    n, h, alpha = 400_000, 0.7, 0.4
    b_a, b_h = overdamped_brownian_pair(jax.random.key(2), h, alpha, (n,))
    emp = np.cov(np.stack([np.asarray(b_a), np.asarray(b_h)]))
    exact = np.array([[alpha * h, alpha * h], [alpha * h, h]])  # Cov(B_a, B_h) = a, not 0
    np.testing.assert_allclose(emp, exact, atol=5 * h * np.sqrt(2 / n))


def test_one_minus_exp_neg_small_argument():
    y = jnp.float32(1e-8)
    assert float(one_minus_exp_neg(y)) == pytest.approx(1e-8, rel=1e-6)


def test_leapfrog_energy_error_gaussian_closed_form():
    # One leapfrog step on N(0, 1) from x with momentum v: ΔH has a closed form.
    x = jnp.array([0.7])
    ld = lambda y: -0.5 * jnp.sum(y**2)
    h = 0.4
    key = jax.random.key(3)
    v = jax.random.normal(key, (1,))
    x1 = x + h * v - 0.5 * h**2 * x
    v1 = v - 0.5 * h * (x + x1)
    expected = 0.5 * (x1**2 - x**2 + v1**2 - v**2)
    got = leapfrog_energy_error(key, x, ld(x), -x, ld, h)
    np.testing.assert_allclose(got, expected.sum(), rtol=1e-5)
