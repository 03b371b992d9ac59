"""The benchmark harness: run samplers on targets in one process, measure, and report.

A *runner* turns (target, budget, seed) into a :class:`RunResult` holding the draws (flat
unconstrained vectors, (chains, draws, d)), the cost in gradient and density evaluations
(warmup and sampling counted separately) and wall time (compilation included in the warmup time).
``evaluate`` turns a result into metrics against the target's exact answer; ``markdown_table``
and ``write_json`` report them. ``scoresample bench`` and ``benchmarks/run.py`` use this module.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Callable

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from scoresample import checks
from scoresample import diagnostics as D
from scoresample.targets.base import Target


@dataclasses.dataclass
class RunResult:
    sampler: str
    target: str
    draws: np.ndarray  # (chains, draws, d), flat unconstrained
    warmup_grads: float  # total over all chains
    sample_grads: float
    sample_density_evals: float
    warmup_seconds: float
    sample_seconds: float
    samples: dict | None = None  # constrained NumPyro samples, grouped by chain
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def num_draws(self) -> int:
        return int(self.draws.shape[0] * self.draws.shape[1])


def make_mcmc(
    kernel,
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    chain_method: str = "vectorized",
    progress_bar: bool = False,
    **kwargs,
) -> MCMC:
    """``numpyro.infer.MCMC`` with the sizes in the order the benchmarks and tests give them,
    vectorized chains and no progress bar unless asked."""
    return MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=progress_bar,
        **kwargs,
    )


def run_numpyro(
    name: str,
    kernel,
    target: Target,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    seed: int = 0,
    chain_method: str = "vectorized",
    progress_bar: bool = False,
    check: bool = False,
) -> RunResult:
    """Run a NumPyro kernel (ours or NUTS) with warmup and sampling timed and costed apart.

    Gradient counts: our kernels report ``num_grad_evals``/``num_density_evals``; NUTS reports
    ``num_steps`` (leapfrog steps = gradients), its initialisation not counted. ``check``: also
    run ``scoresample.checks.check`` on the sampling run (no warning), kept in ``extra["check"]``.
    """
    is_nuts = isinstance(kernel, NUTS)
    fields = ("num_steps",) if is_nuts else ("num_grad_evals", "num_density_evals")
    mcmc = make_mcmc(kernel, num_chains, num_warmup, num_samples, chain_method, progress_bar)
    key_w, key_s = jax.random.split(jax.random.key(seed))
    t0 = time.perf_counter()
    mcmc.warmup(key_w, *target.model_args, collect_warmup=True, extra_fields=fields)
    warm_fields = mcmc.get_extra_fields()
    jax.block_until_ready(mcmc.post_warmup_state)
    t1 = time.perf_counter()
    mcmc.run(key_s, *target.model_args, extra_fields=fields)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t2 = time.perf_counter()
    fields_s = mcmc.get_extra_fields()
    if is_nuts:
        wg, sg, sd = (
            float(np.sum(warm_fields["num_steps"])),
            float(np.sum(fields_s["num_steps"])),
            0.0,
        )
    else:
        wg = float(np.sum(warm_fields["num_grad_evals"]))
        sg = float(np.sum(fields_s["num_grad_evals"]))
        sd = float(np.sum(fields_s["num_density_evals"]))
    draws = target.flat_draws(samples)
    extra = {"check": checks.check(mcmc, warn=False)} if check else {}
    return RunResult(
        name,
        target.name,
        draws,
        wg,
        sg,
        sd,
        t1 - t0,
        t2 - t1,
        samples=jax.tree.map(np.asarray, samples),
        extra=extra,
    )


def run_nuts(target: Target, **kw) -> RunResult:
    return run_numpyro("NUTS", NUTS(target.model), target, **kw)


def ess_summary(draws: np.ndarray) -> dict:
    """min/median bulk ESS and max R-hat over coordinates (ArviZ), draws (chains, n, d).

    ArviZ's warnings are silenced: it warns "more chains than draws" on population kernels' runs,
    where the chains are the particles and many chains with few draws is the design.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="arviz")
        ds = az.convert_to_dataset({"x": draws})
        ess = np.asarray(az.ess(ds, method="bulk")["x"])
        rhat = (
            np.asarray(az.rhat(ds)["x"]) if draws.shape[0] > 1 else np.full(draws.shape[-1], np.nan)
        )
    return {
        "ess_min": float(ess.min()),
        "ess_median": float(np.median(ess)),
        "rhat_max": float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("nan"),
    }


