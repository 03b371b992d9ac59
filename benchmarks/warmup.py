"""Issue 12 benchmark: every kernel at its defaults, started by its own warmup, on targets whose
NumPyro models have proper priors (and one without), beside BlackJAX adaptive tempered SMC given
the same prior.

Targets (exact answers in scoresample/targets):
  * funnel10: Neal's funnel as a density (ImproperUniform site + factor, NO prior): how a kernel
    behaves when the model tells it nothing about the scale;
  * hierarchical_funnel10: the same funnel as the centred model v ~ N(0, 3²), x | v ~ N(0, e^v):
    posterior = prior; exact sd(v) = 3 and P(v < −3) = Φ(−1) = 0.1587;
  * mixture40: 40 equal-weight unit-sd modes, means uniform in [−40, 40]² (seed 0), prior N(0, 25²);
  * manywell32: ManyWell-32 under a N(0, 3²) prior; exact P(x1 < 0) per pair by quadrature;
  * mixture4 (not in the default set): 4 modes at (±15, ±15), weights 0.1–0.4, prior N(0, 20²).

Kernels: NumPyro NUTS and scoresample's RandomizedMidpoint, RDMC, MultALMC, MultCDiff (per-chain:
16 chains) and EnsembleDiffusion, CMCD (population: 256 particles), all at their defaults through
``MCMC(Kernel(model), num_warmup=100, num_samples=250, chain_method="vectorized")`` in float64;
``--quick``: 50 samples (the warmup keeps its 100 iterations: the warmup is what is measured).
SMC-HMC: ``scoresample.baselines.run_tempered_smc`` with the target's prior N(m, s² I) as its
reference (the funnels: N(0, 3² I), the scale of v), 4096 particles (``--quick``: 1024).

Metrics: funnel mean and sd of v and P(v < −3); mixtures: max |ŵ_k − w_k|, total variation
½ Σ |ŵ_k − w_k| (draws assigned to the nearest mean) and the number of modes found (ŵ_k ≥ w_k/4:
with ≥ 800 draws an exact sampler puts at least a quarter of a mode's expected draws there with
probability > 0.99 for every mode); ManyWell: mean (and max) over the 16 pairs of
|P̂(x1 < 0) − P(x1 < 0)|; CMCD and SMC also log Ẑ − log Z (CMCD: ``combine_log_z`` over the
sampling sweeps). Costs from the kernels' extra fields (NUTS: ``num_steps``): gradients and
densities per draw in sampling, warmup gradients per chain (per particle for population kernels),
and the first-iteration start cost: iteration 0's counters minus the median warmup iteration's
(NUTS: not counted by NumPyro, shown as –).

``--old`` passes ``preconditioner="laplace"`` (MAP + Laplace start, the warmup before issue 12) to
every scoresample kernel; ``--kernel-kwargs '{"name": value}'`` passes any keywords. A kernel that
raises is recorded as an error row; results are rewritten after every run.

Run from the repository root:
    nice -n 10 python -m benchmarks.warmup [--quick] [--old] [--out benchmarks/results/warmup]
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from numpyro.infer import NUTS  # noqa: E402

import scoresample  # noqa: E402
from scoresample import bench  # noqa: E402
from scoresample import diagnostics as D  # noqa: E402
from scoresample.baselines import run_tempered_smc  # noqa: E402
from scoresample.cli import DEMO_KERNELS  # noqa: E402
from scoresample.samplers.cmcd import combine_log_z  # noqa: E402
from scoresample.targets import (  # noqa: E402
    forty_mode_mixture_prior,
    four_mode_mixture_prior,
    funnel,
    hierarchical_funnel,
    manywell_prior,
)

RESULTS = Path(__file__).parent / "results"
KERNELS = ("NUTS",) + tuple(name for name, _ in DEMO_KERNELS)
POPULATION = tuple(name for name, kind in DEMO_KERNELS if kind == "population")
SAMPLERS = KERNELS + ("SMC-HMC",)
# chains / particles / iterations: the sizes of issue 12; --quick shortens sampling only
FULL = dict(chains=16, particles=256, warmup=100, samples=250, smc_particles=4096)
QUICK = dict(FULL, samples=50, smc_particles=1024)
FUNNEL_V_SD, FUNNEL_NECK = 3.0, -3.0  # v ~ N(0, 3²); P(v < −3) = Φ(−1)
FOUND_FRACTION = 0.25  # a mode is found when it holds ≥ 1/4 of its exact weight


def build_targets() -> dict:
    """name -> (target, kind) with kind in {"funnel", "mixture", "manywell"}."""
    return {
        "funnel10": (funnel(10), "funnel"),
        "hierarchical_funnel10": (hierarchical_funnel(10), "funnel"),
        "mixture40": (forty_mode_mixture_prior(), "mixture"),
        "manywell32": (manywell_prior(), "manywell"),
        "mixture4": (four_mode_mixture_prior(), "mixture"),
    }


DEFAULT_TARGETS = ("funnel10", "hierarchical_funnel10", "mixture40", "manywell32")


def smc_reference(target) -> tuple[float, float]:
    """(mean, sd) of SMC's Gaussian reference: the target's prior where it has a Gaussian one,
    else N(0, 3²), the scale of the funnel's v (the hierarchical funnel's prior is not Gaussian:
    it is the posterior itself)."""
    if "prior_scale" in target.extra:
        return target.extra["prior_mean"], target.extra["prior_scale"]
    return 0.0, FUNNEL_V_SD


def make_kernel(name: str, model, kernel_kwargs: dict):
    """The kernel at its defaults; ``kernel_kwargs`` go to scoresample kernels only."""
    if name == "NUTS":
        return NUTS(model)
    return getattr(scoresample, name)(model, **kernel_kwargs)


def extra_fields(name: str) -> tuple:
    if name == "NUTS":
        return ("num_steps", "diverging")
    fields = ("num_grad_evals", "num_density_evals", "diverging")
    return fields + ("log_z",) if name == "CMCD" else fields


def first_iteration_cost(counts: np.ndarray) -> float:
    """Mean over chains of iteration 0's count minus the median of iterations 1.. (the cost of
    a typical warmup iteration); counts (chains, warmup iterations)."""
    if counts.shape[1] < 2:
        return float("nan")
    typical = np.median(counts[:, 1:], axis=1)
    return float(np.mean(counts[:, 0] - typical))


def cost_summary(name: str, warm: dict, samp: dict, num_draws: int) -> dict:
    """Gradients/densities per draw in sampling, warmup gradients per chain, start cost."""
    if name == "NUTS":
        grads_w, grads_s = np.asarray(warm["num_steps"]), np.asarray(samp["num_steps"])
        dens_w, dens_s = np.zeros_like(grads_w), np.zeros_like(grads_s)
    else:
        grads_w, grads_s = np.asarray(warm["num_grad_evals"]), np.asarray(samp["num_grad_evals"])
        dens_w = np.asarray(warm["num_density_evals"])
        dens_s = np.asarray(samp["num_density_evals"])
    out = {
        "grads_per_draw": float(grads_s.sum()) / num_draws,
        "density_per_draw": float(dens_s.sum()) / num_draws,
        "warmup_grads_per_chain": float(grads_w.sum()) / grads_w.shape[0],
        "warmup_density_per_chain": float(dens_w.sum()) / dens_w.shape[0],
        "diverging": float(np.mean(np.asarray(samp["diverging"]))),
    }
    if name != "NUTS":
        out["first_iter_grads"] = first_iteration_cost(grads_w.astype(np.float64))
        out["first_iter_density"] = first_iteration_cost(dens_w.astype(np.float64))
    return out


def run_kernel(name: str, target, sizes: dict, kernel_kwargs: dict, seed: int = 0):
    """Warmup then sampling of one kernel; (bench.RunResult, cost/evidence fields)."""
    n = sizes["particles"] if name in POPULATION else sizes["chains"]
    kernel = make_kernel(name, target.model, {} if name == "NUTS" else kernel_kwargs)
    mcmc = bench.make_mcmc(kernel, n, sizes["warmup"], sizes["samples"])
    fields = extra_fields(name)
    key_w, key_s = jax.random.split(jax.random.key(seed))
    t0 = time.perf_counter()
    mcmc.warmup(key_w, *target.model_args, collect_warmup=True, extra_fields=fields)
    warm = jax.tree.map(np.asarray, mcmc.get_extra_fields(group_by_chain=True))
    jax.block_until_ready(mcmc.post_warmup_state)
    t1 = time.perf_counter()
    mcmc.run(key_s, *target.model_args, extra_fields=fields)
    samples = jax.tree.map(np.asarray, mcmc.get_samples(group_by_chain=True))
    samp = jax.tree.map(np.asarray, mcmc.get_extra_fields(group_by_chain=True))
    t2 = time.perf_counter()
    draws = target.flat_draws(samples)
    num_draws = int(draws.shape[0] * draws.shape[1])
    extra = cost_summary(name, warm, samp, num_draws)
    if "log_z" in samp:
        per_sweep = samp["log_z"][0]  # (samples,): the same value in every particle of a sweep
        extra["log_z_err"] = float(combine_log_z(per_sweep)) - target.log_z
        extra["log_z_sweep_sd"] = float(np.std(per_sweep, ddof=1))
    sample_grads = extra["grads_per_draw"] * num_draws
    sample_dens = extra["density_per_draw"] * num_draws
    warm_grads = extra["warmup_grads_per_chain"] * n
    result = bench.RunResult(
        name, target.name, draws, warm_grads, sample_grads, sample_dens, t1 - t0, t2 - t1
    )
    return result, extra


def run_smc(target, sizes: dict, seed: int = 0):
    """BlackJAX adaptive tempered SMC (HMC moves) from the target's prior."""
    mean, scale = smc_reference(target)
    res = run_tempered_smc(
        target,
        num_particles=sizes["smc_particles"],
        seed=seed,
        kernel="hmc",
        prior_mean=mean,
        prior_scale=scale,
    )
    n = res.num_draws
    extra = {
        "grads_per_draw": res.sample_grads / n,
        "density_per_draw": res.sample_density_evals / n,
        "log_z_err": res.extra["log_z"] - target.log_z,
        "num_temperatures": res.extra["num_temperatures"],
        "compile_s": res.extra["compile_s"],
    }
    return res, extra


