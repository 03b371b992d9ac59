"""BlackJAX-style warmup for the BlackJAX-style algorithms: the NumPyro front's, on a log density.

``scoresample.window_adaptation(algorithm, logdensity_fn, **parameters)`` has the shape of
``blackjax.window_adaptation``: its ``run(rng_key, position, num_steps)`` returns
``(AdaptationResults(state, parameters), info)`` and ``algorithm(logdensity_fn, **parameters)``
is then the tuned sampler. The warmup is the one the NumPyro kernels run (``ScoreSampleKernel``:
a Laplace or Pathfinder start, Stan's windows refining the Gaussian (mean, scale) from the draws,
dual averaging of the step size, the kinetic friction), driven on ``potential_fn = -logdensity``;
what it learns is handed to the algorithm in the algorithm's own terms: ``inverse_mass_matrix``
(RMP: the covariance, dense or diagonal, and the whitened step size, which is the same step in x
since RMP with U = LLᵀ is the unit-mass chain of z = L⁻¹x), or ``reference_mean`` and a diagonal
``reference_scale`` (RDMC, ensemble, CMCD: the reference N(mean, scale²) the diffusion runs from).

Why not ``blackjax.window_adaptation`` itself: it adapts towards an acceptance rate that the
kernel reports, and these samplers either have none (RMP, RDMC and the ensemble are unadjusted
or draw independently) or one of another meaning (CMCD's sweep); the NumPyro warmup measures a
computed-not-applied acceptance instead, and also centres the reference, which diffusion samplers
need and HMC does not.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from scoresample.adapt.preconditioner import covariance_of_scale
from scoresample.infer.base import ScoreSampleKernel
from scoresample.infer.cmcd import CMCD
from scoresample.infer.ensemble import EnsembleDiffusion
from scoresample.infer.rdmc import RDMC
from scoresample.infer.rmp import RandomizedMidpoint
from scoresample.samplers.base import SamplingAPI
from scoresample.samplers.cmcd import cmcd
from scoresample.samplers.ensemble import ensemble
from scoresample.samplers.rdmc import rdmc
from scoresample.samplers.rmp import rmp

__all__ = ["AdaptationInfo", "AdaptationResults", "window_adaptation"]


class AdaptationResults(NamedTuple):
    """state: the algorithm's state at the last warmup position; parameters: the keyword
    arguments of ``algorithm(logdensity_fn, **parameters)`` (adapted ones and the ones given)."""

    state: Any
    parameters: dict


class AdaptationInfo(NamedTuple):
    """Per warmup iteration: the step size in use (whitened units), whether the draw diverged,
    and the gradients and densities it cost (per chain, or per particle for populations)."""

    step_size: jax.Array
    diverging: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array


class WindowAdaptation(NamedTuple):
    run: Callable


class _Adapted(NamedTuple):
    """How one algorithm is warmed up: its NumPyro kernel, the algorithm's parameters that
    warmup sets (never given by the user), and the map from the warmup's result to them."""

    kernel: type
    adapted: tuple
    diagonal_only: bool
    parameters: Callable  # (adapt_state, given parameters) -> adapted parameters
    population: bool = False  # position's leading axis is the particles


def _reference(adapt, given):
    return {"reference_mean": adapt.precond.mean, "reference_scale": adapt.precond.scale}


def _rmp_parameters(adapt, given):
    tuned = {} if "friction" in given else {"friction": adapt.friction}
    return {
        "step_size": adapt.step_size,
        "inverse_mass_matrix": covariance_of_scale(adapt.precond.scale),
        **tuned,
    }


def _cmcd_parameters(adapt, given):
    return {"step_size": adapt.step_size, **_reference(adapt, given)}


ADAPTED = {
    rmp: _Adapted(RandomizedMidpoint, ("inverse_mass_matrix",), False, _rmp_parameters),
    rdmc: _Adapted(RDMC, ("reference_mean", "reference_scale"), True, _reference),
    ensemble: _Adapted(
        EnsembleDiffusion, ("reference_mean", "reference_scale"), True, _reference, True
    ),
    cmcd: _Adapted(CMCD, ("reference_mean", "reference_scale"), True, _cmcd_parameters, True),
}
# Where the NumPyro kernel's default differs from the algorithm's, warmup uses the kernel's and
# hands it on (e.g. RandomizedMidpoint takes 5 steps per draw, ``rmp`` 1), so that the sampler
# runs with the settings its step size was adapted for.
KERNEL_DEFAULTS = {rmp: {"num_steps": 5}}
# The algorithm's names the NumPyro kernel spells differently (RDMC refuses NumPyro's
# ``num_chains``, which means chains of the MCMC there).
KERNEL_NAMES = {rdmc: {"num_chains": "num_inner_chains"}}


def _lookup(algorithm) -> _Adapted:
    for known, adapted in ADAPTED.items():
        if algorithm is known:
            return adapted
    names = ", ".join(
        f"scoresample.{a.as_top_level_api.__module__.rsplit('.', 1)[-1]}" for a in ADAPTED
    )
    raise ValueError(
        f"window_adaptation supports {names}; got {algorithm!r} (the multiscale samplers carry "
        "their own start and have no reference to adapt)"
    )


