"""Hostile inputs, for every kernel in tests/kernels.py (kernels added later are covered too).

The rule (DESIGN.md): a failure is a clear error or a ``diverging`` flag, never a silent NaN (or
an impossible point) in the draws. Each kernel meets, from a ``potential_fn``:

* hostile regions: a potential that is NaN on one side of space, +inf on another, and overflow-
  prone (U + 1e30) on a third, times a degenerate direction (sd 1e-4) and a Cauchy coordinate,
  in float32 (and a Cauchy in float64, inside ``jax.enable_x64(True)``);
* dimension 1 (a Cauchy: extremely heavy tails) and a large dimension (d = 2000 in CI: d = 10 000
  compiles and runs too slowly for the 2-core CI budget with six kernels);
* hyper-parameters at their bounds: a huge and a tiny fixed step, inflation 1e3 and 1e-3, no MAP
  search, the identity preconditioner, target_accept at 0.999.

The statistical checks are loose on purpose (short runs): they catch broken draws (a collapsed or
exploded scale, draws in a region of zero or undefined density), not small biases. The bounds and
their Monte Carlo reasoning are next to each check.

Plus property-based tests (hypothesis) of the integrators and the score estimators on random
Gaussians, against their exact laws; tolerances are 6 Monte Carlo standard errors.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpyro.infer import MCMC
from scipy import integrate

import scoresample.score as score_pkg
from scoresample.diffusion import integrators
from tests.kernels import KERNELS

NAMES = sorted(KERNELS)


def enable_x64():
    """float64 inside a with-block (jax >= 0.6: jax.enable_x64(True); before: experimental)."""
    if callable(getattr(jax, "enable_x64", None)):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64 as ctx  # pragma: no cover - older jax

    return ctx()


FIELDS = ("potential_energy", "diverging")

# (kernel, case) -> reason: known failures, recorded in the issue (strict: they must fail).
KNOWN_FAILURES: dict[tuple[str, str], str] = {
    ("EnsembleDiffusion", "gaussian_dim2000"): (
        "silent variance collapse in d = 2000 (8 particles, contract settings num_steps=8, "
        "num_samples=2): E x^2 = 0.22 instead of 1, no draw flagged diverging"
    ),
    ("EnsembleDiffusion", "cauchy_dim1_float64"): (
        "1-D Cauchy (contract settings): quartiles -5.9 / 0.1 / 6.2 instead of -1 / 0 / 1, "
        "no draw flagged diverging"
    ),
    ("MultCDiff", "cauchy_dim1_float64"): (
        "1-D Cauchy (contract settings): quartiles -1007 / 29 / 1335 instead of -1 / 0 / 1, "
        "no draw flagged diverging"
    ),
    ("RDMC", "cauchy_dim1_float64"): (
        "1-D Cauchy (contract settings): quartiles -1.3e6 / -312 / 8.9e5 instead of -1 / 0 / 1, "
        "no draw flagged diverging"
    ),
    ("RandomizedMidpoint", "cauchy_dim1_float64"): (
        "1-D Cauchy (contract settings, 2 chains x (150 + 300), 5 steps per draw): quartiles "
        "-1.18 / 0.53 / 11.6 (IQR 12.8 > 10), no draw flagged diverging; cause: each chain's "
        "Welford scale of Cauchy draws (3.1 and 12.1 here) is meaningless for a heavy tail, and "
        "the chain's path is chaotic in it: with friction fixed at 0.99 the IQR is 2573, at "
        "1.0 2.3, at 1.0067 2.0 (the tuned friction is 1.003-1.007; other seeds 1-5: IQR 1.7-2.3)"
    ),
    ("RDMC", "huge_step"): (
        "fails with step_size=1e3, adapt_step_size=False, inflation=1e3 (seen in CI-size run; "
        "which check fails was not diagnosed in time: see the issue-8 report)"
    ),
}


# (kernel, case) -> reason: runs that do not finish in CI time (not run, reported as xfail).
HANGS: dict[tuple[str, str], str] = {
    **{
        (name, "gaussian_dim2000"): (
            "the Laplace-mixture start of the fast ensemble forms a dense d x d Hessian (d "
            "Hessian-vector products) and its eigendecomposition per fast chain and trajectory: "
            "at d = 2000 one case did not finish in 5 min on 2 CPU cores (issue-8 report)"
        )
        for name in ("MultALMC", "MultCDiff")
    },
}


def case(name, which):
    reason = KNOWN_FAILURES.get((name, which))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    if (name, which) in HANGS:
        marks = [pytest.mark.xfail(run=False, reason=HANGS[name, which])]
    return pytest.param(name, id=name, marks=marks)


def run(name, potential, dim, seed=0, num_warmup=60, num_samples=60, dtype=jnp.float32, **kw):
    """Run kernel `name` on `potential` from near 0; returns (draws (C, S, d), extra fields)."""
    factory, population = KERNELS[name]
    chains = 8 if population else 2
    init = 0.1 * jax.random.normal(jax.random.key(seed + 1), (chains, dim), dtype)
    mcmc = MCMC(
        factory(potential_fn=potential, **kw),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed), init_params=init, extra_fields=FIELDS)
    x = np.asarray(mcmc.get_samples(group_by_chain=True))
    ef = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return x, ef


def assert_no_silent_failure(x, ef, dim):
    """Draws and their potential are finite; ``diverging`` is a boolean per draw."""
    assert x.shape[-1] == dim
    assert np.all(np.isfinite(x)), "non-finite draws"
    assert np.all(np.isfinite(ef["potential_energy"])), "non-finite potential_energy"
    assert ef["diverging"].dtype == bool and ef["diverging"].shape == x.shape[:2]


# -- hostile regions, degenerate and heavy-tailed coordinates ----------------------------------
DEGENERATE_SD = 1e-4
EDGE = 2.5  # x0 > EDGE: NaN;  x0 < -EDGE: +inf;  x1 > EDGE: U + 1e30
VISIBLE = 0.3  # a run with at least this fraction of draws flagged diverging fails visibly


def hostile_potential(x):
    """x0, x1: N(0, 1) cut by the hostile regions; x2: N(0, 1e-8); x3: Cauchy; x4: N(0, 1)."""
    u = 0.5 * (x[0] ** 2 + x[1] ** 2 + x[4] ** 2) + 0.5 * (x[2] / DEGENERATE_SD) ** 2
    u = u + jnp.log1p(x[3] ** 2)
    u = jnp.where(x[1] > EDGE, u + 1e30, u)  # overflow-prone: |U| ≈ 1e30 (finite in float32)
    u = jnp.where(x[0] < -EDGE, jnp.inf, u)
    return jnp.where(x[0] > EDGE, jnp.nan, u)


def check_cauchy(c):
    """Quartiles of the standard Cauchy are ±1: with ≥ 20 effective draws the sample IQR lies in
    (0.3, 10) and |median| < 2 with high probability (a broken sampler collapses or explodes)."""
    q25, q50, q75 = np.percentile(c, [25, 50, 75])
    assert 0.3 < q75 - q25 < 10.0 and abs(q50) < 2.0, f"Cauchy quartiles {(q25, q50, q75)}"


@pytest.mark.slow
@pytest.mark.parametrize("name", [case(n, "hostile_float32") for n in NAMES])
def test_hostile_regions_degenerate_and_heavy_tails(name):
    x, ef = run(name, hostile_potential, 5, num_warmup=150, num_samples=300)
    assert x.dtype == np.float32
    assert_no_silent_failure(x, ef, 5)
    flat = x.reshape(-1, 5)
    # Draws never sit where the density is undefined, zero, or exp(-1e30) (never silently).
    assert not np.any(flat[:, 0] > EDGE), "draw in the NaN region"
    assert not np.any(flat[:, 0] < -EDGE), "draw in the +inf-potential region"
    assert not np.any(flat[:, 1] > EDGE), "draw in the 1e30-potential region"
    assert np.all(ef["potential_energy"] < 1e6)
    if ef["diverging"].mean() >= VISIBLE:
        return  # the kernel failed, but visibly: most draws are flagged
    # The degenerate direction stays degenerate: the kernels run here with the contract tests'
    # small, fast settings, so only orders of magnitude are checked (a collapse to 0 or a
    # blow-up to the unit scale of the other coordinates). (Measured: RandomizedMidpoint
    # 1.0e-4 in long runs; EnsembleDiffusion with 8 particles and M = 2: 1.9e-3, 19x wide.)
    sd = flat[:, 2].std()
    assert 1e-6 < sd < 1e-2, f"degenerate sd {sd:.2e}"
    check_cauchy(flat[:, 3])
    assert 0.5 < flat[:, 4].std() < 2.0


# -- float64, dimension 1 (Cauchy) and a large dimension -----------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", [case(n, "cauchy_dim1_float64") for n in NAMES])
def test_dimension_one_cauchy_float64(name):
    with enable_x64():
        x, ef = run(
            name,
            lambda x: jnp.sum(jnp.log1p(x**2)),
            1,
            num_warmup=150,
            num_samples=300,
            dtype=jnp.float64,
        )
    assert x.dtype == np.float64
    assert_no_silent_failure(x, ef, 1)
    if ef["diverging"].mean() < VISIBLE:
        check_cauchy(x.ravel())


LARGE_DIM = 2000
# RDMC's contract settings (32 IS draws, 2 inner chains of 2 steps) over-disperse in d = 2000
# (measured E x² = 2.0 from the sampler alone, 3.1 after warmup): the large-dimension case runs
# its estimator at the defaults (512 IS draws, 4 chains of 8 MALA steps; E x² = 1.12 alone).
LARGE_DIM_SETTINGS = {
    "RDMC": {"num_steps": 32, "num_is_samples": 512, "num_inner_chains": 4, "inner_steps": 8}
}


@pytest.mark.slow
@pytest.mark.parametrize("name", [case(n, "gaussian_dim2000") for n in NAMES])
def test_large_dimension(name):
    x, ef = run(
        name,
        lambda x: 0.5 * jnp.sum(x**2),
        LARGE_DIM,
        num_warmup=40,
        num_samples=20,
        **LARGE_DIM_SETTINGS.get(name, {}),
    )
    assert_no_silent_failure(x, ef, LARGE_DIM)
    # E|x|²/d = 1; averaged over 2000 coordinates the MC error is < 0.05, so ±30% allows a
    # biased but working sampler and catches a stuck (≈ 0.01 at the start) or exploded one.
    second = np.mean(x[:, -10:] ** 2)
    assert 0.7 < second < 1.3, f"E x² = {second:.3f}"


# -- hyper-parameters at their bounds -----------------------------------------------------------
gaussian2 = lambda x: 0.5 * jnp.sum((x - 1.0) ** 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", [case(n, "huge_step") for n in NAMES])
def test_huge_fixed_step_and_inflation(name):
    x, ef = run(name, gaussian2, 2, step_size=1e3, adapt_step_size=False, inflation=1e3)
    assert_no_silent_failure(x, ef, 2)
    # A step this large either diverges visibly or stays near the target (never far off it
    # silently): draws far from it (|x - 1| > 10, probability e^-50) must be flagged.
    far = np.abs(x - 1.0).max(-1) > 10
    assert not np.any(far & ~ef["diverging"]), "far-off draws not flagged diverging"


@pytest.mark.slow
@pytest.mark.parametrize("name", [case(n, "tiny_step") for n in NAMES])
def test_tiny_fixed_step_no_map_identity(name):
    kw = dict(
        step_size=1e-7,
        adapt_step_size=False,
        inflation=1e-3,
        map_iters=0,
        preconditioner="identity",
        target_accept=0.999,
    )
    if name in ("MultALMC", "MultCDiff"):  # the step sets the trajectory's length: refused
        with pytest.raises(ValueError, match="step_size"):
            KERNELS[name][0](potential_fn=gaussian2, **kw)
        return
    x, ef = run(name, gaussian2, 2, **kw)
    assert_no_silent_failure(x, ef, 2)


# -- property-based tests: integrators ----------------------------------------------------------
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True)
N_DRAWS = 100_000


@jax.jit
def _kinetic_draws(key, gamma, h, alpha):
    w = integrators.kinetic_brownian_integrals(key, gamma, h, alpha * h, (N_DRAWS,))
    return jnp.stack([w.w1, w.w2, w.w3])


def _exact_kinetic_cov(gamma, h, a):
    f = [
        lambda s: (1 - math.exp(-gamma * (a - s))) * (s < a),
        lambda s: 1 - math.exp(-gamma * (h - s)),
        lambda s: math.exp(-gamma * (h - s)),
    ]
    cov = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            fi, fj = f[i], f[j]
            cov[i, j] = integrate.quad(lambda s, fi=fi, fj=fj: fi(s) * fj(s), 0, h, points=[a])[0]
    return cov


def assert_cov_close(draws, exact):
    """Sample covariance vs exact, within 6 standard errors sqrt((Σii Σjj + Σij²)/n)."""
    n = draws.shape[1]
    emp = draws @ draws.T / n  # zero-mean laws
    se = np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + exact**2) / n)
    np.testing.assert_array_less(np.abs(emp - exact), 6 * se + 1e-7)


@PROPERTY
@given(
    gamma=st.floats(0.05, 20.0),
    h=st.floats(0.01, 2.0),
    alpha=st.floats(0.02, 0.98),
    seed=st.integers(0, 2**16),
)
def test_kinetic_brownian_integrals_have_the_exact_covariance(gamma, h, alpha, seed):
    draws = np.asarray(_kinetic_draws(jax.random.key(seed), gamma, h, alpha), np.float64)
    assert np.all(np.isfinite(draws))
    assert_cov_close(draws, _exact_kinetic_cov(gamma, h, alpha * h))


@jax.jit
def _overdamped_draws(key, h, alpha):
    return jnp.stack(integrators.overdamped_brownian_pair(key, h, alpha, (N_DRAWS,)))


@PROPERTY
@given(h=st.floats(1e-3, 5.0), alpha=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_overdamped_pair_is_one_brownian_path(h, alpha, seed):
    draws = np.asarray(_overdamped_draws(jax.random.key(seed), h, alpha), np.float64)
    exact = np.array([[alpha * h, alpha * h], [alpha * h, h]])
    assert_cov_close(draws, exact)


@PROPERTY
@given(y=st.floats(1e-8, 40.0))
def test_one_minus_exp_neg_is_accurate_in_float32(y):
    got = float(integrators.one_minus_exp_neg(jnp.float32(y)))
    exact = -math.expm1(-float(np.float32(y)))
    assert abs(got - exact) <= 4e-7 * exact  # a few float32 ulps, relative


def _random_gaussian(seed, dim):
    """A random diagonal Gaussian: means in [-1, 1], sds log-uniform in [0.7, 1.4] (a target as
    the kernels see it after whitening). Far from N(0, I) the Monte Carlo Föllmer drifts are
    biased, not only noisy: e.g. sd 2.45, mean -1.84, t = 0.3, M = 1024: estimate -2.8 ± 0.7
    against the exact -6.44 (the mean of q lies 5 proposal sds away)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, dim), np.exp(rng.uniform(np.log(0.7), np.log(1.4), dim))


