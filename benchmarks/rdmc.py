"""RDMC vs NUTS vs BlackJAX adaptive tempered SMC (HMC moves) vs Schrödinger–Föllmer.

Run from the repo root:  nice -n 10 python -m benchmarks.rdmc
Writes benchmarks/results/rdmc.md and rdmc.json. Targets: the 2-D unequal four-mode mixture,
two-mode mixtures (weights 1/3, 2/3) in d = 8 and 32, eight schools (non-centred) against
posteriordb; then RDMC alone on the two-mode mixture for d = 2, 8, 32, 64 (cost and error vs
dimension). Sizes are small so the whole run fits in ~10 minutes on 2 shared CPU cores; every
RDMC draw is an independent trajectory, so 800 draws give mode weights to ±0.017 (1 sd).
"""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path

import jax

from scoresample import RDMC, bench
from scoresample.baselines import run_schrodinger_follmer, run_tempered_smc
from scoresample.targets import eight_schools, two_mode_mixture, unequal_mixture_2d

OUT = Path(__file__).parent / "results"


def rdmc_run(target, num_chains=8, num_warmup=60, num_samples=100, **kw):
    return bench.run_numpyro(
        "RDMC",
        RDMC(target.model, **kw),
        target,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
    )


def main(quick: bool = False):
    n = 40 if quick else 100
    targets = {
        "mixture4_2d": unequal_mixture_2d(),
        "mixture2_8d": two_mode_mixture(8),
        "mixture2_32d": two_mode_mixture(32),
        "eight_schools": eight_schools(),
    }
    rows = []
    for name, t in targets.items():
        runs = [
            lambda t=t: rdmc_run(t, num_samples=n),
            lambda t=t: bench.run_nuts(t, num_chains=4, num_warmup=300, num_samples=300),
            lambda t=t: run_tempered_smc(t, num_particles=1000, kernel="hmc", seed=0),
            lambda t=t: run_schrodinger_follmer(t, num_particles=1000, num_steps=50, num_mc=100),
        ]
        for run in runs:
            t0 = time.perf_counter()
            try:
                res = run()
                row = bench.evaluate(res, t)
            except Exception as err:  # a baseline failing is a result, not a crash
                row = {"sampler": "?", "target": name, "error": repr(err)[:200]}
            row["wall_s"] = time.perf_counter() - t0
            rows.append(row)
            print(row, flush=True)
    scan = []
    for d in (2, 8, 32, 64):
        t = two_mode_mixture(d)
        t0 = time.perf_counter()
        row = bench.evaluate(rdmc_run(t, num_samples=n // 2 + 10), t)
        row["dim"], row["wall_s"] = d, time.perf_counter() - t0
        scan.append(row)
        print(row, flush=True)
    cmd = "nice -n 10 python -m benchmarks.rdmc" + (" --quick" if quick else "")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cols = bench.COLUMNS + [("wall_s", "{:.1f}")]
    md = [
        "# RDMC benchmark",
        "",
        f"Command: `{cmd}` ({date}, {jax.default_backend()}, 2 shared CPU cores).",
        "",
        "RDMC: 8 chains × (60 warmup + "
        f"{n}) draws, default settings (T = 3, K = 32, M = 512, n = 4, J = 8). NUTS: 4 chains × "
        "(300 + 300). Tempered SMC: 1000 particles, HMC moves. Schrödinger–Föllmer: 1000 "
        "particles, 50 steps, 100 MC draws. Budgets are per draw (columns grads_per_draw, "
        "density_per_draw): RDMC spends ~1.2k gradients + ~17k densities per independent draw.",
        "",
        bench.markdown_table(rows, cols),
        "",
        "## RDMC vs dimension (two-mode mixture, weights 1/3, 2/3, separation 8)",
        "",
        bench.markdown_table(scan, [("dim", "{}")] + cols),
        "",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rdmc.md").write_text("\n".join(md))
    bench.write_json(rows + scan, OUT / "rdmc.json")


def scan_only(num_chains=4, num_warmup=30, num_samples=30):
    """The dimension scan alone, small, row by row: ``python -m benchmarks.rdmc --scan``."""
    for d in (2, 8, 32, 64):
        t = two_mode_mixture(d)
        t0 = time.perf_counter()
        res = rdmc_run(t, num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples)
        row = bench.evaluate(res, t)
        row["dim"], row["wall_s"] = d, time.perf_counter() - t0
        print(row, flush=True)


if __name__ == "__main__":
    if "--scan" in sys.argv:
        scan_only()
    else:
        main(quick="--quick" in sys.argv)
