"""BlackJAX baselines for the benchmarks, each a runner returning a ``bench.RunResult``.

- ``run_mclmc``: BlackJAX MCLMC (Robnik et al. 2023) tuned by ``mclmc_find_L_and_step_size``,
  the strongest unadjusted kinetic-Langevin sampler (RMP's rival). Tuned once on one chain, then
  run on many chains with the tuned parameters; the McLachlan integrator costs 2 gradients/step.
- ``run_tempered_smc``: BlackJAX adaptive tempered SMC from a Gaussian reference N(m, s² I) to the
  target, with HMC moves (``kernel="hmc"``) or random-walk Metropolis moves (``kernel="rw"``,
  gradient-free). Moves are tuned per temperature from the particles: diagonal inverse mass /
  proposal covariance = the particles' variance, step size scaled by the last acceptance rate
  towards 0.65 (HMC) or 0.3 (RW). log Z from the tempering increments.
- ``run_schrodinger_follmer``: BlackJAX's Monte Carlo Schrödinger–Föllmer sampler as shipped
  (reference N(0, I) in the target's own coordinates), gradient-free.

Times: ``sample_seconds`` excludes compilation, which is reported as ``extra["compile_s"]``.
"""

from __future__ import annotations

import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from scoresample.bench import RunResult
from scoresample.targets.base import Target


