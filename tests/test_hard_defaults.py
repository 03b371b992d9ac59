"""Hard hierarchical targets at every kernel's DEFAULTS (issue 12, "what it must show").

Each test runs ``MCMC(Kernel(model), ...)`` with nothing but the model: no inflation, no
reference, no tuned hyper-parameter; the warmup builds its reference from the model's prior.
CMCD is left out here: its funnel test (a strict xfail) lives in tests/test_cmcd_prior_path.py.

(a) Centred eight schools (``targets.priors.centred_eight_schools_model``): its joint law of
    (mu, tau, theta) is that of posteriordb's eight_schools_noncentered (tests/
    test_prior_targets.py checks the densities), so the reference summary of the NON-centred
    model applies as it is: it already holds theta[j] = mu + tau theta_trans[j] in the
    constrained space, and the centred model samples theta directly
    (``eight_schools_constrained`` only renames the sites). Bounds (the issue's): every one of
    the 10 parameters has |z| < 0.15, z = (mean − ref mean) / ref sd, and |sd / ref sd − 1| < 0.10.
(b) The hierarchical funnel, d = 10 (``targets.priors.hierarchical_funnel``: v ~ N(0, 3²),
    x | v ~ N(0, e^v I₉); posterior = prior): |sd(v) / 3 − 1| < 0.10 and
    |P̂(v < −3) − Φ(−1)| < 0.05, Φ(−1) = 0.1587.

Sizes (what a 2-core CI affords; most of each test's time is compiling Pathfinder and the
kernel, about 25 s): RDMC / MultALMC / MultCDiff 4 chains x (100 warmup + 200 draws), the
issue-12 benchmark's 100 warmup iterations; RandomizedMidpoint 4 x (200 + 400) (correlated
Langevin draws); EnsembleDiffusion 256 particles x (100 + 100). Seed 0 in the tests; seeds 0, 1, 2
measured.

Monte Carlo error of the bounds, from the measured runs' ArviZ ESS. One MCMC iteration of RDMC /
MultALMC / MultCDiff / EnsembleDiffusion is a complete trajectory from the frozen reference, so
the draws are nearly independent: ESS of mu, tau, v, v^2 and 1{v < -3} was 640-990 for the 800
per-chain draws, about 27 000 for the ensemble's 25 600.
  * a mean: sd(z) = 1/sqrt(ESS) <= 1/sqrt(640) = 0.040, so |z| < 0.15 is >= 3.8 MC sd.
  * an sd: sd(s_hat/s) ~ sqrt((kappa - 1) / (4 ESS)), kappa the kurtosis. For v (Gaussian,
    kappa = 3): 1/sqrt(2 * 640) = 0.028, so 10% is 3.6 MC sd. Eight schools (kappa of the
    posteriordb draws: mu 3.1, theta[1] 5.8, tau 8.8): 0.043 for theta[1], 0.055 for tau, so
    10% is only 2.3 / 1.8 MC sd there: when a kernel is fixed and this test passes, buy more
    draws before trusting it (loosen nothing).
  * P_hat(v < -3): sd = sqrt(p (1 - p) / ESS) = sqrt(0.1587 * 0.8413 / 640) = 0.0144, so 0.05 is
    3.5 MC sd (EnsembleDiffusion: 0.0023).
Every failure below lies at least 6.8 MC sd beyond its bound at every seed (the closest:
MultCDiff's funnel sd(v) 2.13 at seed 1, error -0.29 vs 0.10), so the strict xfails are not
marginal. The causes in the reasons come from the diagnostics in the comments above each table
(the preconditioner after warmup; a warmup of 10 iterations, i.e. the Pathfinder or
moment-matched reference without Welford refinement; one changed keyword).
"""

import arviz as az
import jax
import numpy as np
import pytest
from numpyro.infer import MCMC

import scoresample
from scoresample.targets.posteriors import (
    EIGHT_SCHOOLS,
    EIGHT_SCHOOLS_SIGMA,
    EIGHT_SCHOOLS_Y,
    eight_schools_constrained,
)
from scoresample.targets.priors import centred_eight_schools_model, hierarchical_funnel
from scoresample.targets.references import reference_summary

