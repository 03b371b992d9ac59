"""Targets written as a modeller would: proper priors on every latent site, posterior still exact.

The benchmark targets of the other modules are NumPyro models with an ``ImproperUniform`` site and
a ``numpyro.factor`` holding the whole log density: a kernel that starts its warmup from the
model's prior (issue 12) finds no prior there. The targets here keep the exact answers and give
the model a proper prior:

- ``with_gaussian_prior(target, s, m)``: x ~ N(m, s² I) and a factor log γ(x) − log N(x; m, s² I).
  The model's joint density is γ(x) itself, so the posterior, its moments, mode weights and log Z
  are those of ``target``. Likelihood tempering π_β ∝ N(x; m, s² I)^(1−β) γ(x)^β starts at the
  prior and ends at the target.
- ``hierarchical_funnel``: Neal's funnel as the centred hierarchical model v ~ N(0, 3²),
  x | v ~ N(0, e^v I), with no observations: posterior = prior, log Z = 0.
- ``four_mode_mixture_prior``, ``forty_mode_mixture_prior``, ``manywell_prior``: multimodal
  targets under Gaussian priors wide enough to cover every mode.
- ``centred_eight_schools_model``: the centred parametrisation of posteriordb's eight schools
  (the same posterior as ``eight_schools_model``, the non-centred one).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy.special import ndtr

from scoresample.targets.base import Target
from scoresample.targets.funnel import funnel
from scoresample.targets.manywell import manywell
from scoresample.targets.mixtures import gaussian_mixture

FUNNEL_V_SCALE = 3.0  # sd of v in Neal (2003) §8 and ALGORITHMS.md's Funnel-10


def gaussian_log_prior(x, prior_mean, prior_scale):
    """log N(x; m, s² I) summed over the last axis (m scalar or (d,), s > 0 scalar)."""
    m = jnp.asarray(prior_mean, x.dtype)
    s = jnp.asarray(prior_scale, x.dtype)
    z = (x - m) / s
    return jnp.sum(-0.5 * z**2 - jnp.log(s) - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def _check_flat_target(target: Target) -> None:
    """``with_gaussian_prior`` needs a target whose model is one flat, unconstrained site."""
    if target.to_flat is not None or target.model_args or not target.site:
        raise ValueError(
            f"with_gaussian_prior needs a target with one flat latent site and no model "
            f"arguments (the factor-based targets); {target.name!r} is a real model."
        )


def with_gaussian_prior(target: Target, prior_scale: float, prior_mean=0.0) -> Target:
    """``target`` with the model x ~ N(prior_mean, prior_scale² I) plus the factor
    ``"likelihood"`` = log γ(x) − log N(x; prior_mean, prior_scale² I).

    The prior and the factor add up to ``target.logdensity_fn`` exactly, so every exact answer
    (mean, sd, weights, log_z, sample, logdensity_fn) is unchanged; only ``model``, ``name`` and
    ``extra["prior_mean"]``, ``extra["prior_scale"]`` differ. prior_mean: scalar or (d,).
    """
    _check_flat_target(target)
    if not float(prior_scale) > 0.0:
        raise ValueError(f"prior_scale must be positive, got {prior_scale!r}")
    dim, site, logdensity_fn = target.dim, target.site, target.logdensity_fn
    mean = np.broadcast_to(np.asarray(prior_mean, np.float64), (dim,)).copy()
    scale = float(prior_scale)

    def model():
        loc = jnp.asarray(mean)
        x = numpyro.sample(site, dist.Normal(loc, scale).expand([dim]).to_event(1))
        numpyro.factor("likelihood", logdensity_fn(x) - gaussian_log_prior(x, loc, scale))

    extra = {**target.extra, "prior_mean": prior_mean, "prior_scale": scale}
    return dataclasses.replace(
        target, name=f"{target.name}_prior{scale:g}", model=model, model_args=(), extra=extra
    )


def hierarchical_funnel_model(dim: int = 10):
    """Neal's funnel as a centred hierarchical model: v ~ N(0, 3²), x | v ~ N(0, e^v I_{dim−1}).

    No observed site: the posterior is this prior (log Z = 0). ``dim`` counts v.
    """
    v = numpyro.sample("v", dist.Normal(0.0, FUNNEL_V_SCALE))
    scale = jnp.exp(0.5 * v)  # sd e^{v/2}: variance e^v, as in targets.funnel
    numpyro.sample("x", dist.Normal(0.0, scale).expand([dim - 1]).to_event(1))


def funnel_flat(samples: dict) -> np.ndarray:
    """{"v": (...), "x": (..., d−1)} -> (..., d) = [v, x_1, ..., x_{d−1}]: the order of
    ``ravel_pytree`` (it sorts dict keys, "v" < "x"), so also the order a kernel's z has."""
    v = np.asarray(samples["v"])[..., None]
    return np.concatenate([v, np.asarray(samples["x"])], axis=-1)


