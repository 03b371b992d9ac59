"""What every sampler module shares: flat-array plumbing and the spec the NumPyro front consumes.

A sampler module (BlackJAX style) exposes ``init``, ``build_kernel`` and ``as_top_level_api`` on
pytree positions. For the NumPyro front it also exposes a :class:`SamplerSpec`: the same kernel,
on flat (whitened) positions, with its hyper-parameters bound, plus the facts the warmup needs
(per-chain or population, how to probe the step size).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.flatten_util import ravel_pytree


class SamplerSpec(NamedTuple):
    """A sampler as the NumPyro front sees it, on flat positions in whitened coordinates.

    init(rng_key, position, logdensity_fn) -> state, where ``state.position`` and
        ``state.logdensity`` exist (a leading population axis for population samplers).
    step(rng_key, state, logdensity_fn, step_size) -> (state, info); ``info.num_grad_evals`` and
        ``info.num_density_evals`` are the costs of that call *per chain or particle*: a gradient
        evaluation (which also returns the density) counts once as a gradient; a density evaluation
        without gradient counts as a density evaluation.
    step_size_probe(rng_key, state, logdensity_fn, step_size) -> (acceptance, num_grad_evals) or
        None when the sampler has no step size to adapt. The acceptance is computed, not applied.
    is_population: the chains are one population (NumPyro ensemble kernel).
    uses_gradients: False for gradient-free samplers (nothing may call jax.grad on the target).
    warmup_step: optional step with the signature of ``step`` used instead of it during warmup
        (e.g. one that also trains a control); its state and info must have the same structure.
    takes_reference: step and warmup_step take a keyword ``reference``
        (:class:`~scoresample.diffusion.annealing.Reference` in whitened coordinates, or None
        for N(0, I)): the start of an annealing path, e.g. the model's prior.
    reflects: the state returned with ``info.diverging`` is valid (the failing moves were undone
        inside the step, e.g. by reversing a velocity): the front flags the draw but keeps it.
        Otherwise a diverging step's state is discarded and the previous one kept.
    friction: for kinetic samplers whose friction warmup tunes (``scoresample.adapt.friction``),
        its initial value; step then takes a keyword ``friction``. None: nothing to tune.
    unadjusted: moves by gradients with no accept/reject and no reweighting by densities, so
        a jump in the density is invisible to it: warmup then tests whether the density jumps
        (``scoresample.adapt.smoothness``) and warns.
    """

    init: Callable
    step: Callable
    step_size_probe: Callable | None
    is_population: bool = False
    uses_gradients: bool = True
    warmup_step: Callable | None = None
    takes_reference: bool = False
    reflects: bool = False
    friction: float | None = None
    unadjusted: bool = False


@dataclasses.dataclass(frozen=True)
class SamplingAPI:
    """``scoresample.<algo>``: call it for a ``blackjax.base.SamplingAlgorithm``; ``.init`` and
    ``.build_kernel`` are the module functions, as for ``blackjax.<algo>``."""

    as_top_level_api: Callable
    init: Callable
    build_kernel: Callable

    def __call__(self, *args, **kwargs):
        return self.as_top_level_api(*args, **kwargs)

    def __post_init__(self):  # help() and inspect.signature() show the algorithm's own
        object.__setattr__(self, "__signature__", inspect.signature(self.as_top_level_api))
        object.__setattr__(self, "__doc__", self.as_top_level_api.__doc__)


class InverseMass(NamedTuple):
    """An inverse mass matrix U (a scalar, a diagonal (d,) or a dense (d, d) array) as the
    three maps a kinetic Langevin step needs: g ↦ U g, ξ ↦ U^{1/2} ξ (Cholesky factor when
    dense) and the kinetic energy v ↦ vᵀ U⁻¹ v / 2 of a velocity with stationary law N(0, U).
    A kinetic sampler run with U equals the unit-mass sampler on z = U^{-1/2} x."""

    apply: Callable
    apply_sqrt: Callable
    kinetic_energy: Callable


def inverse_mass(matrix) -> InverseMass:
    """:class:`InverseMass` of a scalar, (d,) or (d, d) inverse mass matrix."""
    u = jnp.asarray(matrix)
    if u.ndim < 2:
        return InverseMass(
            lambda g: u * g, lambda xi: jnp.sqrt(u) * xi, lambda v: 0.5 * jnp.sum(v**2 / u)
        )
    chol = jnp.linalg.cholesky(u)
    return InverseMass(
        lambda g: u @ g,
        lambda xi: chol @ xi,
        lambda v: 0.5 * jnp.sum(jsl.solve_triangular(chol, v, lower=True) ** 2),
    )


def flat_logdensity(logdensity_fn: Callable, unravel_fn: Callable) -> Callable:
    """Turn a log density on pytrees into one on flat arrays."""
    return lambda x: logdensity_fn(unravel_fn(x))


def value_and_grad_finite(logdensity_fn: Callable, x):
    """(log density, gradient) at x; a non-finite value or gradient becomes (-inf, 0).

    The caller marks the draw diverging from the -inf; zeroing the gradient keeps NaN out of the
    arithmetic that follows, so one bad point never poisons a whole vectorized batch.
    """
    value, grad = jax.value_and_grad(logdensity_fn)(x)
    ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
    return jnp.where(ok, value, -jnp.inf), jnp.where(ok, grad, jnp.zeros_like(grad))


class Standardization(NamedTuple):
    """x = mean + scale · z on a pytree position's flat form (mean, scale: scalars or (d,)).

    logdensity(z) = log p(mean + scale · z) + Σ log scale is the density of z, with the same
    normalising constant as p; to_z / to_x map pytree positions both ways."""

    logdensity: Callable
    to_z: Callable
    to_x: Callable
    log_det: Callable  # log |det| of z ↦ x, for a flat position of the right shape


def standardization(logdensity_fn: Callable, mean=0.0, scale=1.0) -> Standardization:
    """The :class:`Standardization` of ``logdensity_fn`` by (mean, scale)."""

    def affine(position, fn):
        flat, unravel = ravel_pytree(position)
        m = jnp.broadcast_to(jnp.asarray(mean, flat.dtype), flat.shape)
        s = jnp.broadcast_to(jnp.asarray(scale, flat.dtype), flat.shape)
        return unravel(fn(flat, m, s))

    to_z = lambda x: affine(x, lambda f, m, s: (f - m) / s)
    to_x = lambda z: affine(z, lambda f, m, s: m + s * f)

    def log_det(flat):
        return jnp.sum(jnp.log(jnp.broadcast_to(jnp.asarray(scale, flat.dtype), flat.shape)))

    return Standardization(
        lambda z: logdensity_fn(to_x(z)) + log_det(ravel_pytree(z)[0]), to_z, to_x, log_det
    )


def ravel_position(position: Any):
    """Flatten a pytree position; returns (flat array, unravel function)."""
    return ravel_pytree(position)


def check_positive(name: str, value, *, allow_zero: bool = False):
    """Raise a ValueError naming the hyper-parameter unless it is a finite positive number.

    A traced value (e.g. a step size adapted inside ``jit``) cannot be checked and is passed."""
    if isinstance(value, jax.core.Tracer):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and v == v and v != float("inf")):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {bound} number, got {value!r}")
    return v


def check_positive_int(name: str, value):
    """Raise a ValueError naming the hyper-parameter unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_nonnegative_int(name: str, value):
    """Raise a ValueError naming the hyper-parameter unless it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_choice(name: str, value, choices):
    """Raise a ValueError naming the hyper-parameter unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
