"""SK-ROCK (Abdulle, Almuslimani & Vilmart 2018) on the OU process dY = -kY dt + sqrt(2) dW,
whose solution is known in closed form: Y_t = e^{-kt} Y_0 + sqrt(2) ∫ e^{-k(t-s)} dW_s, with
stationary law N(0, 1/k).

Tolerances: strong errors are root-mean-square over 4000 paths (relative MC error ≈ 1/sqrt(2·4000)
≈ 1.1% per point), so the fitted log-log slope is accurate to ≈ 0.02; stationary variances are
averaged over 4000 paths × 200 steps after burn-in (relative MC error < 2%; the steps are
nearly uncorrelated at Δk = 30, where the amplification A ≈ -0.89 alternates in sign).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scoresample.diffusion.paths import friction_schedule, lambda_grid, lambda_schedule
from scoresample.diffusion.skrock import (
    _linear_amplification,
    skrock_coefficients,
    skrock_step,
    stability_bound,
)


def test_stability_bound_matches_the_papers_formula():
    # Abdulle et al. (2018): length of the stability interval ≈ (2 - 4η/3) s².
    for s in (1, 2, 5, 10):
        expected = (2 - 4 * 0.05 / 3) * s**2
        assert abs(stability_bound(s, 0.05) - expected) / expected < 0.04, s
    assert stability_bound(1, 0.0) == pytest.approx(2.0, abs=1e-3)  # Euler–Maruyama


def test_coefficients_are_consistent():
    # Each stage is an affine combination (ν_j + κ_j = 1), and one step of size Δ on a
    # zero drift adds the Brownian increment with the exact variance (A = 1, B = 1 at p = 0).
    c = skrock_coefficients(5, 0.05)
    np.testing.assert_allclose(c.nu + c.kappa, 1.0)
    a, b = _linear_amplification(c, 0.0)
    assert a == pytest.approx(1.0) and b == pytest.approx(1.0)
    # First order in the drift: A(p) = 1 - p + O(p²).
    a_small, _ = _linear_amplification(c, 1e-4)
    assert (1 - a_small) / 1e-4 == pytest.approx(1.0, rel=1e-3)


def _reference_and_coarse(key, k, t_end, n_coarse_list, n_fine, num_paths, y0=1.0):
    """OU paths exact to O(δ^{3/2}) on a fine grid, and SK-ROCK on coarse grids (same path)."""
    dt_fine = t_end / n_fine
    dw = jnp.sqrt(dt_fine) * jax.random.normal(key, (num_paths, n_fine))
    decay = np.exp(-k * dt_fine)

    def exact_body(y, dw_i):
        return decay * y + np.sqrt(2.0) * np.exp(-0.5 * k * dt_fine) * dw_i, None

    y_ref, _ = jax.lax.scan(exact_body, jnp.full(num_paths, y0), dw.T)
    out = {}
    for n in n_coarse_list:
        step = t_end / n
        dw_c = dw.reshape(num_paths, n, n_fine // n).sum(-1)

        def body(y, dw_j, step=step):
            ynew = jax.vmap(
                lambda yi, wi: skrock_step(
                    None, yi[None], lambda v: -k * v, step, noise=(wi / jnp.sqrt(step))[None]
                )[0]
            )(y, dw_j)
            return ynew, None

        y_c, _ = jax.lax.scan(body, jnp.full(num_paths, y0), dw_c.T)
        out[n] = float(jnp.sqrt(jnp.mean((y_c - y_ref) ** 2)))
    return out


def test_strong_order_on_ou():
    errors = _reference_and_coarse(
        jax.random.key(0),
        k=1.0,
        t_end=1.0,
        n_coarse_list=(4, 8, 16, 32),
        n_fine=1024,
        num_paths=4000,
    )
    n = np.array(sorted(errors))
    e = np.array([errors[i] for i in n])
    slope = np.polyfit(np.log(1.0 / n), np.log(e), 1)[0]  # error ∝ Δ^slope
    # Additive noise: SK-ROCK is strongly convergent; we measure order ≈ 1 (weak order 1 is the
    # design; strong order 1/2 is the general-noise guarantee). Require at least 0.8.
    assert slope > 0.8, (slope, errors)
    assert np.all(np.diff(e) < 0), errors


def test_stable_where_euler_maruyama_diverges():
    k, step, n_steps, paths = 100.0, 0.3, 400, 4000  # Δk = 30: inside 48.5, far outside EM's 2
    key = jax.random.key(1)
    noise = jax.random.normal(key, (n_steps, paths))

    def run(stages):
        def body(y, xi):
            ynew = jax.vmap(
                lambda yi, ni: skrock_step(
                    None, yi[None], lambda v: -k * v, step, stages=stages, noise=ni[None]
                )[0]
            )(y, xi)
            return ynew, ynew

        _, ys = jax.lax.scan(body, jnp.zeros(paths), noise)
        return np.asarray(ys)

    em = run(1)
    assert not np.all(np.isfinite(em[-1])) or np.max(np.abs(em[-1])) > 1e10
    ys = run(5)
    assert np.all(np.isfinite(ys)) and np.max(np.abs(ys)) < 1.0
    # The stationary law is centred (exact mean), with the variance 2Δ B²/(1 - A²) of the
    # scheme's own linear recursion: that checks every stage coefficient at Δk = 30. (The variance
    # of a stiff mode is not 1/k there: SK-ROCK damps it; 1/k is recovered as Δk → 0, below.)
    assert abs(ys[200:].mean()) < 4 * np.sqrt(predicted_var(k * step, step) / (200 * paths))
    assert ys[200:].var() == pytest.approx(predicted_var(k * step, step), rel=0.05)
    assert k * predicted_var(0.1, 0.1 / k) == pytest.approx(1.0, abs=0.01)


def predicted_var(p, step):
    a, b = _linear_amplification(skrock_coefficients(5, 0.05), p)
    return 2 * step * b**2 / (1 - a**2)


def test_lambda_and_friction_schedules():
    lam = lambda_grid(10, "sin2", 0.01)
    assert lam[0] == pytest.approx(0.01) and lam[-1] == pytest.approx(0.99)
    assert np.all(np.diff(lam) > 0)
    lin = np.asarray(lambda_schedule(np.linspace(0, 1, 5), "linear", 0.01))
    np.testing.assert_allclose(np.diff(lin), np.diff(lin)[0], rtol=1e-5)
    # sin² is slower than linear at both ends.
    assert lam[1] - lam[0] < (0.98 / 10) and lam[-1] - lam[-2] < (0.98 / 10)
    f = np.asarray(friction_schedule(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), "ramp", 0.1, 0.5))
    np.testing.assert_allclose(f, [0.1, 0.1, 0.1, 0.3, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="schedule"):
        lambda_schedule(0.5, "cubic")
    with pytest.raises(ValueError, match="lambda_min"):
        lambda_grid(10, "sin2", 0.7)
    with pytest.raises(ValueError, match="stages"):
        skrock_coefficients(0)