def hierarchical_funnel(dim: int = 10) -> Target:
    """The funnel of ``hierarchical_funnel_model`` with its exact answers (those of
    ``targets.funnel``: the same density on [v, x]). extra: ``v_scale`` (3) and
    ``p_v_below_minus_3`` = Φ(−1) = 0.1587, the mass in the neck below v = −3."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    exact = funnel(dim, FUNNEL_V_SCALE)

    def logdensity_fn(flat):
        v, x = flat[0], flat[1:]
        lv = dist.Normal(0.0, FUNNEL_V_SCALE).log_prob(v)
        return lv + jnp.sum(dist.Normal(0.0, jnp.exp(0.5 * v)).log_prob(x))

    extra = {"v_scale": FUNNEL_V_SCALE, "p_v_below_minus_3": float(ndtr(-1.0))}
    return dataclasses.replace(
        exact,
        name=f"hierarchical_funnel{dim}",
        logdensity_fn=logdensity_fn,
        model=hierarchical_funnel_model,
        model_args=(dim,),
        site="",
        extra=extra,
        to_flat=funnel_flat,
    )


def four_mode_mixture_prior(prior_scale: float = 20.0) -> Target:
    """Four unit-sd modes at (±15, ±15) (the corners of a 30 × 30 square centred at 0), weights
    0.1, 0.2, 0.3, 0.4, under N(0, 20² I). Neighbouring modes are 30 sds apart (barrier ≈ 110
    nats); each mean sits 0.75 prior sds from 0 per coordinate, so the prior covers all four."""
    c = 15.0
    means = np.array([[-c, -c], [c, -c], [-c, c], [c, c]])
    mix = gaussian_mixture(means, 1.0, [0.1, 0.2, 0.3, 0.4], name="mixture4_30")
    return with_gaussian_prior(mix, prior_scale)


def forty_mode_means(seed: int = 0, num_modes: int = 40, half_width: float = 40.0):
    """Means drawn uniformly in [−40, 40]² with ``np.random.default_rng(seed)`` (fixed)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-half_width, half_width, size=(num_modes, 2))


def forty_mode_mixture_prior(seed: int = 0, prior_scale: float = 25.0) -> Target:
    """ALGORITHMS.md's 40-mode mixture (equal weights, unit sds, means uniform in [−40, 40]²)
    under N(0, 25² I): a corner mean at 40 is 1.6 prior sds out, so every mode has prior mass."""
    means = forty_mode_means(seed)
    mix = gaussian_mixture(means, 1.0, np.ones(len(means)), name=f"mixture40_seed{seed}")
    return with_gaussian_prior(mix, prior_scale)


def manywell_prior(num_pairs: int = 16, prior_scale: float = 3.0) -> Target:
    """ManyWell-(2·num_pairs) under N(0, 3² I). Why 3 is wide enough: each well coordinate a sits
    near −1.77 or +1.69 (the minima of a⁴ − 6a² + 0.5a) with sd ≈ 1/√(12a² − 12) ≈ 0.2, and each
    b is N(0, 1); so every well is within 0.6 prior sds of 0 and the prior is 3× wider than the
    widest coordinate, while the a⁴ term keeps the likelihood factor bounded above."""
    return with_gaussian_prior(manywell(num_pairs), prior_scale)


def centred_eight_schools_model(sigma, y=None):
    """Eight schools, centred: mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_j ~ N(mu, tau),
    y_j ~ N(theta_j, sigma_j). The joint law of (mu, tau, theta) is that of posteriordb's
    eight_schools_noncentered (``targets.eight_schools_model``), so is its posterior; only the
    geometry a sampler sees differs (the funnel between tau and theta)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)
