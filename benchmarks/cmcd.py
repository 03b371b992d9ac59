"""Issue 4 benchmark: CMCD log Z error vs K on Funnel-10 and ManyWell-32, zero vs learned control,
next to BlackJAX adaptive tempered SMC (HMC moves) and the published CMCD figure.

    nice -n 10 .venv/bin/python -m benchmarks.cmcd [--particles 512] [--sweeps 4] [--train 60]

CMCD runs through the BlackJAX-level sweep (scoresample.samplers.cmcd.sweep) with a fixed
reference N(0, s² I) (funnel s = 1, ManyWell s = 1.5) and fixed ε; the learned control is trained
first (scoresample.adapt.control.train_control), its cost reported apart as "train grads".
NUTS is not run: it gives no evidence estimate. Published: Vargas et al. (ICLR 2024), Funnel-10
log Z error -0.019 ± 0.064 at K = 256 (learned control, schedule and step sizes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scoresample.adapt.control import mlp_control, train_control
from scoresample.baselines import run_tempered_smc
from scoresample.diffusion.annealing import linear_schedule
from scoresample.samplers.cmcd import sweep
from scoresample.targets import funnel, manywell

RESULTS = Path(__file__).parent / "results"
SETTINGS = {  # reference scale s, step size ε in reference units (measured, see results md)
    "funnel10": (funnel(10), 1.0, 0.02),
    "manywell32": (manywell(16), 1.5, 0.01),
}


def scaled(target, s):
    d = target.dim
    return lambda y: target.logdensity_fn(s * y) + d * jnp.log(s)


def run_cmcd(target, s, eps, K, n, sweeps, params=None, control=None, seed=0):
    ld = scaled(target, s)
    betas = linear_schedule(K)

    @jax.jit
    def many(keys):
        f = lambda k: sweep(
            k,
            ld,
            n,
            target.dim,
            betas,
            eps,
            num_blocks=8,
            num_mala_steps=2,
            control_apply=None if control is None else control.apply,
            control_params=params,
        )[3]
        return jax.vmap(f)(keys)

    keys = jax.random.split(jax.random.key(seed), sweeps)
    t0 = time.perf_counter()
    jax.block_until_ready(many(keys))
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    info = jax.block_until_ready(many(jax.random.split(jax.random.key(seed + 1), sweeps)))
    t_run = time.perf_counter() - t0
    lz = np.asarray(info["log_z"][:, 0], np.float64)
    err = lz - target.log_z
    return {
        "err_mean": float(err.mean()),
        "err_sd": float(err.std(ddof=1)),
        "ess": float(np.mean(info["ess"][:, 0])),
        "grads_per_particle": float(np.mean(info["num_grad_evals"])),
        "seconds_per_sweep": t_run / sweeps,
        "compile_s": t_compile,
    }


def train(target, s, eps, K, n_train, iters, seed=0):
    control = mlp_control(hidden=(32, 32), learning_rate=3e-3, num_updates=2)
    ld = scaled(target, s)
    betas = linear_schedule(K)
    t0 = time.perf_counter()
    params, losses, grads = jax.jit(
        lambda k: train_control(
            k, ld, target.dim, n_train, betas, eps, control, iters, num_blocks=8
        )
    )(jax.random.key(100 + seed))
    jax.block_until_ready(params)
    return control, params, float(grads) * n_train, time.perf_counter() - t0, np.asarray(losses)


def write_report(rows, particles, sweeps, train, note=""):
    """Write benchmarks/results/cmcd.{json,md} from the result rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cmcd.json").write_text(json.dumps(rows, indent=1))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# CMCD: log Z error vs K (issue 4)",
        "",
        f"Command: `nice -n 10 .venv/bin/python -m benchmarks.cmcd --particles {particles} "
        f"--sweeps {sweeps} --train {train}` ({date}, 2 shared CPU cores, load ≈ 20).",
        "",
        f"log Z error = mean ± sd over {sweeps} independent sweeps of {particles} "
        "particles. Grads = gradient evaluations per particle per sweep (K + 1 + MALA moves). "
        "Learned-control training cost is separate (train grads: total over all training "
        "particles). Published CMCD (Vargas et al. 2024): Funnel-10 -0.019 ± 0.064 at K = 256.",
        "",
        "| target | sampler | K | log Z error | ESS | grads/particle | s/sweep | train grads"
        " | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ess = "" if r["ess"] is None else f"{r['ess']:.0f}"
        lines.append(
            f"| {r['target']} | {r['sampler']} | {r['K'] or ''} | "
            f"{r['err_mean']:+.3f} ± {r['err_sd']:.3f} | {ess} | {r['grads_per_particle']:.0f} | "
            f"{r['seconds_per_sweep']:.2f} | {r['train_grads']:.3g} | {r['train_s']:.1f} |"
        )
    if note:
        lines += ["", note]
    (RESULTS / "cmcd.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--particles", type=int, default=512)
    p.add_argument("--sweeps", type=int, default=4)
    p.add_argument("--train", type=int, default=60)
    p.add_argument("--train-particles", type=int, default=128)
    p.add_argument("--ks", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--targets", nargs="+", default=list(SETTINGS))
    args = p.parse_args(argv)
    rows = []
    for name in args.targets:
        target, s, eps = SETTINGS[name]
        for K in args.ks:
            r = run_cmcd(target, s, eps, K, args.particles, args.sweeps)
            rows.append(
                {
                    "target": name,
                    "sampler": "CMCD zero",
                    "K": K,
                    **r,
                    "train_grads": 0.0,
                    "train_s": 0.0,
                }
            )
            print(rows[-1], flush=True)
            control, params, tg, ts, losses = train(
                target, s, eps, K, args.train_particles, args.train
            )
            r = run_cmcd(target, s, eps, K, args.particles, args.sweeps, params, control)
            rows.append(
                {
                    "target": name,
                    "sampler": "CMCD learned",
                    "K": K,
                    **r,
                    "train_grads": tg,
                    "train_s": ts,
                    "loss_first": float(losses[0]),
                    "loss_last": float(losses[-1]),
                }
            )
            print(rows[-1], flush=True)
        errs, grads, secs = [], [], []
        for seed in range(args.sweeps):
            res = run_tempered_smc(
                target,
                num_particles=args.particles,
                seed=seed,
                kernel="hmc",
                prior_scale=s * 3.0 if name == "funnel10" else s,
            )
            errs.append(res.extra["log_z"] - target.log_z)
            grads.append(res.sample_grads / args.particles)
            secs.append(res.sample_seconds)
        rows.append(
            {
                "target": name,
                "sampler": "SMC-HMC (BlackJAX adaptive tempered)",
                "K": None,
                "err_mean": float(np.mean(errs)),
                "err_sd": float(np.std(errs, ddof=1)),
                "ess": None,
                "grads_per_particle": float(np.mean(grads)),
                "seconds_per_sweep": float(np.mean(secs)),
                "compile_s": None,
                "train_grads": 0.0,
                "train_s": 0.0,
            }
        )
        print(rows[-1], flush=True)

    write_report(rows, args.particles, args.sweeps, args.train)


if __name__ == "__main__":
    main()