def funnel_metrics(flat: np.ndarray) -> dict:
    v = flat[:, 0]
    return {
        "mean_v": float(np.mean(v)),
        "sd_v": float(np.std(v)),
        "p_v_below_minus_3": float(np.mean(v < FUNNEL_NECK)),
    }


def mixture_metrics(flat: np.ndarray, target) -> dict:
    w = D.mode_weights(flat, target.component_means)
    diff = np.abs(w - target.weights)
    return {
        "mode_weight_error": float(diff.max()),
        "mode_weight_tv": float(0.5 * diff.sum()),
        "modes_found": int(np.sum(w >= FOUND_FRACTION * target.weights)),
        "num_modes": int(len(target.weights)),
    }


def manywell_metrics(flat: np.ndarray, target) -> dict:
    p_left = np.mean(flat[:, 0::2] < 0.0, axis=0)
    err = np.abs(p_left - target.extra["p_left"])
    return {"manywell_p_err": float(err.mean()), "manywell_p_err_max": float(err.max())}


def target_metrics(kind: str, flat: np.ndarray, target) -> dict:
    if kind == "funnel":
        return funnel_metrics(flat)
    if kind == "mixture":
        return mixture_metrics(flat, target)
    return manywell_metrics(flat, target)


def one_row(sampler: str, target, kind: str, sizes: dict, kernel_kwargs: dict) -> dict:
    """Run and evaluate one (target, sampler); an exception becomes an error row."""
    t0 = time.perf_counter()
    row = {"sampler": sampler, "target": target.name}
    try:
        if sampler == "SMC-HMC":
            result, extra = run_smc(target, sizes)
        else:
            result, extra = run_kernel(sampler, target, sizes, kernel_kwargs)
        row.update(bench.evaluate(result, target))
        row.update(extra)
        flat = result.draws.reshape(-1, target.dim)
        if not np.all(np.isfinite(flat)):
            row["nonfinite_draws"] = float(np.mean(~np.isfinite(flat).all(axis=1)))
            flat = flat[np.isfinite(flat).all(axis=1)]
        row.update(target_metrics(kind, flat, target))
    except Exception as err:  # noqa: BLE001 - one failing kernel is a result, not a crash
        traceback.print_exc()
        row["error"] = f"{type(err).__name__}: {err}"[:300]
    row["wall_s"] = time.perf_counter() - t0
    return row


