"""Multiscale averaging samplers: MultALMC (annealed Langevin) and MultCDiff (reverse OU).

Reference: Cordero-Encinar, Duncan, Reich & Akyildiz (2025), "Sampling by averaging: a multiscale
approach to score estimation" (ALGORITHMS.md §3). SK-ROCK: Abdulle, Almuslimani & Vilmart (2018).
Heavy-tailed fast process: He, Farghly, Balasubramanian & Ma (2024), "Mean-square analysis of
discretized Itô diffusions for heavy-tailed sampling", JMLR.

The path and its score
----------------------
μ_λ = Law(c X_π + σ Z), c = sqrt(λ), σ = sqrt(1 - λ), Z ~ ν (N(0, I), or Student-t with tail
index α). MultCDiff uses the OU path of diffusion models, the same family with c = a_s = e^{-s}
(λ = a_s²). Writing the fast variable in the target's own coordinates, u = y / c (the paper's y
is c u), the denoising posterior and the two forms of the score are

    ρ_{λ,x}(u) ∝ π(u) ν((x - c u)/σ)
    ∇log μ_λ(x) = E_ρ[∇log ν(z)] / σ,  z = (x - c u)/σ        ("ν-form", no ∇U)
                = E_ρ[∇log π(u)] / c                           ("π-form")

The ν-form is used while λ < λ̃ (0.6, the paper's switch), the π-form after.

Underdamped MultCDiff (``method="cdiff", overdamped=False``): the slow variable is the pair
w = (x, v) of the reverse of the kinetic (critically damped) OU process of Dockhorn, Vahdat &
Kreis (2022), dx = v ds, dv = (-x - 2v) ds + 2 dB, started at v0 ~ N(0, I) independent of x0
(closed forms in ``scoresample.diffusion.paths``). Why this construction: its transition law
given x0 is Gaussian, w_s | x0 ~ N(a_s x0, I - a_s a_sᵀ) per coordinate with a_s = e^{-s}(1 + s,
-s), and x0 enters the likelihood only through y = â_sᵀ w (â = a/|a|), y | x0 ~ N(|a_s| x0,
1 - |a_s|²). So the denoising posterior given w is exactly the OU one above with c = |a_s|,
σ² = 1 - |a_s|² and y in place of x: the fast ensemble, its AIS weights, resampling, guard and
both score forms are reused unchanged on y, and the reverse SDE needs only the velocity score,
    ∇_v log p_s(w) = -(v - â_v y) + â_v ∇_y log p,   ∇_y log p = (c E[x0 | w] - y)/σ².
Reverse time t = T - s: dw = (-A w + G Gᵀ ∇log p_s) dt + G dB, A = [[0, 1], [-1, -2]],
G = diag(0, 2); each slow step integrates the linear part exactly with the score frozen (the
kinetic analogue of the exponential integrator), w' = e^{-Ah} w + ψ_h 4∇_v log p + Q_h^{1/2} ξ.
The start is (x, v) ~ N(a_T u_J, I - a_T a_Tᵀ); the grid is geometric in s from T to the s_min
with |a|² = 1 - λ_δ (s_min = 0.218 at λ_δ = 0.01); the finish (Langevin on π) starts from a
fresh v ~ N(0, I). The kinetic path keeps the noise in the velocity: at s_min the position
noise is 1 - a_x² = 0.041, against λ_δ = 0.01 for the overdamped path, and the reverse process
moves x smoothly (dx = -v dt), not by a Brownian increment. Only the Gaussian base is allowed:
with Student-t noise the transition laws are not Gaussian.

Fast process (no inner loop): the fast variable follows du = (1/ε) ∇log ρ(u) dt + sqrt(2/ε) dB̃,
advanced by ONE SK-ROCK step (s stages, damping η) of fast time Δ = h/ε per slow step h. In u
the stiffness of ∇log ρ is L + λ/(1-λ) (no 1/λ blow-up at small λ; the paper's y-process is the
u-process sped up by 1/λ). The fast step is capped, Δ_k = min(h/ε, 0.8 ℓ_s / (L + κ_ν c²/σ²)),
so that Δ_k × stiffness stays inside SK-ROCK's stability interval ℓ_s (48.5 for s = 5,
η = 0.05); L is the target's largest curvature: max(``curvature``, default 1 as in whitened
coordinates, the largest Laplace precision at the points the start's Newton moves reach),
κ_ν = 1 the largest curvature of -log ν. The Newton moves are monotone (each keeps the best of
four step lengths, or stays): with full steps they overshot the eight-schools mode into the
large-τ region, where the precision runs into the thousands, and with L that large the capped
fast steps and the final steps were too short to move anything (issue 6, measured).

Guard against unstable fast steps. L is an estimate; a fast chain in a region stiffer than the
cap assumes (eight schools: the curvature grows like τ²) is amplified by the explicit step and
thrown far away (log τ = -5e6 in one step, measured) to where π is tiny but finite. The AIS
weights assume a ρ-invariant move and do not see this, so such a chain could carry the score
(and the slow variable) with it. log π is therefore evaluated at every moved chain (with the
π-form's gradient where that is used, alone before), and a move that lowers log ρ_{λ,x} by more
than 20 + 10 sqrt(d) nats (log ρ of two draws of a Gaussian ρ differs with sd sqrt(d)), or
that lands where log π is not finite, is rejected: the chain stays where it was. Staying put is
ρ-invariant, so the weights stay right. (The first version dropped such chains; that removed
chains from the stiff regions themselves, and with one fast chain, the paper's plain version,
it ended every trajectory as diverging on the benchmark's mixtures, measured.)

Heavy-tailed base (``base="student_t"``): ν is the multivariate Student-t with α degrees of
freedom and scale s = sqrt((α + d)/α), ∇log ν(z) = -(1/(1 + |z|²/(α s²))) z, normalised so that
its Hessian at 0 is -I like N(0, I) and like a target whitened by its Laplace approximation (a
whitened t_α target IS this ν; with the unit-scale t_α the path had to widen the tails by 1.63
in d = 5 during the annealing, and the 5%/95% quantiles came out 18% off, measured). Its
draws start the slow variable, so the tails are present from the first step. The fast Langevin
is replaced by the Itô diffusion
    du = (1/ε)[a(u) ∇log ρ(u) + ∇a(u)] dt + sqrt(2 a(u)/ε) dB̃,
which leaves ρ invariant for any positive a (its generator is ρ⁻¹∇·(aρ∇)); we take He et al.'s
weight for a t_α-like target of scale s, NORMALISED to 1 at the radius |u|² = d and capped for
stability:
    a(u) = min((1 + |u|²/(α s²)) / (1 + d/(α s²)), a_max),  a_max = 10,
    ∇a = 2u/(α s² + d) below the cap  (α s² = α + d).
a is frozen over one SK-ROCK step (a step of fast time Δ a(u_k) with drift ∇log ρ + ∇a/a(u_k)).

The repair for unequal mode weights (ALGORITHMS.md §3, trap 1)
--------------------------------------------------------------
One local fast chain per particle (the paper's plain version: ``fast_chains=1,
reweight=False, init="reference"``) inherits π's barriers: at every λ the modes of ρ are as
separated as those of π (ρ is π reweighted by a Gaussian factor in u), so the fast chain never
changes mode, and the particle follows whichever mode its fast chain started in. Mode masses
then come out as the basin volumes of the starting distribution, not the masses.

The repair keeps M fast chains per particle as a *weighted* ensemble for ρ_{λ,x}:
  1. Start (``init="laplace"``): M reference draws (a fraction ``wide_starts`` of them widened
     by ``wide_scale``, to find modes the reference does not cover) are moved by a few saddle-
     free Newton steps towards local modes a_j of π, each with its Laplace covariance Σ_j; u_j
     is drawn from N(a_j, Σ_j) (or, with probability β = 0.1, from the reference, a defensive
     component) and weighted by π(u_j)/q(u_j) with q the whole mixture (deterministic-mixture
     importance sampling): a mode found by n of the M starts gets n proposals of weight ∝ w_k/n
     each, so its mass is right whatever n ≥ 1 is. The slow variable starts at X = c_0 u_J + σ_0
     Z with J drawn by these weights, a draw from μ_{λ_0}.
  2. As (λ, x) move, the weights are updated as in annealed importance sampling,
     log w_j += log ν((x' - c' u_j)/σ') - log ν((x - c u_j)/σ) (π cancels: no evaluation),
     then the ensemble is resampled (systematic) when its ESS falls below M/2, then every chain
     takes its SK-ROCK step. The score is the weighted ensemble average.
Everything stays inside one particle, so the kernels are per chain (``is_population=False``):
chains stay independent and "parallel"/"sequential" chain methods work.

Cost of one trajectory (one MCMC iteration) per chain, in gradient evaluations:
    init: M (n_newton + 1) d (a Hessian counted as d gradients) + M (1 + 4 n_newton) density
          evaluations ("reference" init: M density evaluations, none when reweight=False);
    slow steps: M s + M density evaluations per step while λ < λ̃, M (s + 1) after (the π-form
          needs ∇log π at u; the guard needs log π);
    finish: num_final_steps + 1 (Langevin on π with the fast variable dropped).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm
from jax.flatten_util import ravel_pytree

from scoresample.diffusion.ou import GRIDS as OU_GRIDS
from scoresample.diffusion.ou import ou_alpha, time_grid
from scoresample.diffusion.paths import (
    FRICTION_SCHEDULES,
    LAMBDA_SCHEDULES,
    friction_schedule,
    kinetic_reverse_step,
    kinetic_signal,
    kinetic_time_for_signal,
    lambda_grid,
)
from scoresample.diffusion.skrock import skrock_step, stability_bound
from scoresample.samplers.base import (
    SamplerSpec,
    SamplingAPI,
    check_choice,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    value_and_grad_finite,
)

__all__ = [
    "MultiscaleConfig",
    "MultiscaleInfo",
    "MultiscaleState",
    "as_top_level_api",
    "build_kernel",
    "default_horizon",
    "init",
    "make_config",
    "multalmc",
    "multcdiff",
    "spec",
]

METHODS = ("almc", "cdiff")
BASES = ("gaussian", "student_t")
INITS = ("laplace", "reference")
CDIFF_GRIDS = OU_GRIDS
STABILITY_SAFETY = 0.8
MAX_DIFFUSION = 10.0
HESSIAN_FLOOR = 1.0  # proposal precision ≥ 1: no Laplace component wider than the reference
NEWTON_RADIUS = 2.0  # trust radius of one Newton step, in whitened units
# A fast move that lowers log ρ by more than MAX_DROP_BASE + MAX_DROP_PER_SQRT_DIM sqrt(d) nats
# drops the chain: between two draws of a Gaussian ρ in d dimensions log ρ differs with sd
# sqrt(d), so this is ten such sds plus a margin; the unstable steps it catches drop by 1e6 and
# more (eight schools, measured).
MAX_DROP_BASE = 20.0
MAX_DROP_PER_SQRT_DIM = 10.0
# Wide Newton starts only in fast ensembles of at least this many chains (measured on the hostile
# test's Cauchy coordinate, d = 5, contract-sized settings: IQR 28.7 / 13.6 / 7.0 at M = 2 / 4 / 8
# with them, 5.2 without at M = 2, exact 2; at the default M = 16 the Cauchy quantiles with and
# without agree within 0.4 and the exact 5%/95% quantiles ±6.3 come out −5.5/+5.6).
MIN_WIDE_ENSEMBLE = 8


@dataclasses.dataclass(frozen=True)
class MultiscaleConfig:
    """Static hyper-parameters (see ``make_config`` for meanings and defaults)."""

    method: str = "almc"
    num_steps: int = 50
    horizon: float = 5.0
    eps: float = 0.1
    fast_chains: int = 16
    reweight: bool = True
    init: str = "laplace"
    newton_steps: int = 3
    stages: int = 5
    damping: float = 0.05
    schedule: str = "sin2"
    lambda_min: float = 0.01
    lambda_switch: float = 0.6
    overdamped: bool = False
    friction_schedule: str = "constant"
    friction_low: float = 0.5
    friction: float = 2.0
    num_final_steps: int = 10
    final_step_size: float = 0.5
    base: str = "gaussian"
    tail_index: float = 3.0
    curvature: float = 1.0
    defensive: float = 0.1
    resample_threshold: float = 0.5
    wide_starts: float = 0.5
    wide_scale: float = 10.0


def default_horizon(method: str, overdamped: bool) -> float:
    """5 for MultALMC; 3 for MultCDiff (a_T² = e^{-6} = 0.0025 of signal left); 5 for the
    kinetic MultCDiff, where the signal decays like e^{-2s}(1 + 2s + 2s²): |a_5|² = 0.0028
    (at T = 3 it is 0.062; on eight schools T = 5 brought tau's sd error from 12% to 6%)."""
    if method == "cdiff":
        return 3.0 if overdamped else 5.0
    return 5.0


def make_config(method: str = "almc", **kwargs) -> MultiscaleConfig:
    """Validate and build a config; every invalid value raises a ValueError naming it.

    method: "almc" (MultALMC: annealed Langevin along λ_δ → 1 - λ_δ in slow time ``horizon``)
        or "cdiff" (MultCDiff: reverse OU from s = ``horizon`` to s_min with a_{s_min}² = 1 - λ_δ).
    num_steps: slow steps K per trajectory (default 50; h = horizon/K = 0.1 for MultALMC,
        measured: the d = 10 anisotropic Gaussian and the 2-D four-mode mixture are within
        tolerance at K = 50; K = 100 changed the mixture weights by < 0.01).
    horizon: MultALMC slow time T (default 5: several relaxation times of a whitened target);
        MultCDiff noising time T (default 3.0 there, a_T² = e^{-6}: the reference is reached;
        5.0 for the kinetic one, ``default_horizon``).
    eps: time-scale separation ε (default 0.1, the paper's range is 0.05–0.1); the fast step is
        h/ε, capped for SK-ROCK stability (module docstring).
    fast_chains: M fast chains per particle (default 16, measured on the 2-D four-mode
        mixture: M = 8 left the weight of the 0.1 mode at 0.074, M = 16 gave 0.094; 1 with
        reweight=False is the paper's version).
    reweight: importance weights and resampling of the fast ensemble (the repair; default True).
    init: "laplace" (Newton + Laplace-mixture importance start, default) or "reference".
    newton_steps: Newton moves of the "laplace" start (default 3).
    stages, damping: SK-ROCK s and η (paper: 5, 0.05).
    schedule: MultALMC λ schedule "sin2" (default) or "linear"; MultCDiff grid "geometric"
        (default) or "uniform" in s.
    lambda_min: λ_δ (paper: 0.01). lambda_switch: λ̃ (paper: 0.6).
    overdamped: overdamped slow process (default False: underdamped OBABO for MultALMC;
        default True for MultCDiff, whose underdamped version is the reverse of the kinetic OU
        process, module docstring; it needs base="gaussian").
    friction_schedule: "constant" (default, Γ = friction) or "ramp" (friction_low for the first
        half, then up to friction). friction: Γ (default 2, critical damping at unit curvature).
    num_final_steps: Langevin steps on π after λ = 1 - λ_δ (default 10), of size
        min(final_step_size, 0.3/sqrt(L)) (default 0.5 in whitened units) with friction
        max(friction, 2 sqrt(L)), L the largest curvature found by the start (measured: on the
        2-D four-mode mixture in whitened coordinates, L ≈ 100, a fixed h = 0.1, Γ = 2 left the
        within-mode sds 20% too wide).
    base: "gaussian" or "student_t" (ν = t_α, α = tail_index, default 3).
    curvature: L in the stability cap (default 1: whitened). The "laplace" start raises it to
        the largest precision its Newton moves find; the "reference" start estimates nothing,
        so there it must be the target's largest curvature (too small a value makes the fast
        steps unstable; the guard then rejects them and the fast chains stand still).
    defensive: β (default 0.1).
    resample_threshold: resample the fast ensemble when ESS < threshold × M (default 0.5).
    wide_starts, wide_scale: the fraction of the "laplace" start's Newton moves that begin from
        the reference widened by ``wide_scale`` (defaults 0.5 and 10; their trust radius is
        widened alike; none when fast_chains < ``MIN_WIDE_ENSEMBLE`` = 8). Measured through the
        NumPyro front on the 2-D four-mode mixture, where each chain's preconditioner is first
        the Laplace fit of one mode and the others lie 20 of its units away: without them every
        chain kept its start mode (weight error 0.15 over 8 chains), with them the error is 0.03
        (MultCDiff) and 0.055 (MultALMC).
    """
    cfg = {"method": method, **kwargs}
    if method == "cdiff":
        cfg.setdefault("overdamped", True)
        cfg.setdefault("horizon", default_horizon(method, cfg["overdamped"]))
        cfg.setdefault("schedule", "geometric")
    c = MultiscaleConfig(**cfg)
    check_choice("method", c.method, METHODS)
    check_positive_int("num_steps", c.num_steps)
    check_positive("horizon", c.horizon)
    check_positive("eps", c.eps)
    check_positive_int("fast_chains", c.fast_chains)
    check_choice("init", c.init, INITS)
    check_nonnegative_int("newton_steps", c.newton_steps)
    check_positive_int("stages", c.stages)
    check_positive("damping", c.damping, allow_zero=True)
    choices = LAMBDA_SCHEDULES if c.method == "almc" else CDIFF_GRIDS
    check_choice("schedule", c.schedule, choices)
    if not (0.0 < float(c.lambda_min) < 0.5):
        raise ValueError(f"lambda_min must lie in (0, 0.5), got {c.lambda_min!r}")
    if not (0.0 < float(c.lambda_switch) <= 1.0):
        raise ValueError(f"lambda_switch must lie in (0, 1], got {c.lambda_switch!r}")
    check_choice("friction_schedule", c.friction_schedule, FRICTION_SCHEDULES)
    check_positive("friction_low", c.friction_low)
    check_positive("friction", c.friction)
    check_nonnegative_int("num_final_steps", c.num_final_steps)
    check_positive("final_step_size", c.final_step_size)
    check_choice("base", c.base, BASES)
    check_positive("tail_index", c.tail_index)
    check_positive("curvature", c.curvature)
    if not (0.0 <= float(c.defensive) <= 1.0):
        raise ValueError(f"defensive must lie in [0, 1], got {c.defensive!r}")
    if not (0.0 <= float(c.wide_starts) <= 1.0):
        raise ValueError(f"wide_starts must lie in [0, 1], got {c.wide_starts!r}")
    check_positive("wide_scale", c.wide_scale)
    if not (0.0 <= float(c.resample_threshold) <= 1.0):
        raise ValueError(f"resample_threshold must lie in [0, 1], got {c.resample_threshold!r}")
    if c.method == "cdiff" and c.base != "gaussian":
        # The reverse-OU drift (and the kinetic one) holds only for the Gaussian forward process;
        # heavy-tailed MultCDiff is left open by the paper. Measured before this check: on
        # N(0, I) in d = 2 the overdamped variant's draws had variance 34, on t_3 quartiles ±6.5
        # (exact ±0.76). MultALMC's annealing path takes a Student-t base.
        raise ValueError(
            "base must be 'gaussian' for MultCDiff: its reverse diffusion (overdamped or "
            "kinetic) is the reverse of a Gaussian forward process only; use "
            "MultALMC(base='student_t') for a heavy-tailed reference"
        )
    return c


class MultiscaleState(NamedTuple):
    """position (pytree) and its log density: the draw of the last trajectory."""

    position: object
    logdensity: jax.Array


class MultiscaleInfo(NamedTuple):
    """diverging: non-finite trajectory (the input state is returned); min_ess: smallest ESS of
    the fast ensemble over the trajectory (as a fraction of M); num_resamples: resampling events."""

    diverging: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array
    min_ess: jax.Array
    num_resamples: jax.Array

    @property
    def is_divergent(self):  # BlackJAX's name
        return self.diverging


def init(position, logdensity_fn: Callable) -> MultiscaleState:
    """State at ``position`` (one gradient evaluation, for the front's cost accounting)."""
    flat, unravel = ravel_pytree(position)
    ld, _ = value_and_grad_finite(lambda y: logdensity_fn(unravel(y)), flat)
    return MultiscaleState(position, ld)


# ---------------------------------------------------------------------------------------------
# The path coefficients on the slow grid (static numpy)


class _Grid(NamedTuple):
    c: np.ndarray  # (K+1,)
    sigma: np.ndarray  # (K+1,)
    lam: np.ndarray  # (K+1,)
    h: np.ndarray  # (K,) slow step lengths
    u: np.ndarray  # (K,) normalised time at each step's midpoint (friction schedule)
    # Kinetic MultCDiff only: a_s (K+1, 2), â_s = a_s/|a_s|, and the step matrices (K, ...).
    a: np.ndarray | None = None
    ahat: np.ndarray | None = None
    phi: np.ndarray | None = None
    psi: np.ndarray | None = None
    chol: np.ndarray | None = None


def _kinetic(c: MultiscaleConfig) -> bool:
    return c.method == "cdiff" and not c.overdamped


def _grid(c: MultiscaleConfig) -> _Grid:
    k = c.num_steps
    if c.method == "almc":
        lam = lambda_grid(k, c.schedule, c.lambda_min)
        h = np.full(k, c.horizon / k)
    else:
        # s_min: the noise level whose signal² |a|² (OU: a_s²) is 1 - λ_δ.
        if _kinetic(c):
            s_min = kinetic_time_for_signal(1.0 - c.lambda_min)
        else:
            s_min = -0.5 * np.log1p(-c.lambda_min)
        if not s_min < c.horizon:
            raise ValueError(f"horizon must exceed s_min = {s_min:.4f}, got {c.horizon!r}")
        s = time_grid(c.horizon, s_min, k, c.schedule)
        h = s[:-1] - s[1:]
        if _kinetic(c):
            a = kinetic_signal(s)
            lam = np.sum(a**2, axis=-1)
            u = (np.arange(k) + 0.5) / k
            step = kinetic_reverse_step(h)
            ahat = a / np.sqrt(lam)[:, None]
            return _Grid(np.sqrt(lam), np.sqrt(1.0 - lam), lam, h, u, a, ahat, *step)
        lam = np.asarray(ou_alpha(s), np.float64) ** 2
    u = (np.arange(k) + 0.5) / k
    return _Grid(np.sqrt(lam), np.sqrt(1.0 - lam), lam, h, u)


# ---------------------------------------------------------------------------------------------
# The reference ν


def _t_scale2(d, alpha):
    """s² = (α + d)/α: the t_α reference is scaled so that its Hessian at 0 is -I, like N(0, I)
    and like a target whitened by its Laplace approximation (module docstring)."""
    return (alpha + d) / alpha


def _log_nu(z, base, alpha):
    d = z.shape[-1]
    r2 = jnp.sum(z**2, axis=-1)
    if base == "gaussian":
        return -0.5 * r2
    return -0.5 * (alpha + d) * jnp.log1p(r2 / (alpha * _t_scale2(d, alpha)))


def _grad_log_nu(z, base, alpha):
    if base == "gaussian":
        return -z
    d = z.shape[-1]
    s2 = _t_scale2(d, alpha)
    r2 = jnp.sum(z**2, axis=-1, keepdims=True)
    return -((alpha + d) / (alpha * s2)) * z / (1.0 + r2 / (alpha * s2))


def _sample_nu(key, shape, dtype, base, alpha):
    """Draws of ν, shape (..., d): N(0, I) or s · t_α (normal / sqrt(χ²_α / α))."""
    k1, k2 = jax.random.split(key)
    g = jax.random.normal(k1, shape, dtype)
    if base == "gaussian":
        return g
    chi2 = 2.0 * jax.random.gamma(k2, alpha / 2.0, shape[:-1] + (1,), dtype)
    return jnp.sqrt(_t_scale2(shape[-1], alpha)) * g / jnp.sqrt(chi2 / alpha)


def _log_nu_normalised(z, base, alpha):
    """log ν(z) including its normalising constant (for the defensive proposal density)."""
    d = z.shape[-1]
    if base == "gaussian":
        return _log_nu(z, base, alpha) - 0.5 * d * jnp.log(2 * jnp.pi)
    lg = jax.scipy.special.gammaln
    const = lg((alpha + d) / 2) - lg(alpha / 2) - 0.5 * d * jnp.log(alpha * jnp.pi)
    const = const - 0.5 * d * jnp.log(_t_scale2(d, alpha))
    return _log_nu(z, base, alpha) + const


# ---------------------------------------------------------------------------------------------
# The start of the fast ensemble


NEWTON_FRACTIONS = (1.0, 0.5, 0.25, 0.125)  # step lengths tried by one Newton move


def _newton_start(xi, flat_ld, n_steps, radius):
    """Monotone saddle-free Newton moves from each row of xi; returns (a, precision eigvals,
    eigvecs). Each move tries the fractions ``NEWTON_FRACTIONS`` of the (trust-region clipped)
    step and keeps the best point, or stays where none raises log π: a full step overshoots on
    a funnel (eight schools: from the posterior bulk to log τ ≈ 4-6, beyond the mode at 3.4,
    where the Laplace precision is in the thousands, measured)."""
    d = xi.shape[-1]
    eye = jnp.eye(d, dtype=xi.dtype)

    def value_grad_hessian(u):
        vg = lambda y: value_and_grad_finite(flat_ld, y)
        (ld, g), (_, hcols) = jax.lax.map(lambda e: jax.jvp(vg, (u,), (e,)), eye)
        h = -0.5 * (hcols + hcols.T)  # Hessian of U = -log π
        h = jnp.where(jnp.all(jnp.isfinite(h)), h, eye)
        return ld[0], g[0], h

    fractions = jnp.asarray(NEWTON_FRACTIONS, xi.dtype)

    def move(carry, _):
        u, r = carry
        ld, g, h = value_grad_hessian(u)
        lam, vec = jnp.linalg.eigh(h)
        gl = vec.T @ g  # components of ∇log π along the eigenvectors
        step_conv = gl / jnp.maximum(lam, 1e-6)  # Newton step where U is convex
        step_flat = jnp.sign(gl) * r  # escape at full radius elsewhere
        step = vec @ jnp.where(lam > HESSIAN_FLOOR * 1e-3, step_conv, step_flat)
        norm = jnp.linalg.norm(step)
        step = step * jnp.minimum(1.0, r / jnp.maximum(norm, 1e-12))
        cand = u + fractions[:, None] * step
        ld_c = jax.vmap(flat_ld)(cand)
        ld_c = jnp.where(jnp.isfinite(ld_c), ld_c, -jnp.inf)
        best = jnp.argmax(ld_c)
        better = ld_c[best] > jnp.where(jnp.isfinite(ld), ld, -jnp.inf)
        return (jnp.where(better, cand[best], u), r), None

    def one(u, r):
        (u, _), _ = jax.lax.scan(move, (u, r), None, length=n_steps)
        _, _, h = value_grad_hessian(u)
        lam, vec = jnp.linalg.eigh(h)
        return u, jnp.maximum(lam, HESSIAN_FLOOR), vec

    return jax.vmap(one)(xi, radius)


def _log_gauss_eig(u, a, prec, vec):
    """log N(u; a, V diag(1/prec) Vᵀ), normalised."""
    y = vec.T @ (u - a)
    d = u.shape[-1]
    return (
        -0.5 * jnp.sum(prec * y**2) + 0.5 * jnp.sum(jnp.log(prec)) - 0.5 * d * jnp.log(2 * jnp.pi)
    )


def _start_ensemble(key, flat_ld, c: MultiscaleConfig, dim, dtype):
    """(u (M, d), log w (M,), alive (M,), log π(u) (M,), grads, densities, curvature) for the
    fast ensemble at
    the start; the weights target π itself (the tilt by the slow variable is added by the
    caller). The curvature is max(``config.curvature``, the largest Laplace precision found)."""
    m = c.fast_chains
    k_ref, k_comp, k_lap = jax.random.split(key, 3)
    xi = _sample_nu(k_ref, (m, dim), dtype, c.base, c.tail_index)
    if c.init == "reference":
        u = xi
        if not c.reweight:
            unknown = jnp.full(m, -jnp.inf, dtype)  # log π not evaluated: no guard at step 1
            return u, jnp.zeros(m, dtype), jnp.ones(m, bool), unknown, 0, 0, c.curvature
        ld = jax.vmap(flat_ld)(u)
        ld = jnp.where(jnp.isfinite(ld), ld, -jnp.inf)
        logw = ld - _log_nu_normalised(u, c.base, c.tail_index)
        return u, logw, jnp.isfinite(ld), ld, 0, m, c.curvature
    # Newton starts: a fraction ``wide_starts`` of them from the reference widened by
    # ``wide_scale``, with a trust radius widened alike (so that a wide start reaches the mode
    # nearest to it in the same few moves): they find the modes the reference does not cover
    # (through the NumPyro front the reference is one chain's Laplace fit of ONE mode). Where
    # the starts come from does not bias the weights: u is drawn from the mixture the Newton
    # moves produce, and weighted by that mixture's density.
    # Below MIN_WIDE_ENSEMBLE chains there are none: a wide start is then a large share of an
    # ensemble too small to resample it away (M = 2: ESS ≥ 1 = M/2 always).
    n_wide = int(round(c.wide_starts * m)) if m >= MIN_WIDE_ENSEMBLE else 0
    widen = jnp.where(jnp.arange(m) < m - n_wide, 1.0, c.wide_scale).astype(dtype)
    a, prec, vec = _newton_start(
        xi * widen[:, None], flat_ld, c.newton_steps, NEWTON_RADIUS * widen
    )
    eta = jax.random.normal(k_lap, (m, dim), dtype)
    lap = a + jax.vmap(lambda v, p, e: v @ (e / jnp.sqrt(p)))(vec, prec, eta)
    ref = _sample_nu(jax.random.fold_in(k_ref, 1), (m, dim), dtype, c.base, c.tail_index)
    use_ref = jax.random.uniform(k_comp, (m,)) < c.defensive
    u = jnp.where(use_ref[:, None], ref, lap)
    # Deterministic-mixture density q(u_j) = (1-β)/M Σ_i N(u_j; a_i, Σ_i) + β ν(u_j).
    log_lap = jax.vmap(
        lambda uj: jax.vmap(lambda ai, pi, vi: _log_gauss_eig(uj, ai, pi, vi))(a, prec, vec)
    )(u)  # (M, M)
    beta = jnp.asarray(c.defensive, dtype)
    terms = [jax.scipy.special.logsumexp(log_lap, axis=1) + jnp.log1p(-beta) - jnp.log(m)]
    if c.defensive > 0:
        terms.append(_log_nu_normalised(u, c.base, c.tail_index) + jnp.log(beta))
    log_q = jax.scipy.special.logsumexp(jnp.stack(terms), axis=0) if len(terms) > 1 else terms[0]
    ld = jax.vmap(flat_ld)(u)
    ld = jnp.where(jnp.isfinite(ld), ld, -jnp.inf)
    logw = ld - log_q if c.reweight else jnp.zeros(m, dtype)
    grads = m * (c.newton_steps + 1) * dim
    # The stability cap needs the curvature where the ensemble has its mass: the largest
    # precision of the Laplace components whose own draw carries a weight ≥ 1%/M. (A Newton
    # start that ended in a stiff corner of no mass, e.g. deep in eight schools' funnel, found
    # precisions up to 1e32 with the wide starts, measured, and froze every fast chain.)
    w = _normalised_weights(logw, jnp.isfinite(ld), c.reweight)
    counts = (w >= 0.01 / m) & ~use_ref
    curvature = jnp.maximum(c.curvature, jnp.max(jnp.where(counts, jnp.max(prec, -1), 0.0)))
    dens = m * (1 + c.newton_steps * len(NEWTON_FRACTIONS))
    return u, logw, jnp.isfinite(ld), ld, grads, dens, curvature


# ---------------------------------------------------------------------------------------------
# The trajectory


def _normalised_weights(logw, alive, reweight):
    if reweight:
        return jax.nn.softmax(jnp.where(alive, logw, -jnp.inf))
    w = alive.astype(logw.dtype)
    return w / jnp.maximum(jnp.sum(w), 1.0)


def _systematic_resample(uniform, w):
    m = w.shape[0]
    pos = (uniform + jnp.arange(m, dtype=w.dtype)) / m
    cdf = jnp.cumsum(w)
    return jnp.clip(jnp.searchsorted(cdf, pos), 0, m - 1)


def _diffusion(u, c: MultiscaleConfig):
    """a(u) of the heavy-tailed fast process and ∇a(u) (module docstring)."""
    d = u.shape[-1]
    alpha_s2 = c.tail_index * _t_scale2(d, c.tail_index)  # α s² = α + d
    raw = (1.0 + jnp.sum(u**2) / alpha_s2) / (1.0 + d / alpha_s2)
    capped = raw >= MAX_DIFFUSION
    a = jnp.minimum(raw, MAX_DIFFUSION)
    grad_a = jnp.where(capped, 0.0, 2.0 * u / (alpha_s2 + d))
    return a, grad_a


def build_kernel(config: MultiscaleConfig) -> Callable:
    """Return kernel(rng_key, state, logdensity_fn) -> (state, info): one full trajectory."""
    c = config
    grid = _grid(c)
    ell = stability_bound(c.stages, c.damping)
    m = c.fast_chains
    kinetic = _kinetic(c)
    switch = int(np.searchsorted(grid.lam[1:], c.lambda_switch))  # steps using the ν-form
    fr = np.asarray(friction_schedule(grid.u, c.friction_schedule, c.friction_low, c.friction))

    def kernel(rng_key, state: MultiscaleState, logdensity_fn: Callable):
        x_old, unravel = ravel_pytree(state.position)
        dim, dtype = x_old.shape[0], x_old.dtype
        flat_ld = lambda y: logdensity_fn(unravel(y))
        alpha = c.tail_index
        kappa_nu = 1.0  # the largest curvature of -log ν (both references: 1 at z = 0)
        max_drop = MAX_DROP_BASE + MAX_DROP_PER_SQRT_DIM * np.sqrt(dim)
        keys = jax.random.split(rng_key, 6)

        # --- start: fast ensemble ~ π (weighted), slow variable ~ μ_{λ_0}
        u, logw, alive, ld_u, g0, n0, curv = _start_ensemble(keys[0], flat_ld, c, dim, dtype)
        curv = jnp.asarray(curv, dtype)
        w = _normalised_weights(logw, alive, c.reweight)
        j = jax.random.choice(keys[1], m, p=w) if c.reweight else 0
        c0, s0 = grid.c[0], grid.sigma[0]
        if kinetic:
            # (x, v) ~ N(a_T u_J, I - a_T a_Tᵀ) per coordinate; y = â_Tᵀ(x, v) is what the
            # fast ensemble conditions on (y | u_J ~ N(c_0 u_J, σ_0²)).
            zeta2 = jax.random.normal(keys[2], (2, dim), dtype)
            a0 = grid.a[0]
            l0 = np.linalg.cholesky(np.eye(2) - np.outer(a0, a0))
            x = a0[0] * u[j] + l0[0, 0] * zeta2[0]
            v = a0[1] * u[j] + l0[1, 0] * zeta2[0] + l0[1, 1] * zeta2[1]
            y = grid.ahat[0, 0] * x + grid.ahat[0, 1] * v
        else:
            zeta = _sample_nu(keys[2], (dim,), dtype, c.base, alpha)
            x = c0 * u[j] + s0 * zeta
            v = jax.random.normal(keys[3], (dim,), dtype)
            y = x
        log_nu_prev = _log_nu((y - c0 * u) / s0, c.base, alpha)
        logw = logw + log_nu_prev if c.reweight else logw
        logw = jnp.where(alive, logw, -jnp.inf)

        def nu_terms(y, u, ck, sk):
            """Per fast chain, the ν-form term ∇log ν(z)/σ, z = (y - c u)/σ."""
            return _grad_log_nu((y - ck * u) / sk, c.base, alpha) / sk

        w0 = _normalised_weights(logw, alive, c.reweight)
        b = jnp.sum(w0[:, None] * nu_terms(y, u, c0, s0), axis=0)

        def slow_step(carry, inp):
            x, v, y, b, u, ld_u, g_u, has_g, logw, alive, min_ess, n_res = carry
            (xi3, u_res, xi_fast), ck_old, sk_old, ck, sk, h, fric, delta_cap, pi_form, kin = inp
            # -- slow move (first half for OBABO)
            if kinetic:
                # Reverse kinetic OU (diffusion/paths.py): the velocity score from the
                # effective one b = ∇_y log p: ∇_v log p = -(v - â_v y) + â_v b, frozen over
                # the step; the linear part is integrated exactly.
                phi, psi, chol, ahat_old, ahat_new = kin
                force = 4.0 * (-(v - ahat_old[1] * y) + ahat_old[1] * b)
                x_new = phi[0, 0] * x + phi[0, 1] * v + psi[0] * force + chol[0, 0] * xi3[0]
                v = (
                    phi[1, 0] * x
                    + phi[1, 1] * v
                    + psi[1] * force
                    + chol[1, 0] * xi3[0]
                    + chol[1, 1] * xi3[1]
                )
                y_new = ahat_new[0] * x_new + ahat_new[1] * v
            elif c.method == "cdiff":
                eh = jnp.exp(h)
                x_new = eh * x + 2.0 * (eh - 1.0) * b + jnp.sqrt(jnp.expm1(2.0 * h)) * xi3[0]
            elif c.overdamped:
                x_new = x + h * b + jnp.sqrt(2.0 * h) * xi3[0]
            else:
                decay = jnp.exp(-0.5 * fric * h)
                v = decay * v + jnp.sqrt(1.0 - decay**2) * xi3[1]
                v = v + 0.5 * h * b
                x_new = x + h * v
            if not kinetic:
                y_new = x_new  # what the fast ensemble conditions on
            # -- fast ensemble: reweight (AIS), resample, move
            if c.reweight:
                inc = _log_nu((y_new - ck * u) / sk, c.base, alpha) - _log_nu(
                    (y - ck_old * u) / sk_old, c.base, alpha
                )
                logw = jnp.where(alive, logw + inc, -jnp.inf)
                w = _normalised_weights(logw, alive, True)
                ess = 1.0 / jnp.sum(w**2) / m
                do_res = ess < c.resample_threshold
                idx = jnp.where(do_res, _systematic_resample(u_res, w), jnp.arange(m))
                u, alive, ld_u = u[idx], alive[idx], ld_u[idx]
                g_u, has_g = g_u[idx], has_g[idx]
                logw = jnp.where(do_res, jnp.zeros_like(logw), logw[idx])
                logw = jnp.where(alive, logw, -jnp.inf)
                min_ess = jnp.minimum(min_ess, ess)
                n_res = n_res + do_res.astype(jnp.int32)
            delta = jnp.minimum(h / c.eps, delta_cap)

            def move_one(noise_j, uj):
                def drift_and_ok(y):
                    ld, g = value_and_grad_finite(flat_ld, y)
                    z = (y_new - ck * y) / sk
                    f = g - (ck / sk) * _grad_log_nu(z, c.base, alpha)
                    return f, jnp.isfinite(ld)

                if c.base == "student_t":
                    a, grad_a = _diffusion(uj, c)
                    dt = jnp.minimum(delta * a, delta_cap)

                    def drift(y):
                        f, ok = drift_and_ok(y)
                        return f + grad_a / a, ok

                else:
                    dt, drift = delta, drift_and_ok
                return skrock_step(
                    None, uj, drift, dt, c.stages, c.damping, noise=noise_j, has_aux=True
                )

            u_old = u
            u, ok = jax.vmap(move_one)(xi_fast, u)

            # log π at the moved chains: with its gradient where the π-form needs it (the
            # predicate comes from the unbatched grid, so under vmap this stays a real branch
            # and the gradients are evaluated, and counted, only where they are used), alone
            # otherwise (one density evaluation per chain, for the guard below).
            def with_grad(u):
                return jax.vmap(lambda y: value_and_grad_finite(flat_ld, y))(u)

            def value_only(u):
                return jax.vmap(flat_ld)(u), jnp.zeros_like(u)

            ld_new, g_new = jax.lax.cond(pi_form, with_grad, value_only, u)
            ld_new = jnp.where(jnp.isfinite(ld_new), ld_new, -jnp.inf)
            # Guard against an unstable explicit step (a chain in a region stiffer than the
            # cap assumes): a move that lowers log ρ_{λ,x} by more than ``max_drop`` nats, or
            # lands where log π is not finite, is rejected and the chain stays where it was.
            # Staying put leaves ρ invariant, so the AIS weights stay right; dropping the chain
            # instead (the first version) removed chains from the stiff regions themselves
            # (eight schools' funnel neck) and, with one fast chain, killed the trajectory.
            log_rho_old = ld_u + _log_nu((y_new - ck * u_old) / sk, c.base, alpha)
            log_rho_new = ld_new + _log_nu((y_new - ck * u) / sk, c.base, alpha)
            stable = ~(log_rho_new < log_rho_old - max_drop)
            moved = ok & jnp.all(jnp.isfinite(u), axis=-1) & jnp.isfinite(ld_new) & stable
            u = jnp.where(moved[:, None], u, u_old)
            ld_u = jnp.where(moved, ld_new, ld_u)
            g_u = jnp.where(moved[:, None], g_new, g_u)
            has_g = jnp.where(moved, pi_form, has_g)
            w = _normalised_weights(logw, alive, c.reweight)
            # Per chain, the π-form term ∇log π(u_j)/c where ∇log π(u_j) is known (the chain
            # moved at a π-form step, or has not moved since), the ν-form term otherwise: both
            # have the score as their expectation under ρ.
            terms = jnp.where((pi_form & has_g)[:, None], g_u / ck, nu_terms(y_new, u, ck, sk))
            b_new = jnp.sum(w[:, None] * terms, axis=0)
            if c.method == "almc" and not c.overdamped:
                v = v + 0.5 * h * b_new
                decay = jnp.exp(-0.5 * fric * h)
                v = decay * v + jnp.sqrt(1.0 - decay**2) * xi3[2]
            carry = (x_new, v, y_new, b_new, u, ld_u, g_u, has_g, logw, alive, min_ess, n_res)
            return carry, None

        k_steps = c.num_steps
        if kinetic:
            kin = tuple(
                jnp.asarray(a, dtype)
                for a in (grid.phi, grid.psi, grid.chol, grid.ahat[:-1], grid.ahat[1:])
            )
        else:
            kin = jnp.zeros((k_steps,), dtype)  # unused
        stiff = curv + jnp.asarray(kappa_nu * grid.lam[1:] / (1.0 - grid.lam[1:]), dtype)
        cap = STABILITY_SAFETY * ell / stiff
        # All the noise of the trajectory is drawn up front: random-number generation inside
        # loop bodies dominated the compile time (measured).
        kn = jax.random.split(keys[4], 3)
        noise = (
            jax.random.normal(kn[0], (k_steps, 3, dim), dtype),
            jax.random.uniform(kn[1], (k_steps,), dtype),
            jax.random.normal(kn[2], (k_steps, m, dim), dtype),
        )
        inputs = (
            noise,
            jnp.asarray(grid.c[:-1], dtype),
            jnp.asarray(grid.sigma[:-1], dtype),
            jnp.asarray(grid.c[1:], dtype),
            jnp.asarray(grid.sigma[1:], dtype),
            jnp.asarray(grid.h, dtype),
            jnp.asarray(fr, dtype),
            jnp.asarray(cap, dtype),
            jnp.arange(k_steps) >= switch,
            kin,
        )
        carry = (x, v, y, b, u, ld_u, jnp.zeros_like(u), jnp.zeros(m, bool), logw, alive)
        carry = carry + (jnp.asarray(1.0, dtype), jnp.asarray(0, jnp.int32))
        carry, _ = jax.lax.scan(slow_step, carry, inputs)
        x, v, y, b, u, ld_u, g_u, has_g, logw, alive, min_ess, n_res = carry
        if kinetic:  # the finish's velocity is its own (the kinetic OU velocity is not π's)
            v = jax.random.normal(keys[3], (dim,), dtype)

        # --- finish: Langevin on π with the fast variable dropped
        ld, g = value_and_grad_finite(flat_ld, x)
        # Critical damping and h √L = 0.3 at the largest curvature found: the stiff directions,
        # where the λ_δ gap matters most, relax by e^{-3} in the default 10 steps, and the
        # OBABO position-variance bias, 1/(1 - h²L/4) on a Gaussian, stays at 2%.
        hf = jnp.minimum(jnp.asarray(c.final_step_size, dtype), 0.3 / jnp.sqrt(curv))
        gam = jnp.maximum(jnp.asarray(c.friction, dtype), 2.0 * jnp.sqrt(curv))

        def final_step(carry, key):
            # Always underdamped (OBABO): the finish is plain kinetic Langevin on π whichever
            # slow process ran before (ALGORITHMS.md §3); overdamped runs start it at v ~ N(0, I).
            x, v, ld, g = carry
            decay = jnp.exp(-0.5 * gam * hf)
            v = decay * v + jnp.sqrt(1 - decay**2) * key[0]
            v = v + 0.5 * hf * g
            x = x + hf * v
            ld, g = value_and_grad_finite(flat_ld, x)
            v = v + 0.5 * hf * g
            v = decay * v + jnp.sqrt(1 - decay**2) * key[1]
            return (x, v, ld, g), None

        if c.num_final_steps > 0:
            (x, v, ld, g), _ = jax.lax.scan(
                final_step,
                (x, v, ld, g),
                jax.random.normal(keys[5], (c.num_final_steps, 2, dim), dtype),
            )
        n_pi = k_steps - switch
        n_grad = g0 + m * c.stages * k_steps + m * n_pi + c.num_final_steps + 1
        ok = jnp.isfinite(ld) & jnp.all(jnp.isfinite(x)) & jnp.any(alive)
        new = MultiscaleState(unravel(x), ld)
        new = jax.tree.map(lambda a, b_: jnp.where(ok, a, b_), new, state)
        info = MultiscaleInfo(
            diverging=~ok,
            num_grad_evals=jnp.asarray(n_grad, jnp.int32),
            num_density_evals=jnp.asarray(n0 + m * switch, jnp.int32),
            min_ess=min_ess,
            num_resamples=n_res,
        )
        return new, info

    return kernel


def as_top_level_api(logdensity_fn: Callable, method: str = "almc", **params) -> SamplingAlgorithm:
    """BlackJAX-style: ``alg.init(position)``, ``alg.step(rng_key, state)``; each step is one
    independent trajectory. The reference ν is N(0, I) (or t_α) in the caller's coordinates, so
    pass a log density on (roughly) standardised coordinates. Parameters: ``make_config``."""
    config = make_config(method, **params)
    kernel = build_kernel(config)

    def init_fn(position, rng_key=None):
        del rng_key
        return init(position, logdensity_fn)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, logdensity_fn)

    return SamplingAlgorithm(init_fn, step_fn)


def _multalmc(logdensity_fn, **params):
    return as_top_level_api(logdensity_fn, "almc", **params)


def _multcdiff(logdensity_fn, **params):
    return as_top_level_api(logdensity_fn, "cdiff", **params)


multalmc = SamplingAPI(_multalmc, init, build_kernel)
multcdiff = SamplingAPI(_multcdiff, init, build_kernel)


def spec(method: str = "almc", **params) -> SamplerSpec:
    """MultALMC / MultCDiff for the NumPyro front (whitened flat positions, per chain).

    No step size is adapted (``step_size_probe`` is None): the slow step is horizon/num_steps
    and the fast step is capped by SK-ROCK's stability interval (module docstring).
    """
    config = make_config(method, **params)
    kernel = build_kernel(config)

    def init_fn(rng_key, position, logdensity_fn):
        del rng_key
        return init(position, logdensity_fn)

    def step_fn(rng_key, state, logdensity_fn, step_size):
        del step_size
        return kernel(rng_key, state, logdensity_fn)

    return SamplerSpec(
        init_fn, step_fn, None, is_population=False, uses_gradients=True, unadjusted=True
    )
