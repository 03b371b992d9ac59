"""The OU schedule, time grids and the exponential-integrator reverse step (with its factor 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scoresample.diffusion.ou import (
    ou_alpha,
    ou_sigma2,
    reverse_ou_step,
    score_from_gradient,
    score_from_mean,
    time_grid,
)


def test_schedule_values():
    s = jnp.array([1e-4, 0.1, 1.0, 5.0])
    np.testing.assert_allclose(ou_alpha(s), np.exp(-np.asarray(s)), rtol=1e-6)
    # 1 - a² without cancellation at small s (float32 1 - e^{-2e-4} loses digits).
    np.testing.assert_allclose(ou_sigma2(s), -np.expm1(-2 * np.asarray(s, np.float64)), rtol=1e-5)


@pytest.mark.parametrize("kind", ["geometric", "uniform"])
def test_time_grids(kind):
    g = time_grid(3.0, 0.02, 12, kind)
    assert g.shape == (13,) and g[0] == pytest.approx(3.0) and g[-1] == pytest.approx(0.02)
    assert np.all(np.diff(g) < 0)
    ratio = g[1:] / g[:-1]
    steps = -np.diff(g)
    if kind == "geometric":
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)
    else:
        np.testing.assert_allclose(steps, steps[0], rtol=1e-10)


@pytest.mark.parametrize("args", [(1.0, 2.0, 5, "geometric"), (1.0, 0.1, 5, "log")])
def test_time_grid_rejects_bad_input(args):
    with pytest.raises(ValueError):
        time_grid(*args)


def test_mean_and_gradient_forms_agree_on_a_gaussian():
    # p = N(mu, sig² I): q_s is Gaussian, m_s and E[∇log p] are known in closed form.
    mu, sig2, s, x = 0.7, 0.4, 0.3, jnp.array([0.2, -1.0])
    a, v = float(ou_alpha(s)), float(ou_sigma2(s))
    prec = 1 / sig2 + a**2 / v
    m = (mu / sig2 + a * x / v) / prec
    exact = -(x - a * mu) / (a**2 * sig2 + v)
    np.testing.assert_allclose(score_from_mean(x, m, s), exact, rtol=1e-5)
    np.testing.assert_allclose(score_from_gradient(-(m - mu) / sig2, s), exact, rtol=1e-5)


def _reverse(score_fn, T, s_min, K, n, factor_two=True, seed=0):
    grid = time_grid(T, s_min, K, "geometric")
    y = jax.random.normal(jax.random.key(seed), (n, 1))
    for k, key in enumerate(jax.random.split(jax.random.key(seed + 1), K)):
        s, h = grid[k], grid[k] - grid[k + 1]
        sc = score_fn(y, s)
        if not factor_two:  # the trap: a drift of (e^h - 1) ŝ instead of 2 (e^h - 1) ŝ
            sc = 0.5 * sc
        y = reverse_ou_step(key, y, sc, h)
    return np.asarray(y[:, 0])


def test_reverse_step_recovers_a_gaussian_and_the_factor_two_matters():
    # Exact score of the noised N(mu, sig²): the reverse process from N(0,1) at T = 4 must land
    # on p_{s_min} = N(a mu, a² sig² + 1 - a²). 20000 particles: MC sd of the mean 0.004, of the
    # sd 0.3%; the integrator's error on 40 geometric steps is a few 1e-3 (measured 2e-3).
    mu, sig = 3.0, 0.3
    score = lambda y, s: -(y - ou_alpha(s) * mu) / (ou_alpha(s) ** 2 * sig**2 + ou_sigma2(s))
    s_min = 0.01
    a = float(ou_alpha(s_min))
    sd = np.sqrt(a**2 * sig**2 + float(ou_sigma2(s_min)))
    y = _reverse(score, 4.0, s_min, 40, 20000)
    assert abs(y.mean() - a * mu) < 0.03
    assert abs(y.std() / sd - 1) < 0.05
    wrong = _reverse(score, 4.0, s_min, 40, 20000, factor_two=False)
    # Without the factor 2 the drift only half-contracts the noise: the spread is far too wide.
    assert wrong.std() / sd > 1.5, wrong.std() / sd
