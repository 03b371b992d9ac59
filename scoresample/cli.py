"""Command line: ``scoresample demo`` (the main job) and ``scoresample bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import scoresample
    from scoresample import bench
    from scoresample.targets import eight_schools, ill_conditioned_gaussian

    quick = args.quick
    sizes = dict(num_chains=4, num_warmup=150 if quick else 500, num_samples=200 if quick else 1000)
    targets = {
        "eight_schools": eight_schools(),
        "ill_gaussian": ill_conditioned_gaussian(20 if quick else 100, 1e4),
    }
    runners = {
        "NUTS": lambda t, **kw: bench.run_nuts(t, progress_bar=not quick, **kw),
        "RandomizedMidpoint": lambda t, **kw: bench.run_numpyro(
            "RandomizedMidpoint",
            scoresample.RandomizedMidpoint(t.model),
            t,
            progress_bar=not quick,
            **kw,
        ),
    }
    rows, results = [], []
    for tname, target in targets.items():
        for rname, runner in runners.items():
            print(f"[demo] {rname} on {tname} ...", flush=True)
            res = runner(target, **sizes)
            results.append(res)
            rows.append(bench.evaluate(res, target))
    print()
    print(bench.markdown_table(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.5))
    for ax, res in zip(np.atleast_1d(axes), results):
        x = res.draws.reshape(-1, res.draws.shape[-1])
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.3)
        ax.set_title(f"{res.sampler}\n{res.target}", fontsize=9)
    fig.tight_layout()
    fig_path = out / "demo.png"
    fig.savefig(fig_path, dpi=90)
    bench.write_json(rows, out / "demo.json")
    print(f"\nfigure: {fig_path}\ntable: {out / 'demo.json'}")
    return 0


def _bench(args) -> int:
    from benchmarks.run import main as bench_main  # the repository's benchmark suites

    return bench_main(args.rest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scoresample")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="compare NUTS and scoresample kernels on built-in targets")
    p_demo.add_argument("--quick", action="store_true", help="small sizes (CI)")
    p_demo.add_argument("--out", default="demo_out", help="folder for the figure and JSON")
    p_demo.set_defaults(func=_demo)
    p_bench = sub.add_parser("bench", help="run the benchmark suites (see benchmarks/)")
    p_bench.add_argument("rest", nargs=argparse.REMAINDER)
    p_bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