COMMON_COLUMNS = [
    ("rhat_max", "{:.2f}"),
    ("ksd", "{:.3f}"),
    ("diverging", "{:.3f}"),
    ("grads_per_draw", "{:.0f}"),
    ("density_per_draw", "{:.0f}"),
    ("warmup_grads_per_chain", "{:.0f}"),
    ("first_iter_grads", "{:.0f}"),
    ("first_iter_density", "{:.0f}"),
    ("warmup_s", "{:.1f}"),
    ("sample_s", "{:.1f}"),
    ("wall_s", "{:.0f}"),
    ("error", "{}"),
]
KIND_COLUMNS = {
    "funnel": [
        ("mean_v", "{:+.2f}"),
        ("sd_v", "{:.3f}"),
        ("p_v_below_minus_3", "{:.4f}"),
        ("log_z_err", "{:+.3f}"),
    ],
    "mixture": [
        ("mode_weight_error", "{:.3f}"),
        ("mode_weight_tv", "{:.3f}"),
        ("modes_found", "{}"),
        ("log_z_err", "{:+.3f}"),
    ],
    "manywell": [
        ("manywell_p_err", "{:.3f}"),
        ("manywell_p_err_max", "{:.3f}"),
        ("log_z_err", "{:+.3f}"),
    ],
}
EXACT = {
    "funnel": "exact E[v] = 0, sd(v) = 3, P(v < −3) = 0.1587, log Z = 0",
    "mixture": "exact weights known; modes_found counts ŵ_k ≥ w_k/4",
    "manywell": "exact P(x1 < 0) = {p:.4f} per pair, log Z = {lz:.4f}",
}


