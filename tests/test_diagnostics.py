"""Diagnostics on cases with known answers."""

import jax.numpy as jnp
import numpy as np

from scoresample import diagnostics as D
from scoresample.targets import isotropic_gaussian, unequal_mixture_2d


def test_ksd_separates_exact_from_biased_draws():
    t = isotropic_gaussian(3)
    rng = np.random.default_rng(0)
    exact = t.sample(rng, 1000)
    narrow = 0.7 * t.sample(rng, 1000)
    shifted = t.sample(rng, 1000) + 0.5
    k_exact = D.ksd_from_logdensity(exact, t.logdensity_fn)
    assert k_exact < 0.5 * D.ksd_from_logdensity(narrow, t.logdensity_fn)
    assert k_exact < 0.5 * D.ksd_from_logdensity(shifted, t.logdensity_fn)


def test_stein_kernel_matches_autodiff():
    # k_p(x, y) = s(x)·s(y) k + s(x)·∇_y k + s(y)·∇_x k + tr ∇_x∇_y k, checked with jax.
    import jax

    k = lambda x, y: (1.0 + jnp.sum((x - y) ** 2)) ** -0.5
    x, y = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
    sx, sy = -x, -y
    gx = jax.grad(k, 0)(x, y)
    gy = jax.grad(k, 1)(x, y)
    tr = jnp.trace(jax.jacfwd(jax.grad(k, 0), 1)(x, y))
    expected = sx @ sy * k(x, y) + sx @ gy + sy @ gx + tr
    got = D.imq_stein_kernel_matrix(x[None], sx[None], y[None], sy[None])[0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_mode_weights_and_emc():
    t = unequal_mixture_2d()
    draws = t.sample(np.random.default_rng(1), 20000)
    w = D.mode_weights(draws, t.component_means)
    np.testing.assert_allclose(w, t.weights, atol=0.015)  # 4.5 sd of a proportion at n=20000
    assert D.entropic_mode_coverage([0.25] * 4) == 1.0
    assert D.entropic_mode_coverage([1.0, 0, 0, 0]) == 0.0
    assert D.mode_weight_error(draws, t.component_means, t.weights) < 0.015


def test_running_bias_squared_decays_like_one_over_n():
    rng = np.random.default_rng(2)
    chains = rng.standard_normal((64, 1000, 5))
    b2 = D.running_bias_squared(chains, np.zeros(5), np.eye(5))
    # For exact iid draws E[b²] = 1/n: check at n = 100 and 1000 within a factor 1.5.
    assert 1 / 150 < b2[99] < 1.5 / 100 and 1 / 1500 < b2[999] < 1.5 / 1000


def test_mmd_zero_for_same_law():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((300, 2)), rng.standard_normal((300, 2))
    assert D.mmd_rbf(a, b) < 0.2 * D.mmd_rbf(a, b + 1.0)
