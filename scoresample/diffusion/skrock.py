"""SK-ROCK: a stabilised explicit integrator for stiff Langevin-type SDEs.

Reference: Abdulle, Almuslimani & Vilmart (2018), "Optimal explicit stabilized integrator of weak
order 1 for stiff and ergodic stochastic differential equations", SIAM/ASA J. Uncertainty
Quantification 6(2) (the scheme, their eq. (2.6), written out in ALGORITHMS.md §3).

For dY = f(Y) dt + sqrt(2) dW, one step of size Δ with s stages and damping η:

    w0 = 1 + η/s²,  w1 = T_s(w0) / T_s'(w0)          (T_j: Chebyshev polynomials, first kind)
    Q  = sqrt(2Δ) ξ
    K0 = Y,  K1 = Y + (w1/w0) Δ f(Y + (s w1/2) Q) + (s w1/w0) Q
    K_j = μ_j Δ f(K_{j-1}) + ν_j K_{j-1} + κ_j K_{j-2},   j = 2..s
          μ_j = 2 w1 T_{j-1}(w0)/T_j(w0),  ν_j = 2 w0 T_{j-1}(w0)/T_j(w0),  κ_j = 1 - ν_j
    return K_s

It costs s drift evaluations, one per stage. Its mean-square stability domain along the negative
real axis has length ≈ (2 - 4η/3) s² (Abdulle et al. 2018, §2.2): for a linear drift f(y) = -k y
the step is stable while Δ k ≤ ``stability_bound(s, η)`` (48.3 at s = 5, η = 0.05 by the formula;
the exact boundary computed by ``stability_bound`` is used by the samplers). Euler–Maruyama, the
s = 1 member, is stable only for Δ k < 2. Defaults s = 5, η = 0.05 are the paper's choice in
Cordero-Encinar, Duncan, Reich & Akyildiz (2025), §5.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "SKROCKCoefficients",
    "skrock_coefficients",
    "skrock_step",
    "stability_bound",
    "DEFAULT_STAGES",
    "DEFAULT_DAMPING",
]

DEFAULT_STAGES = 5
DEFAULT_DAMPING = 0.05
UNROLL = True  # the s - 1 stages are unrolled: a nested while loop per step is slow to compile


class SKROCKCoefficients(NamedTuple):
    """Static (numpy) coefficients of an s-stage SK-ROCK step."""

    stages: int
    mu1: float  # w1 / w0
    nu1: float  # s w1 / 2
    kappa1: float  # s w1 / w0
    mu: np.ndarray  # μ_j, j = 2..s
    nu: np.ndarray  # ν_j
    kappa: np.ndarray  # κ_j


def _chebyshev(s: int, w0: float):
    """T_0..T_s(w0) and T_s'(w0) = s U_{s-1}(w0), by the three-term recursions (float64)."""
    t = [1.0, w0]
    u = [1.0, 2.0 * w0]
    for _ in range(2, s + 1):
        t.append(2.0 * w0 * t[-1] - t[-2])
        u.append(2.0 * w0 * u[-1] - u[-2])
    return np.array(t[: s + 1]), s * u[s - 1]


@functools.lru_cache(maxsize=64)
def skrock_coefficients(stages: int = DEFAULT_STAGES, damping: float = DEFAULT_DAMPING):
    """Coefficients of the s-stage SK-ROCK step with damping η (Abdulle et al. 2018, eq. 2.6)."""
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise ValueError(f"stages must be a positive integer, got {stages!r}")
    if not (float(damping) >= 0.0 and np.isfinite(damping)):
        raise ValueError(f"damping must be a finite non-negative number, got {damping!r}")
    s = stages
    w0 = 1.0 + float(damping) / s**2
    t, dts = _chebyshev(s, w0)
    w1 = t[s] / dts
    js = np.arange(2, s + 1)
    mu = 2.0 * w1 * t[js - 1] / t[js]
    nu = 2.0 * w0 * t[js - 1] / t[js]
    return SKROCKCoefficients(s, w1 / w0, s * w1 / 2.0, s * w1 / w0, mu, nu, 1.0 - nu)