@jax.jit
def _energy_errors(keys, x, mean, sd, eps):
    logdensity = lambda y: -0.5 * jnp.sum(((y - mean) / sd) ** 2)

    def one(key, x):
        ld, g = jax.value_and_grad(logdensity)(x)
        return integrators.leapfrog_energy_error(key, x, ld, g, logdensity, eps)

    return jax.vmap(one)(keys, x)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), dim=st.integers(1, 4), frac=st.floats(0.05, 0.5))
def test_leapfrog_energy_error_has_unit_exponential_mean(seed, dim, frac):
    """For a volume-preserving map and (x, v) ~ π ⊗ N(0, I), E[exp(-ΔH)] = 1 exactly."""
    mean, sd = _random_gaussian(seed, dim)
    eps = frac * sd.min()  # well inside the leapfrog stability limit 2 sd_min
    n = 20_000
    x = mean + sd * np.random.default_rng(seed + 1).standard_normal((n, dim))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    keys = jax.random.split(jax.random.key(seed), n)
    delta = np.asarray(_energy_errors(keys, f32(x), f32(mean), f32(sd), f32(eps)), np.float64)
    assert np.all(np.isfinite(delta))
    w = np.exp(-delta)
    assert abs(w.mean() - 1.0) < 6 * w.std() / np.sqrt(n) + 1e-4


