"""Issue 4 benchmark: CMCD log Z error vs K on Funnel-10 and ManyWell-32, zero vs learned control,
next to BlackJAX adaptive tempered SMC (HMC moves) and the published CMCD figure.

    nice -n 10 .venv/bin/python -m benchmarks.cmcd [--particles 512] [--sweeps 4] [--train 60]
        [--targets funnel10 manywell32 funnel10-rule] [--ks 32 64 128 256] [--max-train-k 256]

Rows of the settings not run are kept from results/cmcd.json (each row names its run); the
prose under the table comes from results/cmcd_notes.md.

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
from scoresample.samplers.cmcd import interpolated_step_sizes, sweep
from scoresample.targets import funnel, manywell

RESULTS = Path(__file__).parent / "results"
SETTINGS = {  # reference scale s, step size ε in reference units (measured, see results md)
    "funnel10": (funnel(10), 1.0, 0.02),
    "manywell32": (manywell(16), 1.5, 0.01),
    # the funnel with the per-step ε rule of tests/test_cmcd.py::test_funnel_log_z: ε_k from
    # 0.09 to 1.35e-3 in x units (interpolated in β_k), β_k = 1 - (1 - k/K)², reference N(0, 4² I)
    "funnel10-rule": (funnel(10), 4.0, (0.09 / 16, 1.35e-3 / 16)),
}
# per setting: (schedule name, num_blocks, ess_threshold); MALA moves after resampling: 2
PATH = {
    "funnel10": ("linear", 8, 0.3),
    "manywell32": ("linear", 8, 0.3),
    "funnel10-rule": ("reverse-power", 128, 0.5),
}


def reverse_power_schedule(num_steps, power=2.0):
    """β_k = 1 - (1 - k / K)^power: dense near β = 1."""
    b = 1.0 - (1.0 - np.linspace(0.0, 1.0, num_steps + 1)) ** power
    b[-1] = 1.0
    return b


def path_settings(name, K):
    """(betas, step sizes (scalar or (K,)), num_blocks, ess_threshold) of a setting at K."""
    _, _, eps = SETTINGS[name]
    schedule, blocks, ess = PATH[name]
    betas = reverse_power_schedule(K) if schedule == "reverse-power" else linear_schedule(K)
    if isinstance(eps, tuple):
        eps = interpolated_step_sizes(betas, *eps)
    return betas, eps, min(blocks, K), ess


def scaled(target, s):
    d = target.dim
    return lambda y: target.logdensity_fn(s * y) + d * jnp.log(s)


def run_cmcd(name, K, n, sweeps, params=None, control=None, seed=0):
    target, s, _ = SETTINGS[name]
    ld = scaled(target, s)
    betas, eps, blocks, ess = path_settings(name, K)

    @jax.jit
    def many(keys):
        f = lambda k: sweep(
            k,
            ld,
            n,
            target.dim,
            betas,
            eps,
            num_blocks=blocks,
            ess_threshold=ess,
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


def train(name, K, n_train, iters, seed=0):
    target, s, _ = SETTINGS[name]
    control = mlp_control(hidden=(32, 32), learning_rate=3e-3, num_updates=2)
    ld = scaled(target, s)
    betas, eps, blocks, ess = path_settings(name, K)
    t0 = time.perf_counter()
    params, losses, grads = jax.jit(
        lambda k: train_control(
            k,
            ld,
            target.dim,
            n_train,
            betas,
            eps,
            control,
            iters,
            num_blocks=blocks,
            ess_threshold=ess,
        )
    )(jax.random.key(100 + seed))
    jax.block_until_ready(params)
    return control, params, float(grads) * n_train, time.perf_counter() - t0, np.asarray(losses)


OLD_RUN = (  # the run whose rows predate the "run" field of cmcd.json
    "`--particles 512 --sweeps 4 --train 60` (2026-12-01 10:08 UTC, load ≈ 20)"
)


def write_report(rows, note=""):
    """Write benchmarks/results/cmcd.{json,md} from the result rows (each names its run)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cmcd.json").write_text(json.dumps(rows, indent=1))
    runs = list(dict.fromkeys(r.get("run", OLD_RUN) for r in rows))
    lines = [
        "# CMCD: log Z error vs K (issue 4)",
        "",
        "Runs (`nice -n 10 .venv/bin/python -m benchmarks.cmcd ...`, 2 shared CPU cores):",
        "",
        *[f"[{i + 1}] {run}" + ("  " if i + 1 < len(runs) else "") for i, run in enumerate(runs)],
        "",
        "log Z error = mean ± sd over the run's independent sweeps (`--sweeps`) of "
        "`--particles` particles. Grads = gradient evaluations per particle per sweep "
        "(K + 1 + MALA moves). Learned-control training cost is separate (train grads: total "
        "over all training particles). Published CMCD (Vargas et al. 2024): Funnel-10 "
        "-0.019 ± 0.064 at K = 256.",
        "",
        "| target | sampler | K | log Z error | ESS | grads/particle | s/sweep | train grads"
        " | train s | run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ess = "" if r["ess"] is None else f"{r['ess']:.0f}"
        lines.append(
            f"| {r['target']} | {r['sampler']} | {r['K'] or ''} | "
            f"{r['err_mean']:+.3f} ± {r['err_sd']:.3f} | {ess} | {r['grads_per_particle']:.0f} | "
            f"{r['seconds_per_sweep']:.2f} | {r['train_grads']:.3g} | {r['train_s']:.1f} | "
            f"[{runs.index(r.get('run', OLD_RUN)) + 1}] |"
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
    p.add_argument("--max-train-k", type=int, default=256, help="no learned control above this K")
    args = p.parse_args(argv)
    rows = []
    for name in args.targets:
        target, s, _ = SETTINGS[name]
        for K in args.ks:
            r = run_cmcd(name, K, args.particles, args.sweeps)
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
            if K > args.max_train_k:
                continue
            control, params, tg, ts, losses = train(name, K, args.train_particles, args.train)
            r = run_cmcd(name, K, args.particles, args.sweeps, params, control)
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
        if name.endswith("-rule"):
            continue  # the same target as its plain setting: SMC is run there
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

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run = (
        f"`--particles {args.particles} --sweeps {args.sweeps} --train {args.train} "
        f"--train-particles {args.train_particles} --max-train-k {args.max_train_k} "
        f"--targets {' '.join(args.targets)} --ks {' '.join(map(str, args.ks))}` ({date})"
    )
    for r in rows:
        r["run"] = run
    # keep the recorded rows of the settings not run now
    path = RESULTS / "cmcd.json"
    old = json.loads(path.read_text()) if path.exists() else []
    kept = [r for r in old if r["target"] not in args.targets]
    order = {name: i for i, name in enumerate(SETTINGS)}
    rows = sorted(kept + rows, key=lambda r: order.get(r["target"], len(order)))
    note_path = RESULTS / "cmcd_notes.md"
    write_report(rows, note_path.read_text().strip() if note_path.exists() else "")


if __name__ == "__main__":
    main()
