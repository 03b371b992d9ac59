"""Everything one warmup iteration adapts, in one pure update.

Schedule (Stan's windowed adaptation, scaled to num_warmup): an initial buffer (15%) where only
the step size adapts, slow windows that double in length (first one 25 iterations at 1000 warmup
iterations, scaled) where Welford estimates accumulate and, at each window's end, replace the
preconditioner, and a terminal buffer (10%) for the step size alone. At each preconditioner change
dual averaging restarts from the current step size. On the last warmup iteration the step size
is frozen at the dual-averaging average. Kinetic samplers also get their friction at each
window's end, from the window's draws (``scoresample.adapt.friction``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from scoresample.adapt.friction import friction_from_variance, whitened_mean_variance
from scoresample.adapt.preconditioner import (
    Preconditioner,
    WelfordState,
    blend_with_prior,
    covariance_of_scale,
    scale_from_covariance,
    welford_covariance,
    welford_init,
    welford_update,
)
from scoresample.adapt.smoothness import SmoothnessState, smoothness_init, smoothness_update
from scoresample.adapt.step_size import (
    DualAveragingState,
    dual_averaging_init,
    dual_averaging_update,
)

MIN_WARMUP_FOR_WINDOWS = 20


class WarmupSchedule(NamedTuple):
    """Static per-iteration flags (numpy, length num_warmup)."""

    collect: np.ndarray  # add this iteration's draw to the Welford estimate
    window_end: np.ndarray  # replace the preconditioner after this iteration


def build_schedule(num_warmup: int) -> WarmupSchedule:
    collect = np.zeros(max(num_warmup, 1), bool)
    window_end = np.zeros(max(num_warmup, 1), bool)
    if num_warmup < MIN_WARMUP_FOR_WINDOWS:
        return WarmupSchedule(collect, window_end)
    init_buffer = int(0.15 * num_warmup)
    term_buffer = int(0.1 * num_warmup)
    end = num_warmup - term_buffer
    window = max(int(0.025 * num_warmup), 5)
    start = init_buffer
    while start < end:
        stop = start + window
        if stop + 2 * window > end:  # the last window absorbs what a doubling could not fill
            stop = end
        collect[start:stop] = True
        window_end[stop - 1] = True
        start, window = stop, 2 * window
    return WarmupSchedule(collect, window_end)


class WarmupState(NamedTuple):
    precond: Preconditioner
    welford: WelfordState
    dual_avg: DualAveragingState
    step_size: jax.Array
    friction: jax.Array  # kinetic samplers' γ in whitened coordinates (unused by the others)
    smoothness: SmoothnessState  # probe pairs of unadjusted samplers (adapt.smoothness)


def warmup_init(precond: Preconditioner, step_size, friction=1.0) -> WarmupState:
    dense = precond.scale.ndim == 2
    dim = precond.mean.shape[-1]
    return WarmupState(
        precond,
        welford_init(dim, dense, precond.mean.dtype),
        dual_averaging_init(step_size),
        jnp.asarray(step_size, jnp.float32),
        jnp.asarray(friction, jnp.float32),
        smoothness_init(),
    )


class WarmupConfig(NamedTuple):
    num_warmup: int
    schedule: WarmupSchedule
    target_accept: float
    adapt_step_size: bool
    adapt_preconditioner: bool
    inflation: float
    tune_friction: bool = False


def warmup_update(
    config: WarmupConfig, i, state: WarmupState, position, acceptance, smoothness_pair=None
):
    """Adapt after warmup iteration i given the draw(s) ``position`` (x-space; (d,) or (n, d)).

    ``smoothness_pair``: the acceptances of ``adapt.smoothness.smoothness_probe`` (unadjusted
    samplers), counted in the second half of warmup.
    Returns (new state, preconditioner_changed). Call only while i < num_warmup.
    """
    smoothness = state.smoothness
    if smoothness_pair is not None:
        second_half = i >= config.num_warmup // 2
        smoothness = smoothness_update(smoothness, *smoothness_pair, second_half)
    last = i == config.num_warmup - 1
    dual_avg, step_size = state.dual_avg, state.step_size
    if config.adapt_step_size:
        dual_avg = dual_averaging_update(dual_avg, acceptance, config.target_accept)
        step_size = jnp.where(last, jnp.exp(dual_avg.log_step_avg), jnp.exp(dual_avg.log_step))

    welford, precond, friction = state.welford, state.precond, state.friction
    changed = jnp.array(False)
    if config.adapt_preconditioner or config.tune_friction:
        collect = jnp.asarray(config.schedule.collect)[i]
        window_end = jnp.asarray(config.schedule.window_end)[i]
        welford = jax.tree.map(
            lambda new, old: jnp.where(collect, new, old),
            welford_update(welford, position),
            welford,
        )
    if config.adapt_preconditioner:
        dense = precond.scale.ndim == 2
        prior_cov = covariance_of_scale(precond.scale) / config.inflation**2
        mean, cov = blend_with_prior(welford, precond.mean, prior_cov)
        new_precond = Preconditioner(mean, config.inflation * scale_from_covariance(cov, dense))
        precond = jax.tree.map(lambda a, b: jnp.where(window_end, a, b), new_precond, precond)
        if config.adapt_step_size:
            dual_avg = jax.tree.map(
                lambda a, b: jnp.where(window_end & ~last, a, b),
                dual_averaging_init(step_size),
                dual_avg,
            )
        changed = window_end
    if config.tune_friction:
        # The window's spread in the coordinates the next window runs in.
        variance = whitened_mean_variance(precond, welford_covariance(welford))
        tuned = friction_from_variance(variance).astype(friction.dtype)
        friction = jnp.where(window_end & jnp.isfinite(tuned), tuned, friction)
    if config.adapt_preconditioner or config.tune_friction:
        dense = precond.scale.ndim == 2
        fresh = welford_init(precond.mean.shape[-1], dense, precond.mean.dtype)
        welford = jax.tree.map(lambda a, b: jnp.where(window_end, a, b), fresh, welford)
    return WarmupState(precond, welford, dual_avg, step_size, friction, smoothness), changed
