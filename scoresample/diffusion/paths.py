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

The kinetic (critically damped) OU path, for the underdamped MultCDiff. Forward, per
coordinate, on w = (x, v) (Dockhorn, Vahdat & Kreis 2022, "Score-based generative modeling with
critically-damped Langevin diffusion", with unit mass and β = 1, Γ = 2):

    dw = A w ds + G dB,   A = [[0, 1], [-1, -2]],   G = diag(0, 2),

whose invariant law is N(0, I). A = -I + N with N² = 0, so e^{As} = e^{-s}(I + N s) in closed
form. Started at (x0, v0) with v0 ~ N(0, 1) independent of x0 (the invariant velocity law),
w_s | x0 ~ N(a_s x0, I - a_s a_sᵀ), a_s = e^{As} e_1 = e^{-s}(1 + s, -s). Since
(I - a aᵀ)⁻¹ = (I - â âᵀ) + â âᵀ/(1 - |a|²) (â = a/|a|), the likelihood of x0 depends on w only
through the scalar y = â_sᵀ w, and y | x0 ~ N(|a_s| x0, 1 - |a_s|²): the denoising posterior
given w is the OU one of signal c = |a_s| given y ("λ" = |a_s|²), and
∇_w log p_s(w) = -(w - â y) + â s_y with s_y = (c E[x0 | w] - y)/(1 - c²). The reverse SDE in time
t = T - s is dw = (-A w + G Gᵀ ∇log p_s(w)) dt + G dB; only the velocity score enters.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = [
    "FRICTION_SCHEDULES",
    "LAMBDA_SCHEDULES",
    "KineticStep",
    "friction_schedule",
    "kinetic_reverse_step",
    "kinetic_signal",
    "kinetic_time_for_signal",
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


# ---------------------------------------------------------------------------------------------
# Kinetic (critically damped) OU path: static numpy, float64


def kinetic_signal(s) -> np.ndarray:
    """a_s = e^{As} e_1 = e^{-s}(1 + s, -s), shape s.shape + (2,).

    w_s | x0 ~ N(a_s x0, I - a_s a_sᵀ) (module docstring)."""
    s = np.asarray(s, np.float64)
    return np.exp(-s)[..., None] * np.stack([1.0 + s, -s], axis=-1)


def kinetic_time_for_signal(signal2: float) -> float:
    """The s at which |a_s|² = e^{-2s}((1 + s)² + s²) equals ``signal2`` ∈ (0, 1) (bisection;
    |a_s|² decreases from 1 at s = 0, like 1 - 4s³/3 for small s)."""
    if not (0.0 < float(signal2) < 1.0):
        raise ValueError(f"signal2 must lie in (0, 1), got {signal2!r}")
    lo, hi = 0.0, 1.0
    while np.sum(kinetic_signal(hi) ** 2) > signal2:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.sum(kinetic_signal(mid) ** 2) > signal2:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class KineticStep(NamedTuple):
    """One reverse-time step of length h with the velocity score frozen (all (..., 2[, 2])):
    w' = phi w + psi · (4 score_v) + chol ξ, ξ ~ N(0, I_2) (per coordinate)."""

    phi: np.ndarray  # e^{-A h}
    psi: np.ndarray  # ∫_0^h e^{-A r} dr e_2: the response to a constant velocity forcing
    chol: np.ndarray  # Cholesky factor of Q = ∫_0^h e^{-A r} G Gᵀ e^{-Aᵀ r} dr


def kinetic_reverse_step(h) -> KineticStep:
    """Exact integration of the linear part of the reverse kinetic SDE over a time h (array),
    the score frozen (the kinetic analogue of the exponential integrator of
    ``scoresample.diffusion.ou``). With e^{-A r} e_2 = e^r p(r), p(r) = (-r, 1 + r):
        phi = e^h [[1 - h, -h], [h, 1 + h]],   psi = (-(h - 1) e^h - 1, h e^h),
        Q_ij = 4 ∫_0^h e^{2r} p_i(r) p_j(r) dr   (from ∫_0^h r^k e^{2r} dr in closed form).
    Checked against a matrix exponential and quadrature in tests/test_multiscale.py."""
    h = np.asarray(h, np.float64)
    e = np.exp(h)
    phi = e[..., None, None] * np.stack(
        [np.stack([1.0 - h, -h], -1), np.stack([h, 1.0 + h], -1)], -2
    )
    # ∫_0^h e^r (-r) dr = -((h - 1) e^h + 1);  ∫_0^h e^r (1 + r) dr = h e^h.
    psi = np.stack([-((h - 1.0) * e + 1.0), h * e], -1)
    # I_k = ∫_0^h r^k e^{2r} dr.
    e2 = np.exp(2.0 * h)
    i0 = 0.5 * (e2 - 1.0)
    i1 = e2 * (0.5 * h - 0.25) + 0.25
    i2 = e2 * (0.5 * h**2 - 0.5 * h + 0.25) - 0.25
    # For small h the closed forms cancel badly: use the series to O(h^6) instead.
    small = h < 0.05
    i1 = np.where(small, h**2 / 2 + 2 * h**3 / 3 + h**4 / 2 + 4 * h**5 / 15, i1)
    i2 = np.where(small, h**3 / 3 + h**4 / 2 + 2 * h**5 / 5 + 2 * h**6 / 9, i2)
    q11 = 4.0 * i2
    q12 = -4.0 * (i1 + i2)
    q22 = 4.0 * (i0 + 2.0 * i1 + i2)
    l11 = np.sqrt(q11)
    l21 = q12 / l11
    l22 = np.sqrt(np.maximum(q22 - l21**2, 0.0))
    zero = np.zeros_like(h)
    chol = np.stack([np.stack([l11, zero], -1), np.stack([l21, l22], -1)], -2)
    return KineticStep(phi, psi, chol)
