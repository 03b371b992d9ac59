"""The Ornstein–Uhlenbeck (OU) noising process, its time grids, and the reverse-SDE step.

Forward OU (ALGORITHMS.md §2; Huang et al. 2024, "Reverse Diffusion Monte Carlo", ICLR):
    dX_s = -X_s ds + sqrt(2) dB_s,   X_s = a_s X_0 + sqrt(1 - a_s²) ξ,   a_s = e^{-s}.
Its invariant law is N(0, I), the reference of every diffusion sampler (in whitened coordinates).
The score of the noised law p_s is a posterior mean (Tweedie's identity):
    ∇log p_s(x) = (a_s m_s(x) - x) / (1 - a_s²) = E_{q_s}[∇log p(X_0)] / a_s,
    m_s(x) = E_{q_s}[X_0],   q_s(x0 | x) ∝ p(x0) N(x; a_s x0, (1 - a_s²) I).
Reverse time t = T - s: dY_t = (Y_t + 2 ∇log p_{T-t}(Y_t)) dt + sqrt(2) dB_t. The exponential
integrator with the score frozen over a step h integrates the linear part exactly:
    Y ← e^h Y + 2 (e^h - 1) ŝ + sqrt(e^{2h} - 1) ξ.
The factor 2 is the whole drift of the reverse SDE (a forward diffusion coefficient sqrt(2)
gives g² = 2); without it the reverse process does not reach the target (ALGORITHMS.md §2, trap 3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GRIDS",
    "ou_alpha",
    "ou_sigma2",
    "reverse_ou_step",
    "score_from_gradient",
    "score_from_mean",
    "time_grid",
]

GRIDS = ("geometric", "uniform")


def ou_alpha(s):
    """a_s = e^{-s}: the signal coefficient of X_s."""
    return jnp.exp(-jnp.asarray(s))


def ou_sigma2(s):
    """1 - a_s² = 1 - e^{-2s}, the noise variance of X_s (computed as -expm1(-2s))."""
    return -jnp.expm1(-2.0 * jnp.asarray(s))


def time_grid(T: float, s_min: float, num_steps: int, kind: str = "geometric") -> np.ndarray:
    """Decreasing noise levels s_0 = T > s_1 > ... > s_K = s_min (K = num_steps), as numpy.

    "geometric": s_k = T (s_min/T)^{k/K}, i.e. steps shrinking in proportion to s towards s_min
    (the score varies on the scale of s itself near s = 0, where 1 - a_s² ≈ 2s).
    "uniform": equal steps (T - s_min)/K.
    """
    if kind not in GRIDS:
        raise ValueError(f"grid must be one of {sorted(GRIDS)}, got {kind!r}")
    if not (0.0 < s_min < T):
        raise ValueError(f"need 0 < s_min < T, got s_min={s_min!r}, T={T!r}")
    if kind == "geometric":
        return np.geomspace(T, s_min, num_steps + 1)
    return np.linspace(T, s_min, num_steps + 1)


def score_from_mean(x, mean, s):
    """Mean form: ∇log p_s(x) = (a_s m_s(x) - x) / (1 - a_s²)."""
    return (ou_alpha(s) * mean - x) / ou_sigma2(s)


def score_from_gradient(mean_grad, s):
    """Gradient form: ∇log p_s(x) = E_{q_s}[∇log p(X_0)] / a_s."""
    return mean_grad / ou_alpha(s)


def reverse_ou_step(rng_key, y, score, h):
    """One exponential-integrator step of the reverse OU SDE over a time h, score frozen:
    y ← e^h y + 2 (e^h - 1) score + sqrt(e^{2h} - 1) ξ."""
    noise = jax.random.normal(rng_key, jnp.shape(y), jnp.result_type(y))
    return jnp.exp(h) * y + 2.0 * jnp.expm1(h) * score + jnp.sqrt(jnp.expm1(2.0 * h)) * noise
