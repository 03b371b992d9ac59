"""The adapter's population (ensemble-kernel) mode, with a trivial population sampler.

The sampler is independence Metropolis with proposal N(0, c² I) in whitened coordinates, one
proposal per particle per iteration (1 density evaluation each), plus one collective quantity:
the population's mean acceptance. It is exact for any target, so the tests can compare with
closed-form answers; what they test is the plumbing: the chains are the particles, the
preconditioner is pooled, per-particle divergences revert only those particles.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC

from scoresample.infer.base import ScoreSampleKernel
from scoresample.samplers.base import SamplerSpec


class IMHState(NamedTuple):
    position: jax.Array  # (N, d)
    logdensity: jax.Array  # (N,)


class IMHInfo(NamedTuple):
    diverging: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array
    mean_acceptance: jax.Array


def imh_spec(scale=1.5):
    def init(rng_key, position, logdensity_fn):
        return IMHState(position, jax.vmap(logdensity_fn)(position))

    def step(rng_key, state, logdensity_fn, step_size):
        n, d = state.position.shape
        k_prop, k_acc = jax.random.split(rng_key)
        y = scale * jax.random.normal(k_prop, (n, d))
        ld_y = jax.vmap(logdensity_fn)(y)
        log_q = lambda z: -0.5 * jnp.sum((z / scale) ** 2, -1)
        log_ratio = ld_y - state.logdensity + log_q(state.position) - log_q(y)
        # Deliberately naive: a NaN proposal is accepted, so the adapter must catch it.
        accept = (jnp.log(jax.random.uniform(k_acc, (n,))) < log_ratio) | jnp.isnan(log_ratio)
        new = IMHState(
            jnp.where(accept[:, None], y, state.position), jnp.where(accept, ld_y, state.logdensity)
        )
        info = IMHInfo(
            jnp.zeros(n, bool), jnp.zeros((), jnp.int32), jnp.ones((), jnp.int32), jnp.mean(accept)
        )
        return new, info

    return SamplerSpec(init, step, None, is_population=True, uses_gradients=False)


class PopulationIMH(ScoreSampleKernel):
    def _build_spec(self):
        return imh_spec()


def test_population_kernel_requires_vectorized():
    k = PopulationIMH(potential_fn=lambda x: 0.5 * jnp.sum(x**2))
    for method in ("sequential", "parallel"):
        mcmc = MCMC(
            k, num_warmup=5, num_samples=5, num_chains=4, chain_method=method, progress_bar=False
        )
        with pytest.raises(ValueError, match="vectorized"):
            mcmc.run(jax.random.key(0), init_params=jnp.zeros((4, 2)))


def test_population_samples_shifted_scaled_gaussian():
    # N(3, 2² I) in d = 3; the pooled preconditioner must whiten it for N(0, 1.5² I) proposals.
    mean, sd = 3.0, 2.0
    k = PopulationIMH(potential_fn=lambda x: 0.5 * jnp.sum(((x - mean) / sd) ** 2))
    n = 200
    mcmc = MCMC(
        k,
        num_warmup=200,
        num_samples=100,
        num_chains=n,
        chain_method="vectorized",
        progress_bar=False,
    )
    x0 = jax.random.normal(jax.random.key(1), (n, 3))
    mcmc.run(
        jax.random.key(0),
        init_params=x0,
        extra_fields=("num_density_evals", "num_grad_evals", "potential_energy"),
    )
    x = np.asarray(mcmc.get_samples(group_by_chain=True))
    assert x.shape == (n, 100, 3)
    pre = mcmc.last_state.adapt_state.precond
    np.testing.assert_allclose(pre.mean, mean, atol=0.2)
    # Draws: ESS ≥ 5000 per coordinate (acceptance ≈ 0.5+), so 4 MC sd ≈ 0.06 on the mean.
    flat = x.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(0), mean, atol=0.12)
    np.testing.assert_allclose(flat.std(0), sd, rtol=0.05)
    ef = mcmc.get_extra_fields(group_by_chain=True)
    assert ef["num_density_evals"].shape == (n, 100)
    assert np.all(ef["num_density_evals"] == 1) and np.all(ef["num_grad_evals"] == 0)


def test_population_divergence_reverts_only_the_bad_particles():
    # NaN where x[0] > 0: particles proposing there are marked diverging and stay put.
    pot = lambda x: jnp.where(x[0] > 0.0, jnp.nan, 0.5 * jnp.sum(x**2))
    k = PopulationIMH(potential_fn=pot, preconditioner="identity", adapt_preconditioner=False)
    n = 64
    mcmc = MCMC(
        k, num_warmup=0, num_samples=50, num_chains=n, chain_method="vectorized", progress_bar=False
    )
    mcmc.run(jax.random.key(3), init_params=-jnp.ones((n, 2)), extra_fields=("diverging",))
    x = np.asarray(mcmc.get_samples(group_by_chain=True))
    div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    assert np.all(x[..., 0] <= 0.0) and np.all(np.isfinite(x))
    # Some particles diverge on an iteration while others do not: the flag is per particle.
    per_iter = div.mean(axis=0)
    assert np.any((per_iter > 0) & (per_iter < 1))
