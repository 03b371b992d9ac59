"""Issue 8 benchmark: throughput against the number of vectorized chains, and against devices.

For each number of chains (1 … 4096) RandomizedMidpoint and NumPyro NUTS run the same target in
the same process (vectorized chains, warmup then a timed sampling phase); we report draws per
second, min bulk ESS per second, gradients per draw and the bytes of sampler state per chain
(the carried state of one chain: position, momentum, potential, gradient, adaptation; it is what
grows with the number of chains). The device table runs RandomizedMidpoint with the chains
sharded over the host's devices (``shard_chains=True``) against one device; on a CPU the
"devices" are ``--xla_force_host_platform_device_count`` slices of the same cores, so that table
shows the overhead of sharding, not a speed-up — on a multi-GPU host it is the scaling table.

    python -m benchmarks.throughput [--chains 1 4 16 64 256 1024 4096] [--dim 10] [--draws 200]
"""

from __future__ import annotations

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

import argparse  # noqa: E402
import datetime  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import NUTS  # noqa: E402

import scoresample  # noqa: E402
from scoresample import bench  # noqa: E402
from scoresample.targets import anisotropic_gaussian  # noqa: E402


def state_bytes_per_chain(state, num_chains: int) -> float:
    leaves = [x for x in jax.tree.leaves(state) if hasattr(x, "nbytes")]
    return float(sum(int(x.nbytes) for x in leaves)) / num_chains


def timed_run(name, kernel, target, num_chains, num_warmup, num_samples, seed=0):
    fields = ("num_steps",) if name == "NUTS" else ("num_grad_evals",)
    mcmc = bench.make_mcmc(kernel, num_chains, num_warmup, num_samples)
    key_w, key_s = jax.random.split(jax.random.key(seed))
    mcmc.warmup(key_w, *target.model_args)
    jax.block_until_ready(mcmc.post_warmup_state)
    # A first short run compiles the sampling loop; the timed run reuses the compiled program.
    mcmc.run(key_s, *target.model_args, extra_fields=fields)
    jax.block_until_ready(mcmc.get_samples())
    mcmc.post_warmup_state = mcmc.last_state
    t0 = time.perf_counter()
    mcmc.run(jax.random.fold_in(key_s, 1), *target.model_args, extra_fields=fields)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    seconds = time.perf_counter() - t0
    grads = float(np.sum(mcmc.get_extra_fields()[fields[0]]))
    draws = target.flat_draws(samples)
    ess = bench.ess_summary(draws)["ess_min"] if num_chains * num_samples >= 8 else float("nan")
    n = num_chains * num_samples
    return {
        "sampler": name,
        "chains": num_chains,
        "draws": n,
        "seconds": seconds,
        "draws_per_s": n / seconds,
        "ess_min": ess,
        "ess_per_s": ess / seconds,
        "grads_per_draw": grads / n,
        "state_bytes_per_chain": state_bytes_per_chain(mcmc.last_state, num_chains),
    }


def chains_table(args, target):
    rows = []
    for c in args.chains:
        for name in args.samplers:
            kernel = (
                NUTS(target.model)
                if name == "NUTS"
                else scoresample.RandomizedMidpoint(target.model, shard_chains=False)
            )
            row = timed_run(name, kernel, target, c, args.warmup, args.draws)
            print(row, flush=True)
            rows.append(row)
    return rows


def devices_table(args, target):
    rows = []
    n_dev = len(jax.devices())
    for c in [x for x in args.chains if x >= n_dev and x % n_dev == 0]:
        for shard in (False, True):
            kernel = scoresample.RandomizedMidpoint(target.model, shard_chains=shard)
            row = timed_run("RandomizedMidpoint", kernel, target, c, args.warmup, args.draws)
            row["devices"] = n_dev if shard else 1
            print(row, flush=True)
            rows.append(row)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    p.add_argument("--samplers", nargs="+", default=["RandomizedMidpoint", "NUTS"])
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--skip-devices", action="store_true")
    args = p.parse_args(argv)
    target = anisotropic_gaussian(args.dim)
    rows = chains_table(args, target)
    dev_rows = [] if args.skip_devices else devices_table(args, target)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench.write_json({"chains": rows, "devices": dev_rows}, out / "throughput.json")
    cols = [
        ("sampler", "{}"),
        ("chains", "{}"),
        ("draws_per_s", "{:.0f}"),
        ("ess_per_s", "{:.0f}"),
        ("ess_min", "{:.0f}"),
        ("grads_per_draw", "{:.1f}"),
        ("seconds", "{:.2f}"),
        ("state_bytes_per_chain", "{:.0f}"),
    ]
    dev = jax.devices()
    lines = [
        "# Throughput against the number of chains and devices",
        "",
        f"Run {datetime.date.today()} on {dev[0].platform} ({len(dev)} device(s); "
        f"{os.cpu_count()} CPU cores), jax {jax.__version__}.",
        f"Command: `python -m benchmarks.throughput {' '.join(sys.argv[1:])}`".rstrip() + "",
        f"Target: anisotropic Gaussian d = {args.dim}; {args.warmup} warmup iterations, then "
        f"{args.draws} timed draws per chain (compiled beforehand). NUTS: NumPyro, vectorized.",
        "",
        bench.markdown_table(rows, cols),
    ]
    if dev_rows:
        lines += [
            "",
            "RandomizedMidpoint, chains sharded over the devices (shard_chains=True)"
            " vs one device:",
            "",
            bench.markdown_table(dev_rows, [("devices", "{}")] + cols[1:]),
        ]
    (out / "throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
