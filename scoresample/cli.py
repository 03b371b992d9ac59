"""Command line: ``scoresample demo`` (the main job), ``scoresample bench``, ``scoresample api``."""

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
    print(f"True mode weights of mixture4_2d: {bench.plain(targets['mixture4_2d'].weights)}")
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


API_OBJECTS = [name for name, _ in DEMO_KERNELS] + [
    "ScoreSampleKernel",
    "run_checkpointed",
    "check",
]


def api_markdown() -> str:
    """Every public kernel's signature and docstring, as markdown (docs/API.md)."""
    import inspect

    import scoresample

    parts = ["# scoresample API\n", "Generated by `scoresample api` from the docstrings.\n"]
    parts.append("```text\n" + inspect.cleandoc(scoresample.__doc__ or "") + "\n```\n")
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
        path = Path(args.out).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
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
# bench_runner gives the per-chain kernels 8 chains and the population ones num_draws // 4
# particles (4 draws each): fewer draws than this would leave a run with no draws at all.
MIN_DRAWS = 8


def bench_samplers() -> list[str]:
    """The sampler names ``bench`` runs: the baselines, then our kernels in this build."""
    import scoresample

    return list(BASELINES) + [n for n, _ in DEMO_KERNELS if hasattr(scoresample, n)]


def bench_runner(name: str, num_draws: int):
    """runner(target, seed) -> RunResult for a sampler name (ours, NUTS or a BlackJAX baseline),
    sized to give about ``num_draws`` draws."""
    import scoresample
    from scoresample import baselines, bench

    if name not in bench_samplers():
        raise ValueError(f"unknown sampler {name!r}; choose from {bench_samplers()}")
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
    if kinds[name] == "population":
        sizes = dict(num_chains=num_draws // 4, num_warmup=30, num_samples=4)
    else:
        sizes = dict(num_chains=8, num_warmup=300, num_samples=num_draws // 8)
    kernel_cls = getattr(scoresample, name)
    return lambda t, seed: bench.run_numpyro(name, kernel_cls(t.model), t, seed=seed, **sizes)


def _bench_figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "mode_weight_error" if any("mode_weight_error" in r for r in rows) else "ksd"
    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2, 3))
    labels = [f"{r['sampler']}\n{r['target']}" for r in rows]
    ax.bar(range(len(rows)), [r.get(metric, float("nan")) for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=45, ha="right")
    ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_bench(rows: list[dict], args) -> str:
    """Write bench.json, bench.md and bench.png for the runs finished so far; the table."""
    from scoresample import bench

    out = Path(args.out)
    bench.write_json(rows, out / "bench.json")
    table = bench.markdown_table(rows)
    total = len(args.targets) * len(args.samplers)
    partial = f"Partial: {len(rows)} of {total} runs finished.\n\n" if len(rows) < total else ""
    (out / "bench.md").write_text(
        f"Command: `scoresample bench --targets {' '.join(args.targets)} --samplers "
        f"{' '.join(args.samplers)} --draws {args.draws} --seed {args.seed}`\n\n"
        f"{partial}{table}\n"
    )
    _bench_figure(rows, out / "bench.png")
    return table


def _bench(args) -> int:
    from scoresample import bench

    makers = bench_targets()
    rows = []
    for tname in args.targets:
        target = makers[tname]()
        for sname in args.samplers:
            print(f"[bench] {sname} on {tname}", flush=True)
            res = bench_runner(sname, args.draws)(target, args.seed)
            rows.append(bench.evaluate(res, target))
            table = _write_bench(rows, args)  # after every run: a late crash keeps the rest
    print(table)
    out = Path(args.out)
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
    return 0


def _int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    import scoresample

    parser = argparse.ArgumentParser(prog="scoresample", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {scoresample.__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help):
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p_demo = add("demo", _demo, "compare NUTS and scoresample kernels on built-in targets")
    p_demo.add_argument("--quick", action="store_true", help="small sizes (CI)")
    p_demo.add_argument("--out", default="demo_out", help="folder for the figure and JSON")
    p_api = add("api", _api, "write the API reference (docstrings) as markdown")
    p_api.add_argument(
        "--out",
        default="docs/API.md",
        help="file to write, relative to the current directory (its folder is created); "
        "'-' prints it",
    )
    p_bench = add("bench", _bench, "run samplers and baselines on benchmark targets")
    targets, samplers = list(bench_targets()), bench_samplers()
    p_bench.add_argument(
        "--targets",
        nargs="+",
        choices=targets,
        default=["mixture4_2d"],
        metavar="TARGET",
        help=f"one or more of: {', '.join(targets)}",
    )
    p_bench.add_argument(
        "--samplers",
        nargs="+",
        choices=samplers,
        default=["NUTS", "SMC-HMC", "RDMC", "CMCD"],
        metavar="SAMPLER",
        help=f"one or more of: {', '.join(samplers)}",
    )
    p_bench.add_argument(
        "--draws",
        type=_int_at_least(MIN_DRAWS),
        default=1024,
        help=f"draws per run (about; at least {MIN_DRAWS})",
    )
    p_bench.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed")
    p_bench.add_argument(
        "--out", default="bench_out", help="folder for bench.json, bench.md, bench.png"
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