# -- property-based tests: score estimators (whatever scoresample.score offers) ------------------
def _follmer_exact(x, t, mean, sd):
    """b(x, t) = (m - x)/s, m the mean of q(y|x) ∝ π(y)/N(y; 0, I) · N(y; x, sI)."""
    s = 1.0 - t
    prec = 1.0 / sd**2 + (1.0 / s - 1.0)
    m = (mean / sd**2 + x / s) / prec
    return (m - x) / s


def _ou_score_exact(x, s, mean, sd):
    """∇log p_s for p = N(mean, diag sd²) under the OU forward process, a = e^{-s}."""
    a = math.exp(-s)
    return -(x - a * mean) / (a**2 * sd**2 + 1.0 - a**2)


REPLICATES = 32


def _estimators():
    """(name, estimate(key, x, time, logdensity) -> score/drift (d,), exact(x, time, mean, sd),
    time strategy) for the estimators the package has now."""
    out = []
    follmer = getattr(score_pkg, "follmer", None)
    if follmer is not None and hasattr(follmer, "follmer_drift"):
        out.append(
            (
                "follmer_drift",
                lambda k, x, t, ld: follmer.follmer_drift(k, x, t, ld, 1024)[0],
                _follmer_exact,
                (0.3, 0.9),
            )
        )
    ensemble = getattr(score_pkg, "ensemble", None)
    if ensemble is not None and hasattr(ensemble, "pooled_drift"):
        # Three copies of the particle: the pooled estimate for each is consistent for b(x, t).
        out.append(
            (
                "pooled_drift",
                lambda k, x, t, ld: ensemble.pooled_drift(
                    k, jnp.stack([x, x + 0.1, x - 0.1]), t, ld, 512
                )[0][0],
                _follmer_exact,
                (0.3, 0.9),
            )
        )
    if hasattr(score_pkg, "importance_score"):
        params = score_pkg.ImportanceParams(num_samples=1024)
        out.append(
            (
                "importance_score",
                lambda k, x, s, ld: score_pkg.importance_score(k, x, s, ld, params)[0],
                _ou_score_exact,
                (0.1, 1.0),
            )
        )
    return out


