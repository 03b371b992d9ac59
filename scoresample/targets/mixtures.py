"""Gaussian mixtures with exact mode weights, the multimodal benchmark targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from scoresample.targets.base import Target


def gaussian_mixture(means, sds, weights, name="mixture") -> Target:
    """Mixture of isotropic Gaussians N(means[k], sds[k]² I) with weights (normalised, log Z = 0).

    Components are assigned by nearest mean (see ``scoresample.diagnostics.mode_weights``);
    with separations of many sds that assignment is exact up to a negligible tail mass.
    """
    means = np.asarray(means, np.float64)
    k, d = means.shape
    sds = np.broadcast_to(np.asarray(sds, np.float64), (k,)).copy()
    weights = np.asarray(weights, np.float64) / np.sum(weights)
    mj, sj, lwj = jnp.asarray(means), jnp.asarray(sds), jnp.log(jnp.asarray(weights))

    def logdensity_fn(x):
        m, s, lw = mj.astype(x.dtype), sj.astype(x.dtype), lwj.astype(x.dtype)
        r2 = jnp.sum((x - m) ** 2, axis=-1)
        comp = lw - 0.5 * r2 / s**2 - d * jnp.log(s) - 0.5 * d * jnp.log(2 * jnp.pi)
        return jax.scipy.special.logsumexp(comp)

    # A factor-based model keeps the density exact and the latent site flat and unconstrained.
    def model():
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real_vector, (), (d,)))
        numpyro.factor("mixture_logdensity", logdensity_fn(x))

    cov_within = np.einsum("k,ij->ij", weights * sds**2, np.eye(d))
    mean = weights @ means
    centred = means - mean
    cov = cov_within + (centred.T * weights) @ centred

    def sample(rng: np.random.Generator, n: int):
        comp = rng.choice(k, size=n, p=weights)
        return means[comp] + sds[comp, None] * rng.standard_normal((n, d))

    return Target(
        name,
        d,
        logdensity_fn,
        model,
        mean=mean,
        sd=np.sqrt(np.diag(cov)),
        cov=cov,
        log_z=0.0,
        sample=sample,
        weights=weights,
        component_means=means,
        extra={"sds": sds},
    )


def unequal_mixture_2d() -> Target:
    """Four well-separated modes at the corners of a square of side 10 (sd 0.5 → barrier ≈ 50
    nats), weights 0.1, 0.2, 0.3, 0.4: the test case of ALGORITHMS.md."""
    means = np.array([[-5.0, -5.0], [5.0, -5.0], [-5.0, 5.0], [5.0, 5.0]])
    return gaussian_mixture(means, 0.5, [0.1, 0.2, 0.3, 0.4], name="mixture4_2d")


def two_mode_mixture(dim: int = 8, separation: float = 8.0, weights=(1 / 3, 2 / 3)) -> Target:
    """Two unit-sd modes at ±(separation/2)/sqrt(d)·1 (distance ``separation``), unequal weights."""
    u = np.ones(dim) / np.sqrt(dim)
    means = np.stack([-0.5 * separation * u, 0.5 * separation * u])
    return gaussian_mixture(means, 1.0, weights, name=f"mixture2_{dim}d")
