"""The warmup reference (issue 12): the model's prior, Pathfinder fits pooled over distinct modes,
one adaptation shared by vectorized chains, and a warning when the reference is local."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer import MCMC
from numpyro.infer.initialization import init_to_value
from numpyro.infer.util import initialize_model

import scoresample
from scoresample.adapt.preconditioner import pool_gaussians
from scoresample.adapt.reference import distinct_mode_weights, improper_sites, model_prior
from scoresample.diagnostics import mode_weights
from scoresample.infer.base import LocalReferenceWarning
from scoresample.targets.priors import four_mode_mixture_prior


def _constrained_model():
    s = numpyro.sample("s", dist.LogNormal(0.5, 0.7))
    numpyro.sample("p", dist.Beta(2.0, 3.0))
    numpyro.sample("y", dist.Normal(0.0, s), obs=1.0)


def test_model_prior_draws_and_density_are_the_unconstrained_prior():
    info, *_ = initialize_model(jax.random.key(0), _constrained_model)
    _, unravel = ravel_pytree(info[0])
    prior = model_prior(_constrained_model, (), {}, unravel, 2)
    z = jax.vmap(prior.sample)(jax.random.split(jax.random.key(1), 20000))
    # Flat order (p, s): logit p and log s. log s ~ N(0.5, 0.7) exactly.
    log_s = np.asarray(z[:, 1])
    assert abs(log_s.mean() - 0.5) < 4 * 0.7 / np.sqrt(20000)
    assert abs(log_s.std() - 0.7) < 0.02
    # The density includes the Jacobians: it integrates to 1 (quadrature on a grid).
    g = np.linspace(-12, 12, 401)
    pts = jnp.asarray(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))
    total = np.sum(np.exp(jax.vmap(prior.logdensity)(pts))) * (g[1] - g[0]) ** 2
    assert abs(total - 1.0) < 1e-3


def test_improper_sites_are_found():
    def model():
        numpyro.sample("a", dist.Normal(0, 1))
        numpyro.sample("b", dist.ImproperUniform(dist.constraints.real, (), (3,)))

    assert improper_sites(model) == ["b"]
    assert improper_sites(_constrained_model) == []


def test_pooling_counts_each_distinct_mode_once():
    means = jnp.array([[-10.0], [-10.1], [-9.9], [10.0]])
    covs = jnp.ones((4, 1, 1))
    w = distinct_mode_weights(means, covs, jnp.array([True, True, True, True]))
    np.testing.assert_allclose(w, [1 / 3, 1 / 3, 1 / 3, 1.0], rtol=1e-6)
    m, c = pool_gaussians(means, covs, w)
    # Two modes with equal total weight at about ±10: mean ≈ 0, variance ≈ 1 + 100.
    assert abs(float(m[0])) < 0.05 and abs(float(c[0, 0]) - 101.0) < 0.1


def _one_mode_start(target, num_chains):
    x = np.tile(target.component_means[0], (num_chains, 1))
    return init_to_value(values={"x": x[0]}), {"x": jnp.asarray(x)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(
            "RDMC",
            marks=pytest.mark.xfail(
                strict=True,
                reason="measured max error 0.069 (weights 0.12/0.24/0.31/0.33): the shared "
                "reference covers the 4 modes, but RDMC's default score estimate flattens unequal "
                "weights (issue 14 measures 0.090 on a 2-mode d = 8 mixture)",
            ),
        ),
        "MultCDiff",
    ],
)
def test_mixture_under_prior_every_chain_started_in_one_mode(kernel):
    """4 unequal modes (0.1 .. 0.4) 30 apart under a N(0, 20²) prior; every chain starts in the
    lightest mode. The draws are (nearly) independent, so with 8 x 100 draws the sd of a weight
    estimate is at most sqrt(0.25/800) = 0.018: tolerance 0.05 (about 3 sd)."""
    target = four_mode_mixture_prior()
    strategy, init = _one_mode_start(target, 8)
    mcmc = MCMC(
        getattr(scoresample, kernel)(target.model, init_strategy=strategy),
        num_warmup=50,
        num_samples=100,
        num_chains=8,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), init_params=init)
    w = mode_weights(np.asarray(mcmc.get_samples()["x"]), target.component_means)
    assert np.max(np.abs(w - target.weights)) < 0.05, w


def test_vectorized_chains_share_one_preconditioner():
    target = four_mode_mixture_prior()
    mcmc = MCMC(
        scoresample.RandomizedMidpoint(target.model, preconditioner="pathfinder"),
        num_warmup=10,  # below MIN_WARMUP_FOR_WINDOWS: the preconditioner is the reference
        num_samples=5,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(1))
    precond = mcmc.last_state.adapt_state.precond
    np.testing.assert_allclose(precond.mean, np.broadcast_to(precond.mean[0], precond.mean.shape))
    # The shared reference covers the four modes (±15 in each coordinate), not one of them.
    assert np.all(np.abs(np.diagonal(precond.scale[0])) > 5.0)


def test_local_reference_warns_and_prior_reference_does_not():
    target = four_mode_mixture_prior()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LocalReferenceWarning)
        scoresample.RDMC(target.model).init(jax.random.key(0), 2, None, (), {})
    improper = scoresample.targets.unequal_mixture_2d()
    with pytest.warns(LocalReferenceWarning, match="local"):
        scoresample.RDMC(improper.model).init(jax.random.key(0), 2, None, (), {})
    with pytest.warns(LocalReferenceWarning, match="laplace"):
        scoresample.RDMC(target.model, preconditioner="laplace").init(
            jax.random.key(0), 2, None, (), {}
        )
    with pytest.raises(ValueError, match="reference='prior'"):
        scoresample.RDMC(improper.model, reference="prior").init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="reference_scale"):
        scoresample.RDMC(target.model, reference_scale=-1.0)
