"""Neal's funnel (Neal 2003, "Slice sampling", Ann. Statist. §8), a target with log Z = 0.

x_0 ~ N(0, 3²) and x_i | x_0 ~ N(0, e^{x_0}) for i = 1..d-1: the conditional *variance* is
e^{x_0} (ALGORITHMS.md warns that some public reference samplers use e^{-x_0}). The density is
normalised, so log Z = 0.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from scoresample.targets.base import Target


def funnel(dim: int = 10, scale: float = 3.0) -> Target:
    """Neal's funnel in ``dim`` dimensions; x_0 sd ``scale`` (3), x_i variance e^{x_0}."""
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got {dim!r}")

    def logdensity_fn(x):
        v, rest = x[0], x[1:]
        lv = -0.5 * (v / scale) ** 2 - jnp.log(scale) - 0.5 * jnp.log(2 * jnp.pi)
        lr = -0.5 * jnp.sum(rest**2) * jnp.exp(-v) - 0.5 * (dim - 1) * (v + jnp.log(2 * jnp.pi))
        return lv + lr

    def model():
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real_vector, (), (dim,)))
        numpyro.factor("funnel_logdensity", logdensity_fn(x))

    def sample(rng: np.random.Generator, n: int):
        v = scale * rng.standard_normal(n)
        rest = np.exp(0.5 * v)[:, None] * rng.standard_normal((n, dim - 1))
        return np.concatenate([v[:, None], rest], axis=1)

    # E[x_i²] = E[e^{x_0}] = e^{scale²/2} for i >= 1.
    sd = np.concatenate([[scale], np.full(dim - 1, np.exp(scale**2 / 4))])
    return Target(
        f"funnel{dim}",
        dim,
        logdensity_fn,
        model,
        mean=np.zeros(dim),
        sd=sd,
        cov=np.diag(sd**2),
        log_z=0.0,
        sample=sample,
    )