def evaluate(result: RunResult, target: Target, ksd_draws: int = 1000) -> dict:
    """Metrics of a run against what the target knows exactly."""
    x = result.draws
    flat = x.reshape(-1, x.shape[-1])
    out = {"sampler": result.sampler, "target": result.target, "draws": result.num_draws}
    out.update(ess_summary(x))
    total = result.sample_grads + result.sample_density_evals
    out["grads_per_draw"] = result.sample_grads / result.num_draws
    out["density_per_draw"] = result.sample_density_evals / result.num_draws
    out["warmup_grads"] = result.warmup_grads
    out["ess_min_per_grad"] = out["ess_min"] / max(total, 1.0)
    out["ess_median_per_grad"] = out["ess_median"] / max(total, 1.0)
    out["warmup_s"], out["sample_s"] = result.warmup_seconds, result.sample_seconds
    if target.weights is not None:
        w = D.mode_weights(flat, target.component_means)
        out["mode_weights"] = [round(float(v), 4) for v in w]
        out["mode_weight_error"] = float(np.max(np.abs(w - target.weights)))
        out["emc"] = D.entropic_mode_coverage(w)
    if target.mean is not None and target.cov is not None and target.weights is None:
        lam, vec = np.linalg.eigh(target.cov)
        y, m, sd = flat @ vec, target.mean @ vec, np.sqrt(lam)
        out["max_mean_z"] = float(np.max(np.abs(y.mean(0) - m) / sd))
        out["max_sd_rel_err"] = float(np.max(np.abs(y.std(0) / sd - 1)))
    if "reference" in target.extra and result.samples is not None:
        from scoresample.targets.posteriors import eight_schools_constrained

        s = eight_schools_constrained(result.samples)
        ref = target.extra["reference"]
        out["max_mean_z"] = max(abs(s[k].mean() - r["mean"]) / r["sd"] for k, r in ref.items())
        out["max_sd_rel_err"] = max(abs(s[k].std() / r["sd"] - 1) for k, r in ref.items())
    rng = np.random.default_rng(0)
    idx = rng.choice(flat.shape[0], size=min(ksd_draws, flat.shape[0]), replace=False)
    out["ksd"] = D.ksd_from_logdensity(jnp.asarray(flat[idx]), target.logdensity_fn)
    return plain(out)


COLUMNS = [
    ("sampler", "{}"),
    ("target", "{}"),
    ("mode_weight_error", "{:.3f}"),
    ("max_mean_z", "{:.3f}"),
    ("max_sd_rel_err", "{:.3f}"),
    ("ksd", "{:.3f}"),
    ("rhat_max", "{:.3f}"),
    ("ess_min", "{:.0f}"),
    ("grads_per_draw", "{:.1f}"),
    ("density_per_draw", "{:.1f}"),
    ("warmup_grads", "{:.0f}"),
    ("ess_min_per_grad", "{:.2e}"),
    ("warmup_s", "{:.1f}"),
    ("sample_s", "{:.1f}"),
]


def markdown_table(rows: list[dict], columns=COLUMNS) -> str:
    cols = [(c, f) for c, f in columns if any(c in r for r in rows)]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c, f in cols:
            v = r.get(c)
            cells.append(
                "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f.format(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plain(value):
    """``value`` with numpy/JAX scalars and arrays (also inside dicts, lists and tuples) turned
    into Python numbers and lists, for printing and JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray, jax.Array)):
        return np.asarray(value).tolist()
    return value


def write_json(rows, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(rows), indent=1, default=float) + "\n")


def run_matrix(runners: dict[str, Callable], targets: dict[str, Target], **kw) -> list[dict]:
    """Every runner on every target; a runner is runner(target, **kw) -> RunResult."""
    rows = []
    for target in targets.values():
        for runner in runners.values():
            result = runner(target, **kw)
            rows.append(evaluate(result, target))
    return rows