SEED = 0
PER_CHAIN_SIZES = dict(num_chains=4, num_warmup=100, num_samples=200)
POPULATION_SIZES = dict(num_chains=256, num_warmup=100, num_samples=100)  # chains = particles
RMP_SIZES = dict(num_chains=4, num_warmup=200, num_samples=400)  # correlated Langevin draws
SIZES = {
    "RDMC": PER_CHAIN_SIZES,
    "MultALMC": PER_CHAIN_SIZES,
    "MultCDiff": PER_CHAIN_SIZES,
    "RandomizedMidpoint": RMP_SIZES,
    "EnsembleDiffusion": POPULATION_SIZES,
}

Z_BOUND, SD_BOUND = 0.15, 0.10  # eight schools
V_SD_BOUND, P_NECK_BOUND = 0.10, 0.05  # funnel


def run_defaults(kernel, model, model_args):
    """``MCMC(Kernel(model))`` at the kernel's defaults, vectorized chains, fixed seed."""
    mcmc = MCMC(
        getattr(scoresample, kernel)(model),
        **SIZES[kernel],
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(SEED), *model_args)
    return mcmc


def ess(draws_by_chain):
    """ArviZ bulk ESS of one scalar quantity, draws (chains, draws)."""
    return float(az.ess(np.asarray(draws_by_chain, np.float64)))


def xfail(reason):
    # raises=AssertionError: only the statistical check may fail; a crash is a real failure.
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


