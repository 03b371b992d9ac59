"""Simulation-based calibration (SBC) of NumPyro kernels on models with exact posteriors.

Talts, Betancourt, Simpson, Vehtari & Gelman (2018), "Validating Bayesian inference algorithms
with simulation-based calibration", arXiv:1804.06788 (Algorithm 1, the rank histograms of their
figures, thinning to reduce autocorrelation). For s = 1..S: draw θ̃ ~ π(θ) and ỹ ~ π(y | θ̃), run
the kernel on π(θ | ỹ), keep L thinned draws θ_1..θ_L, and record the rank
r_s = #{l : θ_l < θ̃} ∈ {0, ..., L}. A calibrated sampler gives ranks uniform on {0, ..., L};
a chi-square test on B equal bins (B divides L + 1) measures the departure. Because the models
here have exact posteriors, each result also reports the mean error of the posterior mean (in
posterior sds) and the ratio of posterior sds, which show a small bias long before SBC does.

Two ways to run the S inferences:

* batched (scoresample kernels): all S data sets at once, ``jax.vmap`` over the data of the
  kernel's own initialisation and transition (``ScoreSampleKernel._init_chain`` /
  ``_sample_state``, which take the model arguments as traced inputs): one compilation for all
  simulations. A per-chain kernel runs one chain per data set; a population kernel one
  population of ``num_particles`` per data set, and its L draws are the particles of its last
  post-warmup iterations.
* sequential (any NumPyro kernel, NUTS included): one ``MCMC.run`` per data set with
  ``jit_model_args=True``.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import MCMC
from numpyro.infer.util import initialize_model
from scipy import stats

__all__ = ["SBCResult", "chi_square_uniformity", "plot_rank_histogram", "ranks_of", "sbc"]


class SBCResult(NamedTuple):
    """ranks (S,) in {0..L}; num_draws L; num_bins B; chi2 statistic and p-value of uniformity;
    mean_z: mean over simulations of (posterior-mean estimate - exact mean) / exact sd;
    sd_ratio: mean estimated / exact posterior sd; diverging: fraction of kept draws flagged;
    seconds: wall time; method: "batched" | "sequential" | "exact"."""

    model: str
    kernel: str
    ranks: np.ndarray
    num_draws: int
    num_bins: int
    chi2: float
    p_value: float
    mean_z: float
    sd_ratio: float
    diverging: float
    seconds: float
    method: str

    def summary(self) -> dict:
        out = self._asdict()
        out["ranks"] = self.ranks.tolist()
        out["counts"] = np.bincount(
            self.ranks * self.num_bins // (self.num_draws + 1), minlength=self.num_bins
        ).tolist()
        return out


def ranks_of(truth, draws):
    """Ranks #{l : draws[s, l] < truth[s]} for truth (S,) and draws (S, L)."""
    return np.sum(np.asarray(draws) < np.asarray(truth)[:, None], axis=1)


