"""Issue 5 benchmark: gradient-free EnsembleDiffusion vs the other gradient-free options.

Samplers, all in this process: EnsembleDiffusion with the pooled estimator ("ensemble") and with
the per-particle Monte Carlo estimator ("follmer", same kernel and whitening); BlackJAX
Schrödinger–Föllmer as shipped (reference N(0, I) in the target's coordinates) and the same
BlackJAX sampler run on our warmup's whitened coordinates (separates the effect of whitening
from that of pooling); BlackJAX adaptive tempered SMC with random-walk moves; NumPyro NUTS (uses
gradients; 4 chains from random starts, for reference).

Budgets are matched in density evaluations per draw, counting OUR WARMUP too: EnsembleDiffusion
uses N particles × (warmup + kept) iterations × (K·M + 1) evaluations for N × kept draws; the
Schrödinger–Föllmer runs get the same number of draws with K steps and that budget divided by K
as inner samples; tempered SMC gets the same number of particles and as many random-walk moves
per temperature as fit the budget (after a pilot run that finds its number of temperatures).

Targets (exact answers): the 2-D unequal 4-mode mixture (weights .1/.2/.3/.4, modes 10 apart,
sd 0.5) and two unit-sd modes 8 apart with weights 1/3, 2/3 in d = 8, 16, 32. Metrics: largest
mode-weight error, MMD² (Gaussian kernel, median bandwidth) against 1000 exact draws, wall time
(compilation included for every sampler), evaluations per draw. Then the population size N.

    python -m benchmarks.ensemble [--out benchmarks/results] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC

from scoresample import EnsembleDiffusion, baselines, bench
from scoresample import diagnostics as D
from scoresample.adapt.preconditioner import to_position
from scoresample.targets import two_mode_mixture, unequal_mixture_2d
from scoresample.targets.base import Target

NUM_STEPS, NUM_SAMPLES = 32, 4  # the EnsembleDiffusion defaults
WARMUP, KEPT = 100, 20


def manywell(dim: int) -> Target:
    """ManyWell-type product (ALGORITHMS.md): dim/2 independent pairs with energy
    x1⁴ - 6x1² + 0.5x1 + 0.5x2², so 2^(dim/2) modes of unequal mass. Exact: P(x1 < 0) per pair
    and exact draws by inverse-CDF on a fine grid (quadrature)."""
    pairs = dim // 2
    grid = np.linspace(-4.0, 4.0, 200_001)
    dens = np.exp(-(grid**4 - 6 * grid**2 + 0.5 * grid))
    cdf = np.cumsum(dens)
    cdf /= cdf[-1]
    p_left = float(np.interp(0.0, grid, cdf))

    def logdensity_fn(x):
        x1, x2 = x[0::2], x[1::2]
        return -jnp.sum(x1**4 - 6 * x1**2 + 0.5 * x1) - 0.5 * jnp.sum(x2**2)

    def model():
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real_vector, (), (dim,)))
        numpyro.factor("manywell", logdensity_fn(x))

    def sample(rng, n):
        out = np.empty((n, dim))
        out[:, 0::2] = np.interp(rng.uniform(size=(n, pairs)), cdf, grid)
        out[:, 1::2] = rng.standard_normal((n, pairs))
        return out

    return Target(
        f"manywell_{dim}d", dim, logdensity_fn, model, sample=sample, extra={"p_left": p_left}
    )


def mmd2(x, y, rng, n=1000):
    """Squared MMD, Gaussian kernel with the median-heuristic bandwidth, on n draws of each."""
    x = x[rng.choice(len(x), min(n, len(x)), replace=False)]
    y = y[rng.choice(len(y), min(n, len(y)), replace=False)]
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.sum(z**2, 1)
    d2 = np.maximum(sq[:, None] + sq[None] - 2 * z @ z.T, 0.0)
    bw2 = 0.5 * np.median(d2[d2 > 0])
    k = np.exp(-d2 / (2 * bw2))
    m = len(x)
    return float(k[:m, :m].mean() + k[m:, m:].mean() - 2 * k[:m, m:].mean())


def metrics(name, target, draws, density_per_draw, grads_per_draw, seconds, **extra):
    flat = np.asarray(draws).reshape(-1, target.dim)
    exact = target.sample(np.random.default_rng(1), 1000)
    row = {"sampler": name, "target": target.name, "dim": target.dim, "draws": int(flat.shape[0])}
    if target.weights is not None:
        w = D.mode_weights(flat, target.component_means)
        row["mode_weights"] = [round(float(v), 3) for v in w]
        row["mode_weight_error"] = float(np.max(np.abs(w - target.weights)))
    else:  # ManyWell: the mass of the left well of every pair
        left = np.mean(flat[:, 0::2] < 0, axis=0)
        row["mode_weight_error"] = float(np.max(np.abs(left - target.extra["p_left"])))
    row.update(
        {
            "mmd2": mmd2(flat, exact, np.random.default_rng(2)),
            "density_per_draw": float(density_per_draw),
            "grads_per_draw": float(grads_per_draw),
            "wall_s": float(seconds),
        }
    )
    row.update(extra)
    print(
        f"  {name:28s} d={target.dim:2d} err={row['mode_weight_error']:.3f} "
        f"mmd2={row['mmd2']:.4f} dens/draw={density_per_draw:.0f} {seconds:.1f}s",
        flush=True,
    )
    return row


def run_ours(target, n, estimator="ensemble", seed=0):
    kernel = EnsembleDiffusion(target.model, estimator=estimator)
    mcmc = MCMC(
        kernel,
        num_warmup=WARMUP,
        num_samples=KEPT,
        num_chains=n,
        chain_method="vectorized",
        progress_bar=False,
    )
    fields = ("num_grad_evals", "num_density_evals")
    kw, ks = jax.random.split(jax.random.key(seed))
    t0 = time.perf_counter()
    mcmc.warmup(kw, collect_warmup=True, extra_fields=fields)
    wf = mcmc.get_extra_fields()
    mcmc.run(ks, extra_fields=fields)
    x = np.asarray(mcmc.get_samples()["x"])
    seconds = time.perf_counter() - t0
    sf = mcmc.get_extra_fields()
    dens = float(np.sum(wf["num_density_evals"]) + np.sum(sf["num_density_evals"]))
    grads = float(np.sum(wf["num_grad_evals"]) + np.sum(sf["num_grad_evals"]))
    precond = mcmc.last_state.adapt_state.precond
    row = metrics(
        f"EnsembleDiffusion[{estimator}]",
        target,
        x,
        dens / x.shape[0],
        grads / x.shape[0],
        seconds,
        particles=n,
    )
    return row, precond


def run_sf(target, num_draws, per_draw, seed=0, precond=None):
    """BlackJAX Schrödinger–Föllmer with NUM_STEPS steps and the budget's inner samples; on the
    target as shipped, or on our whitened coordinates x = m + L z when precond is given."""
    inner = max(int(per_draw // NUM_STEPS), 1)
    if precond is None:
        ld, back, name = target.logdensity_fn, (lambda z: z), "BlackJAX-SF"
    else:
        ld = lambda z: target.logdensity_fn(to_position(precond, z))
        back, name = (lambda z: to_position(precond, z)), "BlackJAX-SF (our whitening)"
    alg = blackjax.schrodinger_follmer(ld, n_steps=NUM_STEPS, n_inner_samples=inner)
    t0 = time.perf_counter()
    out = jax.jit(lambda k: alg.sample(k, alg.init(jnp.zeros(target.dim)), num_draws).position)(
        jax.random.key(seed)
    )
    x = np.asarray(back(out))
    return metrics(name, target, x, NUM_STEPS * inner, 0.0, time.perf_counter() - t0)


def run_smc_rw(target, num_draws, per_draw, seed=0):
    pilot = baselines.run_tempered_smc(
        target, num_particles=num_draws, seed=seed, kernel="rw", num_mcmc_steps=5
    )
    n_temps = pilot.extra["num_temperatures"]
    steps = max(int(per_draw / n_temps) - 1, 1)
    t0 = time.perf_counter()
    res = baselines.run_tempered_smc(
        target, num_particles=num_draws, seed=seed, kernel="rw", num_mcmc_steps=steps
    )
    seconds = time.perf_counter() - t0
    return metrics(
        "BlackJAX tempered SMC (RW)",
        target,
        res.draws,
        res.sample_density_evals / res.num_draws,
        0.0,
        seconds,
        num_temperatures=res.extra["num_temperatures"],
        rw_steps=steps,
    )


def run_nuts(target, seed=0):
    t0 = time.perf_counter()
    res = bench.run_nuts(target, num_chains=4, num_warmup=500, num_samples=500, seed=seed)
    seconds = time.perf_counter() - t0
    return metrics(
        "NumPyro NUTS (4 chains)",
        target,
        res.draws,
        0.0,
        (res.warmup_grads + res.sample_grads) / res.num_draws,
        seconds,
    )


COLUMNS = [
    ("sampler", "{}"),
    ("dim", "{}"),
    ("particles", "{}"),
    ("draws", "{}"),
    ("mode_weight_error", "{:.3f}"),
    ("mmd2", "{:.4f}"),
    ("density_per_draw", "{:.0f}"),
    ("grads_per_draw", "{:.0f}"),
    ("wall_s", "{:.1f}"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--quick", action="store_true", help="d = 2 and 8 only, no population sweep")
    args = p.parse_args(argv)
    n = 256
    dims = (2, 8) if args.quick else (2, 8, 16, 32)
    rows, sweep = [], []
    for d in dims:
        target = unequal_mixture_2d() if d == 2 else two_mode_mixture(d)
        print(f"{target.name}", flush=True)
        ours, precond = run_ours(target, n)
        rows.append(ours)
        draws, per_draw = ours["draws"], ours["density_per_draw"]
        rows.append(run_ours(target, n, estimator="follmer")[0])
        rows.append(run_sf(target, draws, per_draw))
        rows.append(run_sf(target, draws, per_draw, precond=precond))
        rows.append(run_smc_rw(target, draws, per_draw))
        if d <= 8:  # NUTS from random starts keeps the chains' modes: shown where it is cheap
            rows.append(run_nuts(target))
    wells = []
    for d in () if args.quick else (2, 8, 16, 32):
        target = manywell(d)
        print(f"{target.name}", flush=True)
        ours, precond = run_ours(target, n)
        wells.append(ours)
        draws, per_draw = ours["draws"], ours["density_per_draw"]
        wells.append(run_sf(target, draws, per_draw, precond=precond))
        wells.append(run_smc_rw(target, draws, per_draw))
    if not args.quick:
        target = unequal_mixture_2d()
        print("population size, 2-D mixture", flush=True)
        for size in (16, 64, 512):
            sweep.append(run_ours(target, size)[0])
        sweep.append(next(r for r in rows if r["dim"] == 2 and "ensemble]" in r["sampler"]))
        sweep.sort(key=lambda r: r["particles"])
    out = Path(args.out)
    command = "python -m benchmarks.ensemble" + (" --quick" if args.quick else "")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = [
        "# Issue 5: gradient-free ensemble Föllmer sampling (EnsembleDiffusion)",
        "",
        f"`{command}` (from the repository root, {date}; CPU, {jax.device_count()} device(s),"
        " a shared 2-core machine: wall times are indicative only).",
        "",
        f"EnsembleDiffusion: N = {n} particles, {WARMUP} warmup + {KEPT} kept iterations,"
        f" K = {NUM_STEPS} Euler steps, M = {NUM_SAMPLES} proposals per particle and step;"
        " density evaluations per draw include the warmup. Baselines get the same evaluations"
        " per draw (SMC: as close as its adaptive temperature count allows).",
        "",
        "## Mode weights and MMD by dimension",
        "",
        bench.markdown_table(rows, COLUMNS),
    ]
    if wells:
        md += [
            "",
            "## Where it stops working: ManyWell (2^(d/2) modes of unequal mass)",
            "",
            "mode_weight_error here = the largest error in the mass of a pair's left well"
            " (exact by quadrature).",
            "",
            bench.markdown_table(wells, COLUMNS),
        ]
    if sweep:
        md += [
            "",
            "## Population size (2-D mixture, same K, M)",
            "",
            bench.markdown_table(sweep, COLUMNS),
        ]
    (out / "ensemble.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "ensemble.md").write_text("\n".join(md) + "\n")
    bench.write_json(rows + wells + [dict(r, sweep=True) for r in sweep], out / "ensemble.json")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