# ---------------------------------------------------------------------------------------------
# (a) Centred eight schools against posteriordb (eight_schools_noncentered); reference log tau
# quantiles 1/5/25/50/75/95/99%: -3.22 -1.36 0.25 1.01 1.60 2.28 2.67. Measured (seeds 0/1/2):
#   RDMC               tau z +0.58/+0.61/+0.60; theta sd error +0.31/+0.28/+0.28; no draw below
#                      log tau -0.34/-0.25/-0.34. Preconditioner after 200 warmup: log tau 1.38 (sd
#                      0.68), theta scales 4.2-5.5 (the marginal covariance). Pathfinder reference
#                      alone (warmup 10): log tau quantiles -0.93 ... 2.79, mean tau 4.16 (z +0.17).
#   MultALMC           tau z -0.77/-0.80/-0.80; tau sd error -0.73/-0.78/-0.77; draws' log tau
#                      99% quantile 1.14 (ref 2.67). After 200 warmup: preconditioner log tau -0.13
#                      (sd 0.71), theta scales ~1.0; Pathfinder reference alone: log tau -0.6 (sd
#                      1.2), theta scales 1.3-1.8, and one exploding draw (mean tau 21).
#   MultCDiff          tau z -0.76/-0.81/-0.82; tau sd error -0.67/-0.72/-0.72.
#   RandomizedMidpoint tau z +0.60/-0.12/+0.58, tau sd error +0.14/-0.28/+0.28, ESS(tau)
#                      11/54/221, 0-0.4% flagged; lowest log tau -1.6/-1.8/-0.7 (session 6:
#                      shared Pathfinder reference, energy guard, 5 steps per draw; with per-chain
#                      MAP starts before: tau z 2.8e9/2.7e4/4.3e6, chains stuck at log tau
#                      -15/-18/-44).
#   EnsembleDiffusion  tau z +0.30/+0.46/+0.33; tau sd error -0.27/-0.21/-0.25; no draw below
#                      log tau -0.24/+0.05/-0.09 (at 200 + 200: z +0.31/+0.44/+0.33).
# No divergences except RandomizedMidpoint (flagged unstable steps).
# ---------------------------------------------------------------------------------------------
ES_XFAIL = {
    "RDMC": xfail(
        "measured tau z = +0.58 / +0.61 / +0.60 vs |z| < 0.15 (theta sd error +0.31 / +0.28 / "
        "+0.28 vs 0.10) at 4 x (100 + 200), seeds 0/1/2; cause: no draw below log tau ~ -0.3 "
        "(posterior 5% quantile -1.36): the Welford windows replace the Pathfinder reference by "
        "the marginal covariance (theta scale ~5), in whose whitening the neck (theta sd = tau) "
        "is too narrow for the score estimator; with the Pathfinder reference alone z is +0.17"
    ),
    "MultALMC": xfail(
        "measured tau z = -0.77 / -0.80 / -0.80 vs |z| < 0.15 and tau sd error -0.73 / -0.78 / "
        "-0.77 vs 0.10 at 4 x (100 + 200), seeds 0/1/2; cause: the reference is too narrow (log "
        "tau mean -0.13, sd 0.71; theta scales ~1 vs ~5) and the annealing from it never reaches "
        "the large-tau tail (99% quantile of log tau 1.1 vs 2.7); Welford windows refined from "
        "those draws keep it narrow"
    ),
    "MultCDiff": xfail(
        "measured tau z = -0.76 / -0.81 / -0.82 vs |z| < 0.15 and tau sd error -0.67 / -0.72 / "
        "-0.72 vs 0.10 at 4 x (100 + 200), seeds 0/1/2; cause: as MultALMC, a reference too "
        "narrow in log tau and theta (the large-tau tail is missing), refined from its own draws"
    ),
    "RandomizedMidpoint": xfail(
        "measured tau z = +0.60 / -0.12 / +0.58 vs |z| < 0.15 and tau sd error +0.14 / -0.28 / "
        "+0.28 vs 0.10, ESS(tau) 11 / 54 / 221, at 4 x (200 + 400), seeds 0/1/2 (0-0.4% of "
        "draws flagged); cause: the neck (theta sd = tau) is too stiff for the step that suits "
        "the rest (the shared Pathfinder reference's whitening): steps into it are unstable and "
        "undone, the chains enter it rarely (lowest log tau -1.6 / -1.8 / -0.7; posterior 5% "
        "quantile -1.36) and disagree (chain means of log tau 0.7-1.8 at seed 0). (Before the "
        "shared reference and the energy guard: tau z 2.8e9 / 2.7e4 / 4.3e6, chains stuck at "
        "log tau -15 / -18 / -44 from per-chain MAP starts.)"
    ),
    "EnsembleDiffusion": xfail(
        "measured tau z = +0.30 / +0.46 / +0.33 vs |z| < 0.15 and tau sd error -0.27 / -0.21 / "
        "-0.25 vs 0.10 at 256 particles x (100 + 100), seeds 0/1/2; cause: no draw below log "
        "tau ~ -0.2 (posterior 5% quantile -1.36): the gradient-free importance-sampled drift "
        "never puts weight in the neck (theta sd = tau) at the reference's scale"
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernel",
    [pytest.param(k, marks=ES_XFAIL[k]) if k in ES_XFAIL else k for k in SIZES],
)
def test_centred_eight_schools_at_defaults(kernel):
    ref = reference_summary(EIGHT_SCHOOLS)
    mcmc = run_defaults(kernel, centred_eight_schools_model, (EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y))
    draws = eight_schools_constrained(mcmc.get_samples())
    z = {n: (draws[n].mean() - r["mean"]) / r["sd"] for n, r in ref.items()}
    sd_err = {n: draws[n].std(ddof=1) / r["sd"] - 1.0 for n, r in ref.items()}
    ess_tau = ess(mcmc.get_samples(group_by_chain=True)["tau"])
    worst_z = max(z, key=lambda n: abs(z[n]))
    worst_sd = max(sd_err, key=lambda n: abs(sd_err[n]))
    msg = (
        f"worst z {worst_z} {z[worst_z]:+.3f}, worst sd error {worst_sd} "
        f"{sd_err[worst_sd]:+.3f}, ESS(tau) {ess_tau:.0f}"
    )
    assert abs(z[worst_z]) < Z_BOUND, msg
    assert abs(sd_err[worst_sd]) < SD_BOUND, msg


# ---------------------------------------------------------------------------------------------
# (b) Hierarchical funnel d = 10 (posterior = prior; exact marginal sd of each x_i is
# sqrt(E e^v) = e^{9/4} = 9.5, the neck's x sd at v = -3 is e^{-1.5} = 0.22). Measured
# (seeds 0/1/2; bounds: sd(v) in [2.7, 3.3], P(v < -3) in [0.109, 0.209]):
#   kernel             sd(v)               P(v < -3)               mean v             v range
#   RDMC               1.67 / 1.74 / 1.56  0 / 0 / 0               +7.1 / +6.3 / +7.1  [2.1, 13.7]
#   MultALMC           1.22 / 1.40 / 1.29  0.66 / 0.14 / 0.26      -3.6 / -1.5 / -2.4  max 2.2
#   MultCDiff          1.84 / 2.13 / 1.94  0.58 / 0.38 / 0.51      -3.7 / -2.5 / -3.1  max 2.9
#   EnsembleDiffusion  0.95 / 0.95 / 0.94  0 / 0 / 0               +1.5 / +1.2 / +1.7  [-2.0, 5.6]
# Diagnostics (seed 0; preconditioner diagonal in (v, x)):
#   RDMC: after 200 warmup m_v = 5.1, x scales 30-74; Pathfinder reference alone
#     (m_v = -5.1, sd 3.1, x scales 0.23): sd(v) 2.06, P 0.056; adapt_preconditioner=False: sd(v)
#     2.08, P 0.046; num_steps=128: x scales 9-11 (the exact marginal), mean v 3.8, P 0;
#     s_min=0.002: worse (x scales 170-300, mean v 10.3).
#   MultALMC: reference after 100 warmup m_v = -3.4, sd 1.3, x scales 0.18-0.26.
#   EnsembleDiffusion (200 warmup): after warmup m_v = 1.9, sd 0.98, x scales 3.0; moment-matched
#     prior reference alone (sd(v) 3.0, x scales 4-7.5): sd(v) 1.21, P 0.
# No divergences (MultCDiff seed 2: 0.1%).
# ---------------------------------------------------------------------------------------------
FUNNEL_XFAIL = {
    "RDMC": xfail(
        "measured sd(v) = 1.67 / 1.74 / 1.56 vs 3 +- 10% and P(v < -3) = 0 / 0 / 0 vs "
        "0.1587 +- 0.05 (mean v +7.1 / +6.3 / +7.1) at 4 x (100 + 200), seeds 0/1/2; cause: the "
        "Welford windows whiten by the marginal covariance (x sd >= 9.5) where the neck (x sd "
        "0.22 at v = -3) is below the score estimator's resolution, and the K = 32 outer "
        "discretisation's over-dispersion in x feeds back through the windows (x scales 30-74, "
        "a runaway to large v); even the Pathfinder reference alone gives P 0.05, sd(v) 2.1"
    ),
    "MultALMC": xfail(
        "measured sd(v) = 1.22 / 1.40 / 1.29 vs 3 +- 10% (P(v < -3) = 0.66 / 0.14 / 0.26 vs "
        "0.1587 +- 0.05) at 4 x (100 + 200), seeds 0/1/2; cause: the Pathfinder reference sits "
        "in the neck (m_v = -5.1, x scale 0.23) and the annealing from it never reaches the "
        "mouth (max v 2.2 vs 3 sd = 9); the windows refine from those draws (m_v -3.4, sd 1.3)"
    ),
    "MultCDiff": xfail(
        "measured sd(v) = 1.84 / 2.13 / 1.94 vs 3 +- 10% and P(v < -3) = 0.58 / 0.38 / 0.51 vs "
        "0.1587 +- 0.05 at 4 x (100 + 200), seeds 0/1/2; cause: as MultALMC, a reference in the "
        "neck: draws at negative v (mean -3.7 / -2.5 / -3.1), the mouth (v > 3) never visited"
    ),
    "EnsembleDiffusion": xfail(
        "measured sd(v) = 0.95 / 0.95 / 0.94 vs 3 +- 10% and P(v < -3) = 0 / 0 / 0 vs "
        "0.1587 +- 0.05 at 256 particles x (100 + 100), seeds 0/1/2; cause: the gradient-free "
        "importance-sampled drift collapses onto a Gaussian-like core (v in [-2.0, 5.6]) even "
        "from the moment-matched prior (sd(v) 1.2); the windows then shrink sd(v) to 0.98"
    ),
}

FUNNEL_KERNELS = ["RDMC", "MultALMC", "MultCDiff", "EnsembleDiffusion"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernel",
    [pytest.param(k, marks=FUNNEL_XFAIL[k]) if k in FUNNEL_XFAIL else k for k in FUNNEL_KERNELS],
)
def test_hierarchical_funnel_at_defaults(kernel):
    target = hierarchical_funnel(10)
    mcmc = run_defaults(kernel, target.model, target.model_args)
    v = np.asarray(mcmc.get_samples(group_by_chain=True)["v"])
    sd_err = v.std(ddof=1) / target.extra["v_scale"] - 1.0
    p_neck = float(np.mean(v < -3.0))
    p_err = p_neck - target.extra["p_v_below_minus_3"]
    msg = (
        f"sd(v) {v.std(ddof=1):.3f} (error {sd_err:+.3f}), P(v < -3) {p_neck:.4f} "
        f"(error {p_err:+.4f}), mean v {v.mean():+.3f}, ESS(v) {ess(v):.0f}"
    )
    assert abs(sd_err) < V_SD_BOUND, msg
    assert abs(p_err) < P_NECK_BOUND, msg
