"""Where warmup starts: the model's prior, and local Gaussian fits by multi-path Pathfinder.

A hierarchical model's MAP sits in its funnel's neck and a multimodal model's MAP is one mode, so
a reference built at ONE MAP is local. The model's prior says where the mass can be:

* :func:`model_prior` draws from the prior of a NumPyro model whose latent sites are all proper,
  maps the draws to the unconstrained space the kernels run in (the ``biject_to(support)``
  transforms ``initialize_model`` uses) and gives the prior's log density there, Jacobian
  included (ALGORITHMS.md §6), so annealing kernels can use the prior as q0.
* :func:`pathfinder_fit` runs BlackJAX's single-path Pathfinder (Zhang, Carpenter, Gelman &
  Vehtari 2022, JMLR) from one start: the ELBO-best Gaussian along the L-BFGS path, which in a
  funnel is an early, wide iterate rather than the neck.
* :func:`distinct_mode_weights` and :func:`~scoresample.adapt.preconditioner.pool_gaussians`
  combine the fits of many dispersed starts (prior draws) into one Gaussian covering every mode
  found, each distinct mode counted once whatever number of paths reached it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from blackjax.optimizers.lbfgs import lbfgs_inverse_hessian_formula_1
from blackjax.vi import pathfinder
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.util import potential_energy

from scoresample.adapt.preconditioner import (
    Preconditioner,
    log_det_scale,
    to_position,
    to_whitened,
)
from scoresample.diffusion.annealing import Reference

# Pathfinder settings. maxiter: L-BFGS iterations per path (BlackJAX's default is 30; 100 lets a
# path started at a prior draw far out in a regression's tails reach the posterior). ELBO draws:
# the paper uses 5 per iterate (Zhang et al. 2022, §3); 16 makes the ELBO-best choice less noisy.
PATHFINDER_MAXITER = 100
PATHFINDER_ELBO_DRAWS = 16
# Two fits belong to the same mode when each mean is within this Mahalanobis distance of the
# other under the other's covariance (3: a Gaussian puts 99.7% of its mass within 3 sd).
SAME_MODE_DISTANCE = 3.0


class ModelPrior(NamedTuple):
    """A NumPyro model's prior on the flat unconstrained vector the kernels run in.

    sample(rng_key) -> (d,) draw; logdensity(z) -> log q0(z), normalised, with the log-Jacobian
    of the constraining transform (so exp(logdensity) integrates to 1 over R^d).
    """

    sample: Callable
    logdensity: Callable


def _is_improper(fn) -> bool:
    while fn is not None:
        if isinstance(fn, dist.ImproperUniform):
            return True
        fn = getattr(fn, "base_dist", None)
    return False


def _latent(trace) -> dict:
    return {
        name: site
        for name, site in trace.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not site.get("infer", {}).get("enumerate")
    }


def _init_trace(model, model_args, model_kwargs):
    """A trace of the model with init_to_uniform values (improper sites cannot be sampled)."""
    with numpyro.handlers.block():
        seeded = numpyro.handlers.seed(model, 0)
        return numpyro.handlers.trace(
            numpyro.handlers.substitute(seeded, substitute_fn=init_to_uniform)
        ).get_trace(*model_args, **(model_kwargs or {}))


def improper_sites(model, model_args=(), model_kwargs=None) -> list[str]:
    """Latent sites of ``model`` whose prior is improper (``ImproperUniform``)."""
    tr = _init_trace(model, model_args, model_kwargs)
    return [name for name, site in _latent(tr).items() if _is_improper(site["fn"])]


def model_prior(model, model_args, model_kwargs, unravel_fn, dim: int) -> ModelPrior | None:
    """The prior of ``model`` on the flat unconstrained space, or None when some latent site is
    improper (or the prior's sites do not flatten to the kernel's ``dim`` coordinates)."""
    model_kwargs = model_kwargs or {}
    if improper_sites(model, model_args, model_kwargs):
        return None

    def unconstrained_draw(rng_key):
        with numpyro.handlers.block():
            tr = numpyro.handlers.trace(numpyro.handlers.seed(model, rng_key)).get_trace(
                *model_args, **model_kwargs
            )
        params = {
            name: biject_to(site["fn"].support).inv(site["value"])
            for name, site in _latent(tr).items()
        }
        return ravel_pytree(params)[0]

    if jax.eval_shape(unconstrained_draw, jax.random.key(0)).shape != (dim,):
        return None

    latent_names = set(_latent(_init_trace(model, model_args, model_kwargs)))

    def is_likelihood(site):
        # Observed sites and factors, but not the "_{name}_log_det" factors by which NumPyro's
        # potential adds each latent site's Jacobian (those belong to the prior).
        name = site["name"]
        jacobian = name.startswith("_") and name.endswith("_log_det") and name[1:-8] in latent_names
        return site["type"] == "sample" and site["is_observed"] and not jacobian

    prior_only = numpyro.handlers.block(model, hide_fn=is_likelihood)

    def logdensity(z):
        return -potential_energy(prior_only, model_args, model_kwargs, unravel_fn(z))

    return ModelPrior(unconstrained_draw, logdensity)


def whitened_prior(prior: ModelPrior, precond: Preconditioner) -> Reference:
    """The prior as an annealing path's start q0 in whitened coordinates z = L⁻¹(x - m):
    draws mapped by the whitening, log q0(z) = log prior(m + L z) + log |det L| (normalised in
    z, so the path's evidence estimate is the model's). Its evaluations are counted."""
    offset = log_det_scale(precond)

    def sample(rng_key, num, dim, dtype):
        del dim
        x = jax.vmap(prior.sample)(jax.random.split(rng_key, num))
        return to_whitened(precond, x).astype(dtype)

    def logdensity(z):
        return prior.logdensity(to_position(precond, z)) + offset.astype(z.dtype)

    return Reference(sample, logdensity, counted=True)


class GaussianFit(NamedTuple):
    """A local Gaussian N(mean, cov) (cov (d, d) dense or (d,) diagonal), its ELBO, and what
    finding it cost: gradient and density evaluations."""

    mean: jax.Array
    cov: jax.Array
    elbo: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array


def pathfinder_fit(
    rng_key,
    logdensity_fn: Callable,
    start,
    dense: bool,
    maxiter: int = PATHFINDER_MAXITER,
    num_elbo_draws: int = PATHFINDER_ELBO_DRAWS,
) -> GaussianFit:
    """Single-path Pathfinder (BlackJAX) from ``start``: the ELBO-best Gaussian of the path.

    Cost: BlackJAX does not report its line-search evaluations, so gradients are counted as 2
    per L-BFGS iteration done (the step's and, typically, one line-search trial: the zoom search
    accepts its first trial on well-scaled steps), plus the start; densities as the ELBO draws of
    every iterate. A path whose ELBO is not finite returns elbo = -inf (its fit is not used).
    """
    state, info = pathfinder.approximate(
        rng_key, logdensity_fn, start, num_samples=num_elbo_draws, maxiter=maxiter
    )
    cov = lbfgs_inverse_hessian_formula_1(state.alpha, state.beta, state.gamma)
    cov = cov if dense else jnp.diagonal(cov)
    iters = jnp.sum(jnp.isfinite(info.path.elbo)).astype(jnp.int32)
    ok = (
        jnp.isfinite(state.elbo)
        & jnp.all(jnp.isfinite(state.position))
        & jnp.all(jnp.isfinite(cov))
    )
    return GaussianFit(
        state.position,
        cov,
        jnp.where(ok, state.elbo, -jnp.inf),
        2 * iters + 1,
        (maxiter + 1) * num_elbo_draws * jnp.ones((), jnp.int32),
    )


def _mahalanobis2(diff, cov):
    if cov.ndim == 2:
        return diff @ jnp.linalg.solve(cov, diff)
    return jnp.sum(diff**2 / cov)


def distinct_mode_weights(means, covs, usable) -> jax.Array:
    """Weights (n,) that count each distinct mode once: a usable fit gets 1 / (the number of
    usable fits of the same mode), an unusable one 0. Same mode: each mean lies within
    SAME_MODE_DISTANCE of the other under the other's covariance."""

    def d2(i, j):
        diff = means[i] - means[j]
        return jnp.maximum(_mahalanobis2(diff, covs[i]), _mahalanobis2(diff, covs[j]))

    idx = jnp.arange(means.shape[0])
    dist2 = jax.vmap(lambda i: jax.vmap(lambda j: d2(i, j))(idx))(idx)
    same = (dist2 <= SAME_MODE_DISTANCE**2) & usable[None, :] & usable[:, None]
    return jnp.where(usable, 1.0 / jnp.maximum(jnp.sum(same, axis=1), 1), 0.0)
