"""Warmup adaptation: preconditioner (MAP + Laplace, Welford windows), step-size rules."""

from scoresample.adapt.preconditioner import (
    Preconditioner,
    find_map,
    identity_preconditioner,
    laplace_covariance,
    log_det_scale,
    pool_gaussians,
    to_position,
    to_whitened,
    whitened_logdensity,
)
from scoresample.adapt.step_size import dual_averaging_init, dual_averaging_update
from scoresample.adapt.warmup import (
    WarmupConfig,
    WarmupState,
    build_schedule,
    warmup_init,
    warmup_update,
)

__all__ = [
    "Preconditioner",
    "WarmupConfig",
    "WarmupState",
    "build_schedule",
    "dual_averaging_init",
    "dual_averaging_update",
    "find_map",
    "identity_preconditioner",
    "laplace_covariance",
    "log_det_scale",
    "pool_gaussians",
    "to_position",
    "to_whitened",
    "warmup_init",
    "warmup_update",
    "whitened_logdensity",
]
