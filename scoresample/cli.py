"""Command line: ``scoresample demo`` (the main job) and ``scoresample bench``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# (kernel name, kind) in the order the demo shows them; kernels not in this build are skipped
# with a note. "chain": a Markov chain per chain (correlated draws); "trajectory": one
# independent trajectory per draw, so fewer iterations give as many effective draws;
# "population": the chains are the particles, so many chains and few iterations.
DEMO_KERNELS = [
    ("RandomizedMidpoint", "chain"),
    ("RDMC", "trajectory"),
    ("MultALMC", "trajectory"),
    ("MultCDiff", "trajectory"),
    ("EnsembleDiffusion", "population"),
    ("CMCD", "population"),
]


def demo_sizes(kind: str, quick: bool) -> dict:
    if kind == "population":
        return dict(num_chains=512 if quick else 1024, num_warmup=30, num_samples=4)
    # --quick: 4 chains x 50 draws; enough for the one-trajectory-per-draw kernels (independent
    # draws: a mode weight's MC sd is <= 0.035 at 200 draws) to tell a right answer from a
    # stuck one. Their warmup grows the preconditioner from one mode's Laplace fit to all modes:
    # 50 iterations left MultALMC's chains apart (R-hat 1.13, weight error 0.125), 100 did not
    # (1.06, 0.03). Full: 600 independent draws (MC sd <= 0.02), 4000 correlated ones for chains.
    if kind == "trajectory":
        return dict(num_chains=4, num_warmup=100, num_samples=50 if quick else 150)
    return dict(num_chains=4, num_warmup=50 if quick else 400, num_samples=50 if quick else 1000)


def _plot_mixture(ax, target, draws, title):
    import numpy as np

    grid = np.linspace(-9, 9, 120)
    gx, gy = np.meshgrid(grid, grid)
    pts = np.stack([gx.ravel(), gy.ravel()], -1)
    import jax

    dens = np.exp(np.asarray(jax.vmap(target.logdensity_fn)(pts))).reshape(gx.shape)
    ax.contour(gx, gy, dens, levels=6, colors="0.6", linewidths=0.6)
    x = draws.reshape(-1, 2)
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.25, color="C0")
    ax.set_xlim(-9, 9)
    ax.set_ylim(-9, 9)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _check_summary(report) -> dict:
    """Print a run's check problems under its progress line; the row's "check" column and the
    problems for the JSON."""
    for problem in report.problems:
        print(f"[demo]   suspect: {problem}", flush=True)
    n = len(report.problems)
    summary = "ok" if n == 0 else f"{n} problem{'s' * (n > 1)}"
    return {"check": summary, "problems": list(report.problems)}


def _demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from numpyro.infer import NUTS

    import scoresample
    from scoresample import bench
    from scoresample.targets import eight_schools, unequal_mixture_2d

    quick = args.quick
    # --quick (CI) keeps the multimodal posterior, the one that tells the samplers apart.
    targets = {"mixture4_2d": unequal_mixture_2d()}
    if not quick:
        targets["eight_schools"] = eight_schools()
    kernels = [(n, kind) for n, kind in DEMO_KERNELS if hasattr(scoresample, n)]
    for n, _ in DEMO_KERNELS:
        if not hasattr(scoresample, n):
            print(f"[demo] {n} is not in this build; skipped")
    rows, mixture_runs = [], []
    for tname, target in targets.items():
        entries = [("NUTS", "chain")] + kernels
        for name, kind in entries:
            sizes = demo_sizes(kind, quick)
            print(
                f"[demo] {name} on {tname} "
                f"({sizes['num_chains']} chains x {sizes['num_samples']} draws)",
                flush=True,
            )
            kernel = (
                NUTS(target.model) if name == "NUTS" else getattr(scoresample, name)(target.model)
            )
            res = bench.run_numpyro(
                name, kernel, target, progress_bar=not quick, check=True, **sizes
            )
            row = bench.evaluate(res, target)
            row.update(_check_summary(res.extra["check"]))
            rows.append(row)
            if tname == "mixture4_2d":
                mixture_runs.append((res, row))
    cols = [
        ("sampler", "{}"),
        ("target", "{}"),
        ("mode_weights", "{}"),
        ("mode_weight_error", "{:.3f}"),
        ("max_mean_z", "{:.3f}"),
        ("max_sd_rel_err", "{:.3f}"),
        ("rhat_max", "{:.3f}"),
        ("ess_min", "{:.0f}"),
        ("ksd", "{:.3f}"),
        ("check", "{}"),
        ("grads_per_draw", "{:.1f}"),
        ("density_per_draw", "{:.1f}"),
        ("warmup_s", "{:.1f}"),
        ("sample_s", "{:.1f}"),
    ]
    print()
    print(f"True mode weights of mixture4_2d: {list(targets['mixture4_2d'].weights)}")
    print(bench.markdown_table(rows, cols))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(mixture_runs)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8))
    for ax, (res, row) in zip(np.atleast_1d(axes), mixture_runs):
        w = ", ".join(f"{v:.2f}" for v in row["mode_weights"])
        _plot_mixture(ax, targets["mixture4_2d"], res.draws, f"{res.sampler}\nweights {w}")
    fig.suptitle("4-mode mixture, true weights 0.10, 0.20, 0.30, 0.40", fontsize=9)
    fig.tight_layout()
    fig_path = out / "demo.png"
    fig.savefig(fig_path, dpi=110)
    plt.close(fig)
    bench.write_json(rows, out / "demo.json")
    print(f"\nfigure: {fig_path}\ntable: {out / 'demo.json'}")
    return 0


API_OBJECTS = [
    "RandomizedMidpoint",
    "RDMC",
    "MultALMC",
    "MultCDiff",
    "EnsembleDiffusion",
    "CMCD",
    "ScoreSampleKernel",
    "run_checkpointed",
    "check",
]


def api_markdown() -> str:
    """Every public kernel's signature and docstring, as markdown (docs/API.md)."""
    import inspect

    import scoresample

    parts = ["# scoresample API\n", "Generated by `scoresample api` from the docstrings.\n"]
    for name in API_OBJECTS:
        obj = getattr(scoresample, name, None)
        if obj is None:
            continue
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            sig = str(inspect.signature(target)).replace("(self, ", "(")
            sig = re.sub(r" at 0x[0-9a-f]+>", ">", sig)  # default functions: no memory address
        except (TypeError, ValueError):
            sig = "(...)"
        parts.append(f"## `scoresample.{name}{sig}`\n")
        parts.append("```text\n" + inspect.cleandoc(obj.__doc__ or "") + "\n```\n")
    return "\n".join(parts)