def _timed(fn, *args):
    """(output, compile seconds, run seconds) of jax.jit(fn)(*args)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = compiled(*args)
    jax.block_until_ready(out)
    return out, t1 - t0, time.perf_counter() - t1


def run_mclmc(
    target: Target,
    num_chains: int = 64,
    num_steps: int = 2000,
    seed: int = 0,
    num_tune_steps: int | None = None,
    **_,
) -> RunResult:
    """MCLMC on target.logdensity_fn; draws (num_chains, num_steps, d)."""
    logdensity = target.logdensity_fn
    d = target.dim
    key_init, key_tune, key_run = jax.random.split(jax.random.key(seed), 3)
    num_tune_steps = num_steps if num_tune_steps is None else num_tune_steps
    kernel = blackjax.mcmc.mclmc.build_kernel()

    def tune(key):
        x0 = jax.random.normal(key_init, (d,))
        state = blackjax.mcmc.mclmc.init(x0, logdensity, key_init)
        state, params, n_tune = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=kernel,
            num_steps=num_tune_steps,
            state=state,
            rng_key=key,
            logdensity_fn=logdensity,
            diagonal_preconditioning=True,
        )
        return state, params, n_tune

    (state, params, n_tune), tc1, tr1 = _timed(tune, key_tune)

    def run(key):
        alg = blackjax.mclmc(
            logdensity,
            L=params.L,
            step_size=params.step_size,
            inverse_mass_matrix=params.inverse_mass_matrix,
        )
        keys = jax.random.split(key, num_chains)

        def chain(k):
            k0, k1 = jax.random.split(k)
            # Every chain starts from the tuned state, with a fresh momentum direction.
            st = blackjax.mcmc.mclmc.init(state.position, logdensity, k0)

            def body(s, kk):
                s, _ = alg.step(kk, s)
                return s, s.position

            _, xs = jax.lax.scan(body, st, jax.random.split(k1, num_steps))
            return xs

        return jax.vmap(chain)(keys)

    draws, tc2, tr2 = _timed(run, key_run)
    grads_per_step = 2
    return RunResult(
        "MCLMC",
        target.name,
        np.asarray(draws),
        warmup_grads=float(grads_per_step * int(n_tune)),
        sample_grads=float(grads_per_step * num_chains * num_steps),
        sample_density_evals=0.0,
        warmup_seconds=tr1 + tc1,
        sample_seconds=tr2,
        extra={"compile_s": tc2, "L": float(params.L), "step_size": float(params.step_size)},
    )


def _reference(target: Target, prior_mean, prior_scale):
    d = target.dim
    mean = jnp.zeros(d) if prior_mean is None else jnp.broadcast_to(jnp.asarray(prior_mean), (d,))
    if prior_scale is None:
        prior_scale = 3.0 * float(np.max(target.sd)) if target.sd is not None else 5.0
    return mean, float(prior_scale)


def run_tempered_smc(
    target: Target,
    num_particles: int = 1000,
    seed: int = 0,
    kernel: str = "hmc",
    num_mcmc_steps: int = 5,
    num_integration_steps: int = 5,
    target_ess: float = 0.5,
    prior_mean=None,
    prior_scale=None,
    max_temperatures: int = 200,
    **_,
) -> RunResult:
    """Adaptive tempered SMC with HMC or RW moves; draws (1, num_particles, d)."""
    if kernel not in ("hmc", "rw"):
        raise ValueError(f"kernel must be 'hmc' or 'rw', got {kernel!r}")
    d = target.dim
    mean, scale = _reference(target, prior_mean, prior_scale)

    def logprior(x):
        return (
            -0.5 * jnp.sum(((x - mean) / scale) ** 2)
            - d * jnp.log(scale)
            - 0.5 * d * jnp.log(2 * jnp.pi)
        )

    loglik = lambda x: target.logdensity_fn(x) - logprior(x)

    if kernel == "hmc":
        step_fn = blackjax.hmc.build_kernel()
        init_fn = blackjax.hmc.init
        target_acc = 0.65
    else:
        rw = blackjax.additive_step_random_walk

        def step_fn(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix, **_):
            sd = step_size * jnp.sqrt(inverse_mass_matrix)
            move = lambda k, pos: sd * jax.random.normal(k, pos.shape)
            return rw.build_kernel()(rng_key, state, logdensity_fn, move)

        init_fn = lambda position, logdensity_fn: blackjax.rmh.init(position, logdensity_fn)
        target_acc = 0.3

    smc_kernel = blackjax.adaptive_tempered_smc.build_kernel(
        logprior, loglik, step_fn, init_fn, blackjax.smc.resampling.systematic, target_ess
    )

    def run(key):
        k0, k1 = jax.random.split(key)
        x0 = mean + scale * jax.random.normal(k0, (num_particles, d))
        state = blackjax.adaptive_tempered_smc.init(x0)

        def cond(c):
            state, *_rest, n = c
            return (state.tempering_param < 1.0) & (n < max_temperatures)

        def body(c):
            state, key, step, log_z, acc_sum, n = c
            key, sub = jax.random.split(key)
            var = jnp.var(state.particles, axis=0) + 1e-6
            params = {"step_size": jnp.array([step]), "inverse_mass_matrix": var[None]}
            if kernel == "hmc":
                params["num_integration_steps"] = jnp.array([num_integration_steps])
            new, info = smc_kernel(sub, state, num_mcmc_steps, params)
            acc = jnp.mean(info.update_info.acceptance_rate)
            step = step * jnp.exp(acc - target_acc)
            return new, key, step, log_z + info.log_likelihood_increment, acc_sum + acc, n + 1

        step0 = 0.5 * d**-0.25 if kernel == "hmc" else 2.38 / jnp.sqrt(d)
        init = (state, k1, jnp.asarray(step0), 0.0, 0.0, 0)
        state, _, step, log_z, acc_sum, n = jax.lax.while_loop(cond, body, init)
        return state.particles, log_z, n, acc_sum / jnp.maximum(n, 1)

    (particles, log_z, n_temps, mean_acc), tc, tr = _timed(run, jax.random.key(seed))
    n_temps = int(n_temps)
    moves = n_temps * num_mcmc_steps
    if kernel == "hmc":
        grads, dens = moves * num_integration_steps, n_temps
    else:
        grads, dens = 0, moves + n_temps
    name = "SMC-HMC" if kernel == "hmc" else "SMC-RW"
    return RunResult(
        name,
        target.name,
        np.asarray(particles)[None],
        warmup_grads=0.0,
        sample_grads=float(grads * num_particles),
        sample_density_evals=float(dens * num_particles),
        warmup_seconds=0.0,
        sample_seconds=tr,
        extra={
            "compile_s": tc,
            "log_z": float(log_z),
            "num_temperatures": n_temps,
            "mean_acceptance": float(mean_acc),
        },
    )


def run_schrodinger_follmer(
    target: Target,
    num_particles: int = 1000,
    num_steps: int = 50,
    num_mc: int = 100,
    seed: int = 0,
    **_,
) -> RunResult:
    """BlackJAX Schrödinger–Föllmer (Huang et al. 2021); draws (1, num_particles, d)."""
    alg = blackjax.schrodinger_follmer(target.logdensity_fn, num_steps, num_mc)

    def run(key):
        state = alg.init(jnp.zeros(target.dim))
        return alg.sample(key, state, num_particles).position

    draws, tc, tr = _timed(run, jax.random.key(seed))
    return RunResult(
        "SchrodingerFollmer",
        target.name,
        np.asarray(draws)[None],
        warmup_grads=0.0,
        sample_grads=0.0,
        sample_density_evals=float(num_particles * num_steps * num_mc),
        warmup_seconds=0.0,
        sample_seconds=tr,
        extra={"compile_s": tc},
    )