ESTIMATORS = _estimators()
_BY_NAME = {e[0]: e[1] for e in ESTIMATORS}


@functools.partial(jax.jit, static_argnums=0)
def _replicates(name, keys, x, time, mean, sd):
    """REPLICATES independent estimates (one compilation per estimator and dimension)."""
    ld = lambda y: -0.5 * jnp.sum(((y - mean) / sd) ** 2)
    return jax.vmap(lambda k: _BY_NAME[name](k, x, time, ld))(keys)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=[e[0] for e in ESTIMATORS])
@settings(max_examples=6, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), dim=st.integers(1, 3), time=st.floats(0.0, 1.0))
def test_score_estimator_matches_the_exact_gaussian_score(estimator, seed, dim, time):
    """The mean of REPLICATES independent estimates is within 6 standard errors (from the
    replicates' spread) of the exact score; the self-normalisation bias, O(1/M), is far below."""
    name, estimate, exact_fn, (lo, hi) = estimator
    time = lo + (hi - lo) * time
    mean, sd = _random_gaussian(seed, dim)
    x = jnp.asarray(mean + sd * np.random.default_rng(seed + 2).standard_normal(dim), jnp.float32)
    keys = jax.random.split(jax.random.key(seed), REPLICATES)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    est = _replicates(name, keys, x, f32(time), f32(mean), f32(sd))
    est = np.asarray(est, np.float64)
    assert np.all(np.isfinite(est)), name
    exact = exact_fn(np.asarray(x, np.float64), time, mean, sd)
    se = est.std(0, ddof=1) / np.sqrt(REPLICATES)
    np.testing.assert_array_less(np.abs(est.mean(0) - exact), 6 * se + 1e-3 * (1 + np.abs(exact)))
