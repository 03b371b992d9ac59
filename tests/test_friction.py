"""The friction rule of kinetic Langevin samplers (scoresample.adapt.friction) and the tuned
friction and step size of RandomizedMidpoint, each against its closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC
from scipy.linalg import expm

import scoresample
from scoresample.adapt.friction import friction_from_variance, whitened_mean_variance
from scoresample.adapt.preconditioner import Preconditioner


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
def test_integrated_autocorrelation_of_x_squared(gamma):
    """The rule's premise: for kinetic Langevin on N(0, σ²), ∫ρ_{x²} = γσ² + 1/γ over the line
    (quadrature of the exact autocorrelation ρ_x(t) = [exp(At)]_00, ρ_{x²} = ρ_x²)."""
    sigma = 1.7
    a = np.array([[0.0, 1.0], [-1.0 / sigma**2, -gamma]])
    t = np.linspace(0.0, 80.0, 16001)
    rho = np.array([expm(a * s)[0, 0] for s in t])
    integral = 2.0 * np.trapezoid(rho**2, t)
    np.testing.assert_allclose(integral, gamma * sigma**2 + 1.0 / gamma, rtol=1e-3)
    assert abs(2.0 * np.trapezoid(rho, t) - 2 * gamma * sigma**2) < 1e-3 * gamma * sigma**2 + 1e-3


@pytest.mark.parametrize("dense", [True, False])
def test_whitened_mean_variance(dense):
    rng = np.random.default_rng(0)
    d = 4
    m = rng.normal(size=(d, d))
    cov = m @ m.T + np.eye(d)
    if dense:
        b = rng.normal(size=(d, d))
        scale = np.linalg.cholesky(b @ b.T + np.eye(d))
        w = np.linalg.solve(scale, np.linalg.solve(scale, cov).T)
    else:
        scale = rng.uniform(0.5, 2.0, d)
        w = cov / np.outer(scale, scale)
    precond = Preconditioner(jnp.zeros(d), jnp.asarray(scale))
    got = whitened_mean_variance(precond, jnp.asarray(cov))
    np.testing.assert_allclose(got, np.trace(w) / d, rtol=1e-5)
    np.testing.assert_allclose(friction_from_variance(4.0), 0.5)


SD = np.array([0.5, 1.0, 2.0, 4.0])


def one_step_acceptance(h, sd, num=200_000, seed=0):
    """E min(1, e^{-ΔH}) of one velocity-Verlet step of size h from stationarity on N(0, sd²)
    with unit mass: the closed-form linear map of each coordinate, Monte Carlo over (x, p)."""
    rng = np.random.default_rng(seed)
    w2 = 1.0 / sd**2
    x = rng.normal(size=(num, sd.size)) * sd
    p = rng.normal(size=(num, sd.size))
    p_half = p - 0.5 * h * w2 * x
    x_new = x + h * p_half
    p_new = p_half - 0.5 * h * w2 * x_new
    dh = 0.5 * np.sum(w2 * (x_new**2 - x**2) + p_new**2 - p**2, axis=1)
    return np.mean(np.minimum(1.0, np.exp(-dh)))


@pytest.mark.slow
def test_tuned_friction_and_step_on_anisotropic_gaussian():
    """Fixed identity preconditioner, so the sampler sees the scales SD. Friction: the rule's
    1/RMS(SD) = 0.434; the last window pools 4 chains x ~470 draws (ESS of x² >~ 500 for the
    widest coordinate, whose variance dominates), so the estimate's sd is <~ 3%: 10% allowed.
    Step: the one-step acceptance at the tuned h is the target 0.97 (dual averaging's average
    over the terminal buffer; measured |error| < 0.01, allowed 0.02)."""
    potential = lambda p: 0.5 * jnp.sum((p["x"] / SD) ** 2)
    kernel = scoresample.RandomizedMidpoint(
        potential_fn=potential, preconditioner="identity", adapt_preconditioner=False
    )
    mcmc = MCMC(
        kernel,
        num_warmup=1000,
        num_samples=10,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), init_params={"x": jnp.zeros((4, SD.size))})
    adapt = mcmc.last_state.adapt_state
    friction = float(np.asarray(adapt.friction)[0])
    np.testing.assert_allclose(friction, 1.0 / np.sqrt(np.mean(SD**2)), rtol=0.10)
    step = float(np.asarray(adapt.step_size)[0])
    assert abs(one_step_acceptance(step, SD) - kernel._target_accept) < 0.02, step


def test_fixed_friction_is_not_tuned():
    """friction=<number> is the papers' fixed γ: the spec declares nothing to tune."""
    fixed = scoresample.RandomizedMidpoint(potential_fn=lambda p: 0.0, friction=2.0)
    assert fixed._build_spec().friction is None
    assert scoresample.RandomizedMidpoint(potential_fn=lambda p: 0.0)._build_spec().friction == 1.0
    with pytest.raises(ValueError, match="friction"):
        scoresample.RandomizedMidpoint(potential_fn=lambda p: 0.0, friction=-1.0)