def revision() -> str:
    """The git revision of the scoresample package that ran (``+dirty`` with local edits)."""
    root = Path(scoresample.__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") + f" ({root})"


def section(name: str, target, kind: str, rows: list[dict]) -> list[str]:
    exact = EXACT[kind]
    if kind == "manywell":
        exact = exact.format(p=target.extra["p_left"], lz=target.log_z)
    cols = [("sampler", "{}")] + KIND_COLUMNS[kind] + COMMON_COLUMNS
    return [f"### {name} (`{target.name}`): {exact}", "", bench.markdown_table(rows, cols), ""]


def write_report(rows, targets, names, header: list[str], out: Path) -> None:
    lines = list(header)
    for name in names:
        target, kind = targets[name]
        these = [r for r in rows if r["target"] == target.name]
        if these:
            lines += section(name, target, kind, these)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines))
    bench.write_json(rows, out.with_suffix(".json"))


def header_lines(args, sizes: dict, kernel_kwargs: dict) -> list[str]:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "nice -n 10 python -m benchmarks.warmup " + " ".join(sys.argv[1:])
    return [
        "# Warmup reference (issue 12)",
        "",
        f"Produced by `{cmd.strip()}` on {stamp} ({jax.default_backend()}, "
        f"{jax.device_count()} device(s), float64); scoresample {revision()}.",
        "",
        f"Sizes: {sizes['chains']} chains (population kernels: {sizes['particles']} particles) "
        f"× ({sizes['warmup']} warmup + {sizes['samples']} samples), vectorized; SMC-HMC "
        f"{sizes['smc_particles']} particles from the prior. Kernel keywords: "
        f"{json.dumps(kernel_kwargs) if kernel_kwargs else 'none (defaults)'}.",
        "Columns: grads/density per draw in sampling; warmup_grads_per_chain (per particle for "
        "population kernels); first_iter_*: iteration 0's counters minus a median warmup "
        "iteration's (the start: MAP, Hessian, prior draws, ...); wall_s includes compilation.",
        "",
    ]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="50 samples, 1024 SMC particles")
    p.add_argument("--old", action="store_true", help='preconditioner="laplace" (old warmup)')
    p.add_argument("--kernel-kwargs", default="{}", help="JSON dict for scoresample kernels")
    p.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS))
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--samples", type=int, help="override the number of samples")
    p.add_argument("--out", type=Path, help="output stem (default results/warmup[_quick])")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.samples:
        sizes["samples"] = args.samples
    kernel_kwargs = json.loads(args.kernel_kwargs)
    if args.old:
        kernel_kwargs = {"preconditioner": "laplace", **kernel_kwargs}
    out = args.out or RESULTS / ("warmup_quick" if args.quick else "warmup")
    targets = build_targets()
    unknown = set(args.targets) - set(targets)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}; choose from {sorted(targets)}")
    header = header_lines(args, sizes, kernel_kwargs)
    rows = []
    for name in args.targets:
        target, kind = targets[name]
        for sampler in args.samplers:
            rows.append(one_row(sampler, target, kind, sizes, kernel_kwargs))
            shown = {k: v for k, v in rows[-1].items() if not isinstance(v, list)}
            print(json.dumps(shown, default=float), flush=True)
            write_report(rows, targets, args.targets, header, out)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