def _api(args) -> int:
    text = api_markdown()
    if args.out == "-":
        print(text)
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return 0


def bench_targets() -> dict:
    from scoresample import targets as T

    makers = {
        "mixture4_2d": T.unequal_mixture_2d,
        "mixture2_8d": lambda: T.two_mode_mixture(8),
        "gaussian10": lambda: T.isotropic_gaussian(10),
        "ill_gaussian100": lambda: T.ill_conditioned_gaussian(100, 1e4),
        "eight_schools": T.eight_schools,
        "german_credit": T.german_credit,
    }
    if hasattr(T, "funnel"):
        makers["funnel10"] = T.funnel
    return makers


BASELINES = ("NUTS", "MCLMC", "SMC-HMC", "SMC-RW", "SchrodingerFollmer")


def bench_runner(name: str, num_draws: int):
    """runner(target, seed) -> RunResult for a sampler name (ours, NUTS or a BlackJAX baseline),
    sized to give about ``num_draws`` draws."""
    import scoresample
    from scoresample import baselines, bench

    kinds = dict(DEMO_KERNELS)
    if name == "NUTS":
        return lambda t, seed: bench.run_nuts(
            t, num_chains=4, num_warmup=500, num_samples=num_draws // 4, seed=seed
        )
    if name == "MCLMC":
        return lambda t, seed: baselines.run_mclmc(
            t, num_chains=4, num_steps=num_draws // 4, seed=seed
        )
    if name in ("SMC-HMC", "SMC-RW"):
        kind = "hmc" if name == "SMC-HMC" else "rw"
        return lambda t, seed: baselines.run_tempered_smc(
            t, num_particles=num_draws, seed=seed, kernel=kind
        )
    if name == "SchrodingerFollmer":
        return lambda t, seed: baselines.run_schrodinger_follmer(
            t, num_particles=num_draws, seed=seed
        )
    if name not in kinds or not hasattr(scoresample, name):
        raise SystemExit(f"unknown sampler {name!r}; choose from {list(BASELINES) + list(kinds)}")
    if kinds[name] == "population":
        sizes = dict(num_chains=num_draws // 4, num_warmup=30, num_samples=4)
    else:
        sizes = dict(num_chains=8, num_warmup=300, num_samples=num_draws // 8)
    kernel_cls = getattr(scoresample, name)
    return lambda t, seed: bench.run_numpyro(name, kernel_cls(t.model), t, seed=seed, **sizes)


def _bench(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scoresample import bench

    makers = bench_targets()
    unknown = [t for t in args.targets if t not in makers]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {sorted(makers)}")
    rows = []
    for tname in args.targets:
        target = makers[tname]()
        for sname in args.samplers:
            print(f"[bench] {sname} on {tname}", flush=True)
            res = bench_runner(sname, args.draws)(target, args.seed)
            rows.append(bench.evaluate(res, target))
    out = Path(args.out)
    bench.write_json(rows, out / "bench.json")
    table = bench.markdown_table(rows)
    (out / "bench.md").write_text(
        f"Command: `scoresample bench --targets {' '.join(args.targets)} --samplers "
        f"{' '.join(args.samplers)} --draws {args.draws} --seed {args.seed}`\n\n{table}\n"
    )
    print(table)
    metric = "mode_weight_error" if any("mode_weight_error" in r for r in rows) else "ksd"
    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2, 3))
    labels = [f"{r['sampler']}\n{r['target']}" for r in rows]
    ax.bar(range(len(rows)), [r.get(metric, float("nan")) for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=45, ha="right")
    ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=100)
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scoresample")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="compare NUTS and scoresample kernels on built-in targets")
    p_demo.add_argument("--quick", action="store_true", help="small sizes (CI)")
    p_demo.add_argument("--out", default="demo_out", help="folder for the figure and JSON")
    p_demo.set_defaults(func=_demo)
    p_api = sub.add_parser("api", help="write the API reference (docstrings) as markdown")
    p_api.add_argument("--out", default="docs/API.md")
    p_api.set_defaults(func=_api)
    p_bench = sub.add_parser("bench", help="run samplers and baselines on benchmark targets")
    p_bench.add_argument("--targets", nargs="+", default=["mixture4_2d"])
    p_bench.add_argument("--samplers", nargs="+", default=["NUTS", "SMC-HMC", "RDMC", "CMCD"])
    p_bench.add_argument("--draws", type=int, default=1024, help="draws per run (about)")
    p_bench.add_argument("--seed", type=int, default=0)
    p_bench.add_argument("--out", default="bench_out")
    p_bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
