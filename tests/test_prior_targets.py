"""The targets with proper priors (scoresample/targets/priors.py): the NumPyro model's density is
the target's log density exactly (log Z unchanged), and flat vectors are in ravel order.

Float32 (conftest): densities of O(10²–10³) nats agree to rtol 1e-5 plus a few 1e-4 absolute.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import initialize_model, potential_energy

from scoresample.targets import (
    centred_eight_schools_model,
    eight_schools,
    forty_mode_mixture_prior,
    four_mode_mixture_prior,
    funnel,
    hierarchical_funnel,
    manywell,
    manywell_prior,
    unequal_mixture_2d,
    with_gaussian_prior,
)
from scoresample.targets.posteriors import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y


def model_logdensity(target, params):
    """−potential of the target's NumPyro model at unconstrained ``params`` (a dict)."""
    return -float(potential_energy(target.model, target.model_args, {}, params))


def spread_points(dim, n=5, scale=3.0, seed=0):
    """n points with coordinates N(0, scale²): inside and far outside the targets' modes."""
    return scale * np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


PRIOR_TARGETS = {
    "funnel10_prior3": lambda: with_gaussian_prior(funnel(10), 3.0),
    "mixture4_prior_mean": lambda: with_gaussian_prior(unequal_mixture_2d(), 8.0, [1.0, -2.0]),
    "mixture4_30_prior20": four_mode_mixture_prior,
    "mixture40_prior25": forty_mode_mixture_prior,
    "manywell8_prior3": lambda: manywell_prior(4),
}


@pytest.mark.parametrize("name", list(PRIOR_TARGETS))
def test_gaussian_prior_model_density_is_the_target(name):
    """Prior + factor = logdensity_fn with constant 0, so log Z is the target's."""
    target = PRIOR_TARGETS[name]()
    for x in spread_points(target.dim):
        got = model_logdensity(target, {target.site: jnp.asarray(x)})
        want = float(target.logdensity_fn(jnp.asarray(x)))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=5e-4)


def test_gaussian_prior_keeps_exact_answers_and_records_prior():
    base = manywell(16)
    target = manywell_prior()
    assert target.name == "manywell32_prior3"
    assert target.log_z == base.log_z and target.dim == 32
    assert target.extra["prior_scale"] == 3.0 and target.extra["prior_mean"] == 0.0
    assert target.extra["p_left"] == base.extra["p_left"]
    mix = four_mode_mixture_prior()
    np.testing.assert_allclose(mix.weights, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(np.abs(mix.component_means), 15.0)
    forty = forty_mode_mixture_prior()
    assert forty.component_means.shape == (40, 2) and np.all(np.abs(forty.component_means) <= 40)
    np.testing.assert_array_equal(forty.component_means, forty_mode_mixture_prior().component_means)
    assert forty.extra["prior_scale"] == 25.0 and forty.log_z == 0.0


def test_gaussian_prior_model_has_a_proper_prior_site():
    """initialize_model sees one Normal latent site of dimension d (no ImproperUniform)."""
    target = four_mode_mixture_prior()
    info, *_ = initialize_model(jax.random.key(0), target.model)
    assert set(info.z) == {"x"} and info.z["x"].shape == (2,)


def test_gaussian_prior_rejects_real_models_and_bad_scales():
    with pytest.raises(ValueError, match="one flat latent site"):
        with_gaussian_prior(eight_schools(), 1.0)
    with pytest.raises(ValueError, match="prior_scale"):
        with_gaussian_prior(funnel(4), 0.0)


def test_hierarchical_funnel_density_is_the_funnel_formula():
    target, exact = hierarchical_funnel(10), funnel(10)
    for flat in spread_points(10, n=6, scale=2.0, seed=1):
        params = {"v": jnp.asarray(flat[0]), "x": jnp.asarray(flat[1:])}
        want = float(exact.logdensity_fn(jnp.asarray(flat)))
        np.testing.assert_allclose(float(target.logdensity_fn(jnp.asarray(flat))), want, rtol=1e-5)
        np.testing.assert_allclose(model_logdensity(target, params), want, rtol=1e-5, atol=5e-4)
    assert target.log_z == 0.0 and target.sd[0] == 3.0
    np.testing.assert_allclose(target.extra["p_v_below_minus_3"], 0.158655, atol=1e-6)


def test_hierarchical_funnel_flat_order_is_ravel_order():
    """to_flat gives [v, x_1..x_{d-1}], the order of ravel_pytree on the model's sites (which
    is what a kernel's flat z holds)."""
    target = hierarchical_funnel(5)
    info, *_ = initialize_model(jax.random.key(3), target.model, model_args=target.model_args)
    flat, _ = ravel_pytree(info.z)
    np.testing.assert_allclose(target.flat_draws(info.z), np.asarray(flat))
    assert float(flat[0]) == float(info.z["v"])
    batch = {"v": np.zeros((2, 3)), "x": np.ones((2, 3, 4))}
    assert target.flat_draws(batch).shape == (2, 3, 5)


def test_hierarchical_funnel_exact_draws():
    """20 000 exact draws: sd(v) = 3 (MC sd 0.015) and P(v < -3) = 0.1587 (MC sd 0.0026)."""
    target = hierarchical_funnel(10)
    v = target.sample(np.random.default_rng(0), 20_000)[:, 0]
    assert abs(v.std() - 3.0) < 0.06
    assert abs(np.mean(v < -3.0) - target.extra["p_v_below_minus_3"]) < 0.011


def test_centred_eight_schools_is_the_noncentred_posterior():
    """Centred density at (mu, tau, theta) = non-centred density at (mu, tau, (theta-mu)/tau)
    minus 8 log tau (the Jacobian of theta = mu + tau theta_trans); both in the unconstrained
    space with the same log tau coordinate, so the log-Jacobians of tau cancel."""
    sigma, y = jnp.asarray(EIGHT_SCHOOLS_SIGMA), jnp.asarray(EIGHT_SCHOOLS_Y)
    noncentred = eight_schools()
    rng = np.random.default_rng(2)
    for _ in range(4):
        mu, log_tau = rng.normal(0, 3), rng.normal(1, 1)
        theta = rng.normal(mu, 5, size=8).astype(np.float32)
        params = {"mu": jnp.asarray(mu), "tau": jnp.asarray(log_tau), "theta": jnp.asarray(theta)}
        centred = -float(potential_energy(centred_eight_schools_model, (sigma, y), {}, params))
        trans = (theta - mu) / np.exp(log_tau)
        flat = jnp.asarray(np.concatenate([[mu, log_tau], trans]), jnp.float32)
        want = float(noncentred.logdensity_fn(flat)) - 8 * log_tau
        np.testing.assert_allclose(centred, want, rtol=1e-5, atol=1e-3)