def chi_square_uniformity(ranks, num_draws: int, num_bins: int):
    """Pearson chi-square of ranks in {0..L} on num_bins equal bins; returns (stat, p-value)."""
    if (num_draws + 1) % num_bins:
        raise ValueError(f"num_bins ({num_bins}) must divide num_draws + 1 ({num_draws + 1})")
    counts = np.bincount(np.asarray(ranks) * num_bins // (num_draws + 1), minlength=num_bins)
    expected = len(ranks) / num_bins
    stat = float(np.sum((counts - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, num_bins - 1))


def plot_rank_histogram(result: SBCResult, path: str) -> None:
    """Rank histogram with the 99% band of a uniform bin count (Talts et al. 2018, Fig. 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, b = len(result.ranks), result.num_bins
    counts = np.bincount(result.ranks * b // (result.num_draws + 1), minlength=b)
    lo, hi = stats.binom.ppf([0.005, 0.995], s, 1.0 / b)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.axhspan(lo, hi, color="0.85", label="99% band (uniform)")
    ax.axhline(s / b, color="0.5", lw=1)
    ax.bar(np.arange(b), counts, width=0.9, color="C0")
    ax.set_xlabel(f"rank bin (L = {result.num_draws}, {b} bins)")
    ax.set_ylabel("simulations")
    ax.set_title(
        f"{result.kernel} on {result.model}\nχ² p = {result.p_value:.3f}, S = {s}", fontsize=9
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _simulate(model, num_simulations, seed):
    rng = np.random.default_rng(seed)
    sims = [model.simulate(rng) for _ in range(num_simulations)]
    truth = np.array([t for t, _ in sims], np.float64)
    data = np.stack([np.asarray(d, np.float32) for _, d in sims])
    return truth, data


def _batched_draws(kernel, model, data, key, num_warmup, num_samples, num_particles):
    """Post-warmup constrained draws of model.site, (S, num_samples, n_per_iteration).

    The S inferences share the iteration counter, so it stays outside the vmap over data sets
    (as in ``ScoreSampleKernel._vectorized_sample_state`` for vectorized chains): each state's
    ``i`` is replaced by the one unbatched counter before the transition, so the kernel's
    ``lax.cond(i < num_warmup, warmup, frozen)`` stays a real branch. A batched counter turns it
    into a select that runs the warmup work (step-size probe, Welford update, warmup step) at
    every iteration.
    (The earlier form, a scan inside ``vmap`` over a state built inside it, also left the counter
    unbatched, as a constant of the vmapped function: the same number of ``case`` ops in its HLO,
    the same time. The explicit form does not depend on where the state comes from.)
    """
    population = kernel.is_ensemble_kernel
    y0 = jnp.asarray(data[0])
    init_key = jax.random.split(key, num_particles) if population else key
    kernel.init(init_key, num_warmup, None, model_args=(y0,), model_kwargs={})
    params = initialize_model(key, model.model, model_args=(y0,))[0][0]
    dim = ravel_pytree(params)[0].shape[0]
    site = model.site
    num = len(data)

    def init_one(key, y):
        k_init, k_x = jax.random.split(key)
        shape = (num_particles, dim) if population else (dim,)
        x0 = jax.random.uniform(k_x, shape, jnp.float32, -2.0, 2.0)  # as init_to_uniform
        return kernel._init_chain(k_init, x0, (y,), {})

    def step_one(state, i, y):  # i: the shared, unbatched iteration counter
        return kernel._sample_state(state._replace(i=i), (y,), {})

    def site_of(z, y):
        post = kernel.postprocess_fn((y,), {})
        z = jax.vmap(post)(z) if population else post(z)
        return jnp.reshape(z[site], (-1,))

    def run(keys, ys):
        # One initialisation after another (lax.map): a vmapped BlackJAX Pathfinder (the default
        # start of models with proper priors) never returned here (every thread idle), as on
        # ManyWell-32 in infer/base.py. Sampling stays batched.
        state = jax.lax.map(lambda a: init_one(*a), (keys, ys))

        def step(carry, _):  # one scan for warmup and sampling: one copy of the kernel to compile
            state, i = carry
            state = jax.vmap(step_one, in_axes=(0, None, 0))(state, i, ys)
            theta = jax.vmap(site_of)(state.z, ys)
            return (state, i + 1), (theta, jnp.reshape(state.diverging, (num, -1)))

        carry = (state, state.i[0])
        _, (theta, div) = jax.lax.scan(step, carry, None, length=num_warmup + num_samples)
        return theta[num_warmup:].swapaxes(0, 1), div[num_warmup:].swapaxes(0, 1)

    keys = jax.random.split(jax.random.fold_in(key, 1), num)
    theta, div = jax.jit(run)(keys, jnp.asarray(data))
    return np.asarray(theta, np.float64), np.asarray(div)


# NumPyro compiles every MCMC.run anew (fresh closures in the kernel's init) and JAX keeps each
# executable: ~360 memory maps per NUTS run (measured), so a process died with "LLVM compilation
# error: Cannot allocate memory" at vm.max_map_count = 65530 after ~180 runs. Clearing JAX's
# caches every CLEAR_EVERY runs keeps the maps flat (1.0k after 60 runs instead of 22.9k).
CLEAR_EVERY = 50


def _sequential_draws(kernel_factory, model, data, key, num_warmup, num_samples):
    mcmc = MCMC(
        kernel_factory(model.model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=1,
        progress_bar=False,
        jit_model_args=True,
    )
    thetas, divs = [], []
    for s, y in enumerate(data):
        mcmc.run(jax.random.fold_in(key, s), jnp.asarray(y))
        thetas.append(np.asarray(mcmc.get_samples()[model.site], np.float64).reshape(-1, 1))
        divs.append(np.asarray(mcmc.get_extra_fields()["diverging"]).reshape(-1, 1))
        if (s + 1) % CLEAR_EVERY == 0:
            jax.clear_caches()
    return np.stack(thetas), np.stack(divs)


def sbc(
    model,
    kernel_factory: Callable | None,
    *,
    num_simulations: int = 200,
    num_draws: int = 99,
    num_bins: int = 10,
    num_warmup: int = 200,
    thin: int = 2,
    num_particles: int = 33,
    method: str = "auto",
    seed: int = 0,
    name: str | None = None,
) -> SBCResult:
    """Simulation-based calibration of ``kernel_factory(model.model)`` on a ConjugateModel.

    Args:
        model: a :class:`~scoresample.targets.conjugate.ConjugateModel` (scalar site).
        kernel_factory: model -> NumPyro kernel; None draws from the exact posterior (a check of
            the SBC machinery itself: its ranks are exactly uniform).
        num_simulations: S. num_draws: L (default 99, so 100 rank values). num_bins: B, divides
            L + 1 (default 10: ≥ 5 expected per bin from S = 50). num_warmup: per inference.
        thin: keep every thin-th post-warmup iteration (per-chain kernels; Talts et al. thin to
            reduce autocorrelation, which otherwise makes the histogram ∪- or ∩-shaped).
        num_particles: population size for population kernels; their L draws are the particles
            of the last ceil(L / num_particles) post-warmup iterations (every thin-th).
        method: "auto" (batched for scoresample kernels, else sequential), "batched",
            "sequential".
    """
    truth, data = _simulate(model, num_simulations, seed)
    posts = [model.posterior(y) for y in data]
    exact_mean = np.array([p.mean() for p in posts])
    exact_sd = np.array([p.std() for p in posts])
    key = jax.random.key(seed)
    start = time.perf_counter()
    if kernel_factory is None:
        rng = np.random.default_rng(seed + 1)
        draws = np.stack([p.rvs(num_draws, random_state=rng) for p in posts])
        div, kernel_name, method = np.zeros(1), name or "exact posterior", "exact"
    else:
        kernel = kernel_factory(model.model)
        kernel_name = name or type(kernel).__name__
        if method == "auto":
            method = "batched" if hasattr(kernel, "_init_chain") else "sequential"
        population = getattr(kernel, "is_ensemble_kernel", False)
        per_iter = num_particles if population else 1
        iters = -(-num_draws // per_iter) * thin
        if method == "batched":
            theta, div = _batched_draws(kernel, model, data, key, num_warmup, iters, num_particles)
        elif method == "sequential":
            if population:
                raise ValueError("population kernels need method='batched'")
            theta, div = _sequential_draws(kernel_factory, model, data, key, num_warmup, iters)
        else:
            raise ValueError(f"method must be 'auto', 'batched' or 'sequential', got {method!r}")
        theta = theta[:, thin - 1 :: thin]  # (S, iters / thin, per_iter)
        draws = theta.reshape(len(data), -1)[:, -num_draws:]  # the last L kept draws
    seconds = time.perf_counter() - start
    ranks = ranks_of(truth, draws)
    chi2, p = chi_square_uniformity(ranks, num_draws, num_bins)
    return SBCResult(
        model=model.name,
        kernel=kernel_name,
        ranks=ranks,
        num_draws=num_draws,
        num_bins=num_bins,
        chi2=chi2,
        p_value=p,
        mean_z=float(np.mean((draws.mean(1) - exact_mean) / exact_sd)),
        sd_ratio=float(np.mean(draws.std(1, ddof=1) / exact_sd)),
        diverging=float(np.mean(div)),
        seconds=seconds,
        method=method,
    )
