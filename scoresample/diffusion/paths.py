"""Interpolation paths μ_λ = Law(sqrt(λ) X_π + sqrt(1 - λ) Z) and their schedules.

Cordero-Encinar, Duncan, Reich & Akyildiz (2025), "Sampling by averaging: a multiscale approach
to score estimation" (ALGORITHMS.md §3): λ runs from λ_δ to 1 - λ_δ along a schedule in the
normalised slow time u ∈ [0, 1]:

    linear   λ(u) = u
    sin2     λ(u) = sin²(π u / 2)    (slow at both ends, where μ_λ changes fastest)

mapped affinely onto [λ_δ, 1 - λ_δ] (the clamp of the paper, λ_δ = 0.01). The OU path of
diffusion models is the same family with λ = a_s² = e^{-2s}.

Friction schedules Γ(u) for the underdamped (OBABO) slow process:

    constant  Γ(u) = Γ_1
    ramp      Γ(u) = Γ_0 for u ≤ 1/2, then linear from Γ_0 to Γ_1 at u = 1 (the paper holds
              the friction low for the first half and ramps it up, §5)
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "FRICTION_SCHEDULES",
    "LAMBDA_SCHEDULES",
    "friction_schedule",
    "lambda_schedule",
    "lambda_grid",
]

LAMBDA_SCHEDULES = ("linear", "sin2")
FRICTION_SCHEDULES = ("constant", "ramp")


def lambda_schedule(u, kind: str = "sin2", lambda_min: float = 0.01):
    """λ at normalised time u ∈ [0, 1] (array or scalar), in [λ_min, 1 - λ_min]."""
    if kind not in LAMBDA_SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(LAMBDA_SCHEDULES)}, got {kind!r}")
    if not (0.0 < float(lambda_min) < 0.5):
        raise ValueError(f"lambda_min must lie in (0, 0.5), got {lambda_min!r}")
    u = jnp.clip(jnp.asarray(u), 0.0, 1.0)
    g = u if kind == "linear" else jnp.sin(0.5 * jnp.pi * u) ** 2
    return lambda_min + (1.0 - 2.0 * lambda_min) * g


def lambda_grid(num_steps: int, kind: str = "sin2", lambda_min: float = 0.01) -> np.ndarray:
    """λ_0 = λ_min < … < λ_K = 1 - λ_min on K + 1 equally spaced slow times (numpy, float64)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    u = np.linspace(0.0, 1.0, num_steps + 1)
    return np.asarray(lambda_schedule(u, kind, lambda_min), np.float64)


def friction_schedule(u, kind: str = "constant", low: float = 0.5, high: float = 2.0):
    """Friction Γ at normalised time u ∈ [0, 1]: ``constant`` (= high) or ``ramp`` (low for
    u ≤ 1/2, then linear up to high at u = 1)."""
    if kind not in FRICTION_SCHEDULES:
        raise ValueError(
            f"friction_schedule must be one of {sorted(FRICTION_SCHEDULES)}, got {kind!r}"
        )
    u = jnp.clip(jnp.asarray(u), 0.0, 1.0)
    if kind == "constant":
        return jnp.full_like(u, high, dtype=jnp.result_type(float))
    ramp = jnp.clip(2.0 * u - 1.0, 0.0, 1.0)
    return low + (high - low) * ramp