def window_adaptation(
    algorithm: SamplingAPI,
    logdensity_fn: Callable,
    *,
    is_mass_matrix_diagonal: bool | None = None,
    initial_step_size: float | None = None,
    target_acceptance_rate: float | None = None,
    start_scale: float | None = None,
    preconditioner: str | None = None,
    **parameters,
) -> WindowAdaptation:
    """Adapt ``algorithm`` (``scoresample.rmp``, ``rdmc``, ``ensemble`` or ``cmcd``) to the
    target ``logdensity_fn`` as the NumPyro kernels' warmup does.

    is_mass_matrix_diagonal: a diagonal Gaussian (default for d > 200 and always for the
        diffusion samplers, whose reference_scale is diagonal) or a dense one (RMP, d ≤ 200).
    initial_step_size, target_acceptance_rate: the dual averaging's start and target (defaults:
        the NumPyro kernel's). start_scale: sd of the Gaussian that widens the start position(s)
        into Pathfinder's starts (the kernel's ``reference_scale``); None (default) keeps the
        local start (MAP + Laplace at the given position, with a LocalReferenceWarning): a bare
        log density has no prior to draw starts from. preconditioner: the NumPyro kernels'
        option ("laplace", "pathfinder", "identity"); default theirs ("auto"), and "pathfinder"
        for a batch of chains (``num_chains``), whose windows are then pooled.
    parameters: the algorithm's other arguments (e.g. ``num_steps``), used in warmup and handed
        on; the adapted ones (step size, inverse mass matrix or reference) may not be given.

    ``run(rng_key, position, num_steps=1000, num_chains=None)``: ``position`` is one chain's
    position (RMP, RDMC), or with ``num_chains`` a batch of that many chains' positions (leading
    axis) that warm up together as the NumPyro front's vectorized chains do (one adaptation fed by
    every chain's draws: ``num_chains`` times the draws per window), or a population with a
    leading particle axis (ensemble, CMCD; N ≥ 2). ``num_steps`` warmup iterations (sweeps, for
    populations). Returns ``(AdaptationResults(state, parameters), AdaptationInfo)``, the state
    batched like ``position``. ``run`` itself is not traced (its start is compiled inside); the
    sampler it returns is pure and runs under ``jit`` and ``lax.scan``.
    """
    adapted = _lookup(algorithm)
    given = set(parameters) & set(adapted.adapted)
    if given:
        raise ValueError(f"window_adaptation sets {sorted(given)}; do not pass them")
    if "step_size" in parameters:
        raise ValueError("pass initial_step_size (the warmup's start), not step_size")
    if adapted.diagonal_only and is_mass_matrix_diagonal is False:
        raise ValueError(
            "is_mass_matrix_diagonal=False: this algorithm's reference_scale is diagonal"
        )
    dense = None if is_mass_matrix_diagonal is None else not is_mass_matrix_diagonal
    options = dict(
        dense_mass=False if adapted.diagonal_only else dense,
        step_size=initial_step_size,
        target_accept=target_acceptance_rate,
        reference_scale=start_scale,
        preconditioner=preconditioner,
    )
    options = {k: v for k, v in options.items() if v is not None}
    settings = {**KERNEL_DEFAULTS.get(algorithm, {}), **parameters}

    names = KERNEL_NAMES.get(algorithm, {})
    kernel_settings = {names.get(k, k): v for k, v in settings.items()}

    def run(rng_key, position, num_steps: int = 1000, num_chains: int | None = None):
        chains = num_chains is not None
        if chains and adapted.population:
            raise ValueError("num_chains: a population's particles are its leading axis")
        extra = dict(options)
        if chains and preconditioner is None:
            # Pathfinder's start is shared by the chains and their windows pooled; the Laplace
            # start would adapt each chain alone (the NumPyro front's "laplace").
            extra["preconditioner"] = "pathfinder"
        kernel = adapted.kernel(
            potential_fn=lambda p: -logdensity_fn(p), **kernel_settings, **extra
        )
        num = jax.tree.leaves(position)[0].shape[0] if adapted.population else num_chains
        keys = rng_key if num is None else jax.random.split(rng_key, num)
        state = kernel.init(keys, num_steps, init_params=position)
        state, info = _warmup_loop(kernel, state, num_steps)
        adapt = state.adapt_state
        if chains:  # every chain holds the one shared adaptation
            adapt = jax.tree.map(lambda a: a[0], adapt)
        found = {**settings, **adapted.parameters(adapt, settings)}
        init = algorithm(logdensity_fn, **found).init
        k_init = jax.random.fold_in(rng_key, 1)
        if chains:
            init, k_init = jax.vmap(init), jax.random.split(k_init, num_chains)
        return AdaptationResults(init(state.z, k_init), found), info

    return WindowAdaptation(run)


def _warmup_loop(kernel: ScoreSampleKernel, state, num_steps: int):
    """num_steps warmup iterations of the kernel, then one with the adapted settings frozen (the
    NumPyro front's first sampling iteration, where an unadjusted sampler's jump test reports)."""

    def one(state, _):
        new = kernel.sample(state, (), {})
        return new, AdaptationInfo(
            new.adapt_state.step_size,
            new.diverging,
            new.num_grad_evals,
            new.num_density_evals,
        )

    @jax.jit
    def loop(state):
        state, info = jax.lax.scan(one, state, None, length=num_steps)
        return kernel.sample(state, (), {}), info

    return loop(state)