@functools.lru_cache(maxsize=64)
def stability_bound(stages: int = DEFAULT_STAGES, damping: float = DEFAULT_DAMPING) -> float:
    """Largest z = Δk such that the step is mean-square stable on dY = -kY dt + sqrt(2) dW
    for every Δk in (0, z] (found numerically on a fine grid).

    For f(y) = -k y the step is linear, Y ← A(Δk) Y + B(Δk) Q with Q = sqrt(2Δ) ξ, so it is
    mean-square stable iff |A| < 1; its stationary variance is then 2Δ B² / (1 - A²) (compare the
    exact 1/k). Abdulle et al. (2018) quote the boundary ≈ (2 - 4η/3) s².
    """
    c = skrock_coefficients(stages, damping)
    grid = np.linspace(0.0, 3.0 * stages**2 + 3.0, 20001)[1:]
    amp = np.abs([_linear_amplification(c, p)[0] for p in grid])
    bad = np.nonzero(amp > 1.0 + 1e-9)[0]
    return float(grid[bad[0] - 1]) if bad.size else float(grid[-1])


def _linear_amplification(c: SKROCKCoefficients, p: float):
    """(A, B) with K_s = A y + B Q for f(y) = -k y, p = Δk (Q enters linearly)."""
    # Each stage is a + b Q in terms of (y, Q); track the pair.
    k_prev = (1.0, 0.0)
    k_cur = (1.0 - c.mu1 * p, -c.mu1 * p * c.nu1 + c.kappa1)
    for j in range(c.stages - 1):
        new = tuple(
            -c.mu[j] * p * k_cur[i] + c.nu[j] * k_cur[i] + c.kappa[j] * k_prev[i] for i in range(2)
        )
        k_prev, k_cur = k_cur, new
    return k_cur


def skrock_step(
    rng_key,
    y,
    drift_fn: Callable,
    step_size,
    stages: int = DEFAULT_STAGES,
    damping: float = DEFAULT_DAMPING,
    noise=None,
    has_aux: bool = False,
):
    """One SK-ROCK step of dY = f(Y) dt + sqrt(2) dW over a time ``step_size`` (flat array y).

    drift_fn(y) -> f(y), called ``stages`` times (count them as gradient evaluations when f is a
    score). ``noise`` (a standard normal draw of y's shape) may be given instead of rng_key, for
    tests that compare against a closed form on the same Brownian increment. step_size may be a
    traced scalar; stages and damping are static. With ``has_aux``, drift_fn returns (f, ok)
    with ok a boolean (e.g. "the density was finite there") and the step returns (y, all ok).
    """
    c = skrock_coefficients(stages, damping)
    if noise is None:
        noise = jax.random.normal(rng_key, jnp.shape(y), jnp.result_type(y))
    dt = jnp.asarray(step_size, jnp.result_type(y))
    q = jnp.sqrt(2.0 * dt) * noise
    f_fn = drift_fn if has_aux else (lambda v: (drift_fn(v), jnp.array(True)))
    f1, ok = f_fn(y + c.nu1 * q)
    k1 = y + c.mu1 * dt * f1 + c.kappa1 * q
    if stages == 1:
        return (k1, ok) if has_aux else k1
    dtype = jnp.result_type(y)
    coefs = (
        jnp.asarray(c.mu, dtype),
        jnp.asarray(c.nu, dtype),
        jnp.asarray(c.kappa, dtype),
    )

    def body(carry, coef):
        k_prev, k_cur, ok = carry
        mu, nu, kappa = coef
        f, ok_j = f_fn(k_cur)
        k_new = mu * dt * f + nu * k_cur + kappa * k_prev
        return (k_cur, k_new, ok & ok_j), None

    (_, ks, ok), _ = jax.lax.scan(body, (y, k1, ok), coefs, unroll=UNROLL)
    return (ks, ok) if has_aux else ks
