"""CMCD annealing from the model's prior (issue 12: the path q0 = prior -> posterior), and
CMCD at its defaults on the hierarchical funnel (a known failure that must not be silent).

Every statistical test states its Monte Carlo tolerance. Seeds are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC
from scipy import stats

import scoresample
from scoresample.diffusion.annealing import Reference, linear_schedule
from scoresample.samplers import cmcd as C

PRIOR_SD, NOISE_SD, NUM_OBS, DIM = 3.0, 1.0, 4, 3
Y = np.asarray(
    np.random.default_rng(7).normal(2.0, NOISE_SD, (NUM_OBS, DIM)), np.float32
)  # data of the conjugate model below


def conjugate_model(y):
    """theta ~ N(0, 3² I_3), y_i ~ N(theta, I) (i = 1..4): a proper prior, exact evidence."""
    theta = numpyro.sample("theta", dist.Normal(0.0, PRIOR_SD).expand([DIM]).to_event(1))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(theta, NOISE_SD).to_event(1), obs=y)


def conjugate_answers(y):
    """(log Z, posterior mean, posterior sd): per coordinate y_{·j} ~ N(0, I + 9·11ᵀ)."""
    y = np.asarray(y, np.float64)
    n = y.shape[0]
    cov = NOISE_SD**2 * np.eye(n) + PRIOR_SD**2 * np.ones((n, n))
    log_z = sum(stats.multivariate_normal(np.zeros(n), cov).logpdf(y[:, j]) for j in range(DIM))
    prec = 1 / PRIOR_SD**2 + n / NOISE_SD**2
    return log_z, y.sum(0) / NOISE_SD**2 / prec, np.sqrt(1 / prec)


def run_cmcd(anneal_from, seed=0, particles=256, warmup=30, samples=20):
    mcmc = MCMC(
        scoresample.CMCD(conjugate_model, num_steps=32, anneal_from=anneal_from),
        num_warmup=warmup,
        num_samples=samples,
        num_chains=particles,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed), Y, extra_fields=("log_z", "num_grad_evals"))
    return mcmc


def test_prior_path_evidence_and_posterior_on_a_conjugate_model():
    """log Ẑ of 20 sweeps from the prior (256 particles, K = 32) against the exact evidence.

    The per-sweep sd of log Ẑ is measured on the run itself; the combination of S = 20 sweeps
    has sd ≈ sd/√S, and log-of-a-mean adds a bias ≈ -sd²/2 per sweep that averaging does not
    remove entirely, so the bound is 4 sd/√S + sd²/2 + 0.02. Posterior mean: 256 × 20 resampled
    draws with an ESS of at least ~1000 (consecutive sweeps are independent), so 0.1 posterior
    sd is > 3σ; the sd within 10%.
    """
    log_z, mean, sd = conjugate_answers(Y)
    mcmc = run_cmcd("prior")
    lz = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["log_z"])[0]
    spread = lz.std(ddof=1)
    bound = 4 * spread / np.sqrt(lz.size) + spread**2 / 2 + 0.02
    assert abs(float(C.combine_log_z(lz)) - log_z) < bound, (lz, log_z, bound)
    theta = np.asarray(mcmc.get_samples()["theta"])
    np.testing.assert_allclose(theta.mean(0), mean, atol=0.1 * sd)
    np.testing.assert_allclose(theta.std(0), sd, rtol=0.1)


def test_prior_evaluations_are_counted():
    """From the prior, every particle evaluates the prior where it evaluates the target:
    2(K + 1) gradients per sampling sweep, against K + 1 from the Gaussian reference."""
    counts = {}
    for anneal_from in ("prior", "gaussian"):
        mcmc = run_cmcd(anneal_from, particles=16, warmup=2, samples=2)
        counts[anneal_from] = np.asarray(mcmc.get_extra_fields()["num_grad_evals"])
    assert np.all(counts["gaussian"] == 33)
    assert np.all(counts["prior"] == 66)


def test_sweep_from_a_general_reference_is_unbiased():
    """sweep(..., reference=q0) with q0 = N(2, 0.5²) (d = 2) to γ = 3·N(-1, 0.8² I):
    log Z = log 3. 4096 particles; per-sweep sd measured ≈ 0.02, so 0.05 is > 2.5σ for one
    sweep and the mean of 4 sweeps is within 0.05 at > 5σ."""
    m, s = 2.0, 0.5
    ref = Reference(
        lambda key, n, d, dtype: m + s * jax.random.normal(key, (n, d), dtype),
        lambda x: jnp.sum(jax.scipy.stats.norm.logpdf(x, m, s)),
    )
    log_gamma = lambda x: jnp.log(3.0) + jnp.sum(jax.scipy.stats.norm.logpdf(x, -1.0, 0.8))
    run = lambda key: C.sweep(key, log_gamma, 4096, 2, linear_schedule(32), 0.05, reference=ref)
    lz = [float(run(k)[3]["log_z"][0]) for k in jax.random.split(jax.random.key(0), 4)]
    assert abs(np.mean(lz) - np.log(3.0)) < 0.05, lz


def test_invalid_anneal_from():
    with pytest.raises(ValueError, match="anneal_from"):
        scoresample.CMCD(conjugate_model, anneal_from="posterior")
    kernel = scoresample.CMCD(potential_fn=lambda x: 0.5 * jnp.sum(x**2), anneal_from="prior")
    mcmc = MCMC(kernel, num_warmup=2, num_samples=2, num_chains=4, progress_bar=False)
    with pytest.raises(ValueError, match="anneal_from='prior'"):
        mcmc.run(jax.random.key(0), init_params=jnp.zeros((4, 2)))


@pytest.fixture(scope="module")
def funnel_run():
    """CMCD at its defaults on the hierarchical funnel (d = 10): 256 particles × (50 + 50)."""
    from scoresample.targets.priors import hierarchical_funnel_model

    mcmc = MCMC(
        scoresample.CMCD(hierarchical_funnel_model),
        num_warmup=50,
        num_samples=50,
        num_chains=256,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), 10, extra_fields=("diverging", "log_z", "ess"))
    return mcmc


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="measured (this size, seed 0): sd(v) 1.32, P(v < -3) 0.011 (exact 3, 0.159); "
    "unadjusted Langevin moves with one step size cannot follow the neck (e^{v/2} ≪ ε^{1/2}); "
    "from the prior (anneal_from='prior', the path is then constant) ε = 0.1 gave P = 0.000, "
    "ε = 0.003 P = 0.12: a per-level, per-region step size is issue 13",
)
def test_funnel_at_defaults(funnel_run):
    """Issue 12's bar: sd(v) within 10% of 3 and P(v < −3) within 0.05 of 0.159. 12 800 draws
    from 50 independent sweeps whose final ESS is ≈ 0.26 N (measured), so ≈ 3300 effective
    draws: sd of P̂ ≈ sqrt(0.16·0.84/3300) ≈ 0.006, and 0.05 is > 7σ."""
    v = np.asarray(funnel_run.get_samples()["v"])
    assert abs(v.std() - 3.0) < 0.3, v.std()
    assert abs((v < -3).mean() - 0.1587) < 0.05, (v < -3).mean()


@pytest.mark.slow
def test_funnel_failure_is_not_silent(funnel_run):
    """The wrong answer above does not come with a clean bill: scoresample.check warns
    (measured: split R-hat over sweeps 1.10 against a limit of 1.01)."""
    with pytest.warns(scoresample.SuspectRunWarning):
        report = scoresample.check(funnel_run)
    assert not report.ok


def test_blackjax_api_from_a_prior_reference():
    """scoresample.cmcd(..., reference=prior) on the conjugate model's flat log joint: q0 = the
    prior N(0, 3² I), steps in coordinates (m, s) = (2, 0.5). 2048 particles, 4 sweeps; per-sweep
    sd of log Ẑ measured ≈ 0.03, so 0.1 is > 5σ for their mean; the reference's evaluations are
    counted (2(K + 1) gradients)."""
    log_z, _, _ = conjugate_answers(Y)
    prior = Reference(
        lambda key, n, d, dtype: PRIOR_SD * jax.random.normal(key, (n, d), dtype),
        lambda x: jnp.sum(jax.scipy.stats.norm.logpdf(x, 0.0, PRIOR_SD)),
        counted=True,
    )
    joint = lambda x: prior.logdensity(x) + jnp.sum(jax.scipy.stats.norm.logpdf(Y, x, NOISE_SD))
    alg = scoresample.cmcd(
        joint, 0.1, num_steps=32, reference=prior, reference_mean=2.0, reference_scale=0.5
    )
    state = alg.init(jnp.zeros((2048, DIM)))
    keys = jax.random.split(jax.random.key(1), 4)
    _, info = jax.jit(jax.vmap(alg.step, in_axes=(0, None)))(keys, state)
    lz = np.asarray(info.log_z[:, 0])
    assert abs(lz.mean() - log_z) < 0.1, (lz, log_z)
    assert np.all(np.asarray(info.num_grad_evals) == 66)
