"""Benchmark of the multiscale averaging samplers (issue 6): MultALMC / MultCDiff vs NUTS (and RDMC
when ``scoresample.RDMC`` exists), on

  * an 8-mode mixture of unit Gaussians on a ring of radius 10 (2-D), W2 to exact draws: a
    stand-in for the paper's 8-mode MoG W2 experiment (Cordero-Encinar et al. 2025 report W2 =
    0.65 for MultALMC, 0.62 for MultCDiff, 1.01 for RDMC; its exact target was not available
    here, so the numbers are next to, not on, the paper's setting);
  * unequal-weight, well-separated mixtures in d = 2 (four modes, 0.1/0.2/0.3/0.4, barrier ≈ 50
    nats) and d = 8, 32 (three unit modes at the corners of a triangle of side 14, weights
    0.2/0.3/0.5, barrier ≈ 24 nats), with the repair (weighted fast ensemble, M = 16) and the
    paper's plain version (one fast chain).

Our samplers run through the BlackJAX-style API on the log density whitened by the target's
exact mean and covariance, i.e. the coordinates a converged warmup preconditioner provides (a
per-chain Laplace preconditioner sees one mode only, see the kernel docstrings); each draw is an
independent trajectory. NUTS runs through NumPyro with its own warmup from random starts.
Cost is counted in gradient evaluations per draw (and density evaluations), plus seconds.

Run from the repository root:  nice -n 10 python -m benchmarks.multiscale [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

import scoresample
from scoresample import bench
from scoresample import diagnostics as D
from scoresample.targets import gaussian_mixture, unequal_mixture_2d

RESULTS = Path(__file__).parent / "results"


def ring_mixture(num_modes=8, radius=10.0, sd=1.0):
    ang = 2 * np.pi * np.arange(num_modes) / num_modes
    means = radius * np.stack([np.cos(ang), np.sin(ang)], 1)
    return gaussian_mixture(means, sd, np.ones(num_modes), name=f"ring{num_modes}_2d")


def triangle_mixture(dim, side=14.0):
    means = np.zeros((3, dim))
    means[1, 0] = side
    means[2, 0], means[2, 1] = side / 2, side * np.sqrt(3) / 2
    means -= means.mean(0)
    return gaussian_mixture(means, 1.0, [0.2, 0.3, 0.5], name=f"mixture3_{dim}d")


def w2(x, y):
    """Exact W2 between two equal-size empirical measures (assignment problem)."""
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(cost[r, c].mean()))


def whitened_curvature(target):
    """Largest curvature of the whitened mixture: 1/sd² of its narrowest component times the
    largest eigenvalue of the whitening covariance (what the plain version's fast step needs:
    its reference start estimates nothing)."""
    return float(np.linalg.eigvalsh(target.cov).max() / np.min(target.extra["sds"]) ** 2)


def run_ours(name, api, target, params, num_draws, seed=0):
    m = jnp.asarray(target.mean, jnp.float32)
    chol = jnp.asarray(np.linalg.cholesky(target.cov), jnp.float32)
    if params.get("curvature") == "target":
        params = {**params, "curvature": whitened_curvature(target)}
    ld = lambda z: target.logdensity_fn(m + chol @ z)
    alg = api(ld, **params)
    state = alg.init(jnp.zeros(target.dim))
    step = jax.jit(jax.vmap(lambda k: alg.step(k, state)))
    keys = jax.random.split(jax.random.key(seed), num_draws)
    t0 = time.perf_counter()
    new, info = step(keys[:2])  # compile
    jax.block_until_ready(new)
    t1 = time.perf_counter()
    new, info = step(keys)
    jax.block_until_ready(new)
    t2 = time.perf_counter()
    x = np.asarray(m) + np.asarray(new.position) @ np.asarray(chol).T
    ok = ~np.asarray(info.diverging)
    return bench.RunResult(
        name,
        target.name,
        x[ok][None],
        0.0,
        float(np.sum(np.asarray(info.num_grad_evals)[ok])),
        float(np.sum(np.asarray(info.num_density_evals)[ok])),
        t1 - t0,
        t2 - t1,
        extra={
            "diverging": float(1 - ok.mean()),
            "min_fast_ess": float(np.mean(np.asarray(getattr(info, "min_ess", np.nan)))),
        },
    )


def row(result, target, exact):
    flat = result.draws.reshape(-1, target.dim)
    w = D.mode_weights(flat, target.component_means)
    n = min(len(flat), len(exact), 1500)
    out = {
        "sampler": result.sampler,
        "target": result.target,
        "draws": int(flat.shape[0]),
        "mode_weights": [round(float(v), 3) for v in w],
        "mode_weight_error": float(np.max(np.abs(w - target.weights))),
        "w2": w2(flat[:n], exact[:n]),
        "w2_floor": w2(exact[:n], exact[n : 2 * n]) if len(exact) >= 2 * n else float("nan"),
        "grads_per_draw": result.sample_grads / max(flat.shape[0], 1),
        "density_per_draw": result.sample_density_evals / max(flat.shape[0], 1),
        "warmup_grads": result.warmup_grads,
        "warmup_s": result.warmup_seconds,
        "sample_s": result.sample_seconds,
    }
    out.update(result.extra)
    return out


COLUMNS = [
    ("sampler", "{}"),
    ("target", "{}"),
    ("draws", "{}"),
    ("mode_weight_error", "{:.3f}"),
    ("mode_weights", "{}"),
    ("w2", "{:.3f}"),
    ("w2_floor", "{:.3f}"),
    ("grads_per_draw", "{:.0f}"),
    ("density_per_draw", "{:.0f}"),
    ("grad_ratio_vs_nuts", "{:.0f}"),
    ("warmup_s", "{:.1f}"),
    ("sample_s", "{:.1f}"),
]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer draws (smoke run)")
    args = parser.parse_args(argv)
    n = 200 if args.quick else 1500
    rng = np.random.default_rng(1)
    targets = [ring_mixture(), unequal_mixture_2d(), triangle_mixture(8), triangle_mixture(32)]
    variants = {
        "MultALMC (repair, M=16)": (scoresample.multalmc, {}),
        "MultALMC (plain, paper)": (
            scoresample.multalmc,
            {"fast_chains": 1, "reweight": False, "init": "reference", "curvature": "target"},
        ),
        "MultCDiff (repair, M=16)": (scoresample.multcdiff, {}),
        "MultCDiff (plain, paper)": (
            scoresample.multcdiff,
            {"fast_chains": 1, "reweight": False, "init": "reference", "curvature": "target"},
        ),
    }
    rows = []
    for target in targets:
        exact = target.sample(rng, 2 * n)
        nuts = bench.run_nuts(target, num_chains=4, num_warmup=500, num_samples=n // 4, seed=0)
        nuts_row = row(nuts, target, exact)
        nuts_row["grad_ratio_vs_nuts"] = 1.0
        target_rows = [nuts_row]
        if hasattr(scoresample, "rdmc"):
            try:  # same whitened log density, one reverse trajectory per draw, its defaults
                res = run_ours("RDMC (defaults)", scoresample.rdmc, target, {}, n)
                target_rows.append(row(res, target, exact))
            except Exception as err:  # noqa: BLE001 - a baseline failing must not stop the run
                print(f"RDMC failed on {target.name}: {err!r}")
        for name, (api, params) in variants.items():
            res = run_ours(name, api, target, params, n)
            target_rows.append(row(res, target, exact))
        for r in target_rows[1:]:
            r["grad_ratio_vs_nuts"] = r["grads_per_draw"] / max(nuts_row["grads_per_draw"], 1e-9)
        rows.extend(target_rows)
        for r in target_rows:
            print(r["sampler"], r["target"], round(r["mode_weight_error"], 3), round(r["w2"], 3))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "nice -n 10 python -m benchmarks.multiscale" + (" --quick" if args.quick else "")
    md = [
        "# Multiscale averaging samplers (MultALMC, MultCDiff)",
        "",
        f"Produced by `{cmd}` on {stamp} (CPU, {jax.device_count()} device(s)).",
        "",
        "Paper (Cordero-Encinar et al. 2025), 8-mode MoG: W2 = 0.65 (MultALMC), 0.62 (MultCDiff),",
        "1.01 (RDMC). Our ring8_2d is a stand-in for that setting (radius 10, unit sds, equal",
        "weights); our samplers run on the exactly whitened log density (what a converged warmup",
        "gives), NUTS with its own warmup. W2: exact assignment between ≤ 1500 draws and as many",
        "exact draws; w2_floor is the W2 between two independent exact samples of that size, the",
        "noise floor (on the ring, mode counts of n draws differ by ~sqrt(n/8) per mode, and each",
        "draw moved between neighbouring modes costs 7.7² in W2²: at n = 200 the floor is ≈ 2.5).",
        "The plain versions are given the whitened target's curvature (their reference start",
        "estimates none; with the default 1 their fast steps are unstable here).",
        "grad_ratio_vs_nuts: gradient evaluations per draw relative to NUTS (per draw, not per",
        "effective draw: every one of our draws is an independent trajectory, NUTS draws are",
        "correlated and, on these targets, stuck in the modes they started in).",
        "",
        bench.markdown_table(rows, COLUMNS),
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (RESULTS / f"multiscale{suffix}.md").write_text("\n".join(md))
    bench.write_json(rows, RESULTS / f"multiscale{suffix}.json")
    print("\n".join(md))


if __name__ == "__main__":
    main()
