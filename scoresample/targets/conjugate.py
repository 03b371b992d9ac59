"""Two small conjugate models with exact posteriors, for simulation-based calibration.

* normal–normal: θ ~ N(μ0, τ0²), y_i | θ ~ N(θ, σ²), i = 1..n; the posterior is
  N(m, v) with 1/v = 1/τ0² + n/σ², m = v (μ0/τ0² + Σ y_i / σ²).
* beta–binomial: p ~ Beta(a, b), k | p ~ Binomial(N, p); the posterior is Beta(a + k, b + N - k).
  The sampler sees p on the logit scale (NumPyro's unconstrained space), so this one also tests
  the constrained-to-unconstrained handling.

Each is a :class:`ConjugateModel`: a NumPyro ``model(data)``, ``simulate(rng)`` drawing
(θ, data) from the joint, and ``posterior(data)``, the exact posterior as a frozen scipy
distribution of the scalar parameter ``site``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy import stats

__all__ = ["ConjugateModel", "beta_binomial", "normal_normal"]


@dataclasses.dataclass
class ConjugateModel:
    """name; model(data) (NumPyro); site: the scalar latent parameter; simulate(rng) ->
    (theta, data) from the prior predictive; posterior(data) -> frozen scipy distribution."""

    name: str
    model: Callable
    site: str
    simulate: Callable
    posterior: Callable
    extra: dict = dataclasses.field(default_factory=dict)


def normal_normal(
    prior_mean: float = 0.0, prior_sd: float = 1.0, noise_sd: float = 1.0, num_obs: int = 5
) -> ConjugateModel:
    """θ ~ N(prior_mean, prior_sd²), num_obs observations y ~ N(θ, noise_sd²)."""

    def model(y):
        theta = numpyro.sample("theta", dist.Normal(prior_mean, prior_sd))
        numpyro.sample("y", dist.Normal(theta, noise_sd), obs=y)

    def simulate(rng: np.random.Generator):
        theta = rng.normal(prior_mean, prior_sd)
        y = rng.normal(theta, noise_sd, num_obs).astype(np.float32)
        return theta, y

    def posterior(y):
        prec = 1.0 / prior_sd**2 + len(y) / noise_sd**2
        mean = (prior_mean / prior_sd**2 + np.sum(np.asarray(y, np.float64)) / noise_sd**2) / prec
        return stats.norm(mean, np.sqrt(1.0 / prec))

    return ConjugateModel(
        "normal_normal",
        model,
        "theta",
        simulate,
        posterior,
        {"prior_mean": prior_mean, "prior_sd": prior_sd, "noise_sd": noise_sd, "n": num_obs},
    )


def beta_binomial(a: float = 2.0, b: float = 3.0, num_trials: int = 20) -> ConjugateModel:
    """p ~ Beta(a, b), k ~ Binomial(num_trials, p)."""

    def model(k):
        p = numpyro.sample("p", dist.Beta(a, b))
        numpyro.sample("k", dist.Binomial(num_trials, probs=p), obs=k)

    def simulate(rng: np.random.Generator):
        p = rng.beta(a, b)
        k = np.asarray(rng.binomial(num_trials, p), np.float32)
        return p, k

    def posterior(k):
        k = float(np.asarray(k))
        return stats.beta(a + k, b + num_trials - k)

    return ConjugateModel(
        "beta_binomial", model, "p", simulate, posterior, {"a": a, "b": b, "n": num_trials}
    )
