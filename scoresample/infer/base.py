"""One adapter that turns any sampler of ``scoresample.samplers`` into a NumPyro ``MCMCKernel``.

The adapter owns what every kernel shares: the model (``initialize_model(dynamic_args=True)``,
postprocessing to constrained sites), flattening, the whitening by the preconditioner, warmup
adaptation, divergence handling, cost counters, and the per-chain / population switch. A sampler
contributes only its :class:`~scoresample.samplers.base.SamplerSpec`.

Whitened log densities carry log |det L| (``whitened_logdensity``), so a sampler's evidence
estimate in z is the evidence in x; ``potential_energy`` is reported in x (the offset removed).

Cost counters (extra fields ``num_grad_evals``, ``num_density_evals``) are per iteration and per
chain (for population kernels: per particle, the population's cost divided by its size). The
first iteration also carries the cost of the initialisation (MAP search and Laplace Hessian, a
Hessian counted as d gradients), so the warmup total is the sum over warmup iterations.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from numpyro.infer.util import initialize_model
from numpyro.util import identity, is_prng_key

from scoresample.adapt.preconditioner import (
    DENSE_MAX_DIM,
    Preconditioner,
    find_map,
    identity_preconditioner,
    laplace_covariance,
    log_det_scale,
    pool_laplace,
    scale_from_covariance,
    to_position,
    to_whitened,
    whitened_logdensity,
)
from scoresample.adapt.warmup import WarmupConfig, build_schedule, warmup_init, warmup_update
from scoresample.samplers.base import (
    SamplerSpec,
    check_choice,
    check_nonnegative_int,
    check_positive,
)

PRECONDITIONERS = ("laplace", "identity")
# A potential rising by more than MAX_DELTA_ENERGY + d in one iteration diverges (NUTS's 1000,
# plus d: a draw of a d-dimensional target's typical set sits about d/2 nats above its mode, so an
# independent draw after a start at the MAP rises by ~d/2; without the +d every draw of a correct
# sampler was flagged at d = 2000).
MAX_DELTA_ENERGY = 1000.0
MAX_MAP_PARTICLES = 32  # population kernels: MAP + Laplace from at most this many particles


def pop_base_kwargs(kwargs: dict, exclude=()) -> dict:
    """Remove and return the keyword arguments that belong to ``ScoreSampleKernel.__init__``
    (the sampler-specific rest stays in ``kwargs``); ``exclude`` keeps names a kernel handles
    itself. Derived from the signature, so a new common option reaches every kernel."""
    names = set(inspect.signature(ScoreSampleKernel.__init__).parameters) - {
        "self",
        "model",
        "potential_fn",
        *exclude,
    }
    return {k: kwargs.pop(k) for k in list(kwargs) if k in names}


class ScoreSampleState(NamedTuple):
    """State of a scoresample NumPyro kernel (per chain, or for the whole population)."""

    i: jax.Array
    z: Any
    potential_energy: jax.Array
    diverging: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array
    sampler_state: Any
    adapt_state: Any
    rng_key: jax.Array


def _discrete_latent_sites(model, model_args, model_kwargs):
    """Names of the model's unobserved discrete sample sites."""
    with numpyro.handlers.block():
        # Continuous sites get init_to_uniform values, so improper sites (ImproperUniform,
        # which cannot be sampled) trace too; discrete sites are sampled as usual.
        seeded = numpyro.handlers.seed(model, 0)
        tr = numpyro.handlers.trace(
            numpyro.handlers.substitute(seeded, substitute_fn=init_to_uniform)
        ).get_trace(*model_args, **model_kwargs)
    return [
        name
        for name, site in tr.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and getattr(site["fn"], "support", None) is not None
        and site["fn"].support.is_discrete
        and not site.get("infer", {}).get("enumerate")
    ]


def shard_leading_axis(tree, num_chains: int):
    """Place every leaf whose leading axis is the chain/particle axis on a 1-D device mesh,
    split along that axis; other leaves are replicated. The jitted sampling loop then runs
    each device's chains (or particles) where they live; population reductions (pooled
    estimates, resampling) become cross-device collectives inserted by XLA (GSPMD). The same
    code runs multi-host under ``jax.distributed`` (``jax.devices()`` is then global)."""
    mesh = Mesh(np.array(jax.devices()), ("chains",))
    split, replicated = NamedSharding(mesh, P("chains")), NamedSharding(mesh, P())

    def place(x):
        if hasattr(x, "shape") and x.ndim >= 1 and x.shape[0] == num_chains:
            return jax.device_put(x, split)
        return jax.device_put(x, replicated)

    return jax.tree.map(place, tree)


def _select(ok, new, old):
    """Where ok (scalar, or per particle on a leading axis), take new, else old."""

    def pick(a, b):
        if ok.ndim == 0 or a.ndim == 0 or a.shape[0] != ok.shape[0]:
            return jnp.where(jnp.all(ok) if ok.ndim else ok, a, b)
        return jnp.where(ok.reshape(ok.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


class ScoreSampleKernel(MCMCKernel):
    """Base NumPyro kernel; subclasses provide ``_build_spec()`` and validate their parameters.

    Common parameters (every kernel):
        model / potential_fn: exactly one (as for NUTS). init_strategy: NumPyro's init strategy
            (default ``init_to_uniform``, as NUTS).
        step_size: initial step size in whitened coordinates (default 1.0: unit scale after
            preconditioning). adapt_step_size: dual-average it in warmup (default True).
        target_accept: target of the computed-not-applied acceptance (step-size rule).
        preconditioner: "laplace" (MAP + Laplace scale, default) or "identity".
        adapt_preconditioner: refine (m, L) from warmup draws in Welford windows (default True).
        dense_mass: dense L (default: when d ≤ 200) or diagonal.
        inflation: multiply L by this (> 1 widens the reference of diffusion samplers).
        map_iters: L-BFGS iterations of the MAP search (default 200).
        shard_chains: split vectorized chains (population: particles) over ``jax.devices()``.
            None (default) shards when the host has several accelerators (GPU/TPU), never on
            CPU; True forces it (e.g. CPU devices from --xla_force_host_platform_device_count).
    """

    sample_field = "z"
    default_fields = ("z", "diverging")
    default_target_accept = 0.8

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        init_strategy=init_to_uniform,
        step_size=None,
        adapt_step_size=True,
        target_accept=None,
        preconditioner="laplace",
        adapt_preconditioner=True,
        dense_mass=None,
        inflation=1.0,
        map_iters=200,
        shard_chains=None,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError("Exactly one of `model` or `potential_fn` must be given.")
        if step_size is not None:
            check_positive("step_size", step_size)
        target_accept = self.default_target_accept if target_accept is None else target_accept
        if not (0.0 < float(target_accept) < 1.0):
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}")
        check_choice("preconditioner", preconditioner, PRECONDITIONERS)
        check_positive("inflation", inflation)
        check_nonnegative_int("map_iters", map_iters)
        self._model = model
        self._potential_fn = potential_fn
        self._init_strategy = init_strategy
        self._step_size = 1.0 if step_size is None else float(step_size)
        self._adapt_step_size = bool(adapt_step_size)
        self._target_accept = float(target_accept)
        self._preconditioner = preconditioner
        self._adapt_preconditioner = bool(adapt_preconditioner)
        self._dense_mass = dense_mass
        self._inflation = float(inflation)
        self._map_iters = map_iters
        self._shard_chains = shard_chains
        self._spec: SamplerSpec = self._build_spec()
        self._potential_fn_gen = None
        self._postprocess_fn = None
        self._sample_fn = None
        self._unravel_fn = None

    # -- what subclasses provide ---------------------------------------------------------------
    def _build_spec(self) -> SamplerSpec:
        raise NotImplementedError

    # -- NumPyro's MCMCKernel interface ----------------------------------------------------------
    @property
    def model(self):
        return self._model

    @property
    def is_ensemble_kernel(self):
        return self._spec.is_population

    def postprocess_fn(self, args, kwargs):
        if self._postprocess_fn is None:
            return identity
        return self._postprocess_fn(*args, **kwargs)

    def get_diagnostics_str(self, state):
        div = jnp.mean(jnp.asarray(state.diverging, jnp.float32))
        return f"step size {float(state.adapt_state.step_size):.2e}, diverging {float(div):.0%}"

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs=None):
        batched = not is_prng_key(rng_key)
        if self._spec.is_population and (not batched or rng_key.shape[0] < 2):
            raise ValueError(
                f"{type(self).__name__} is a population (ensemble) kernel: the chains are its "
                "particles. Use MCMC(..., num_chains=N >= 2, chain_method='vectorized')."
            )
        model_kwargs = {} if model_kwargs is None else model_kwargs
        if self._model is not None:
            discrete = _discrete_latent_sites(self._model, model_args, model_kwargs)
            if discrete:
                raise ValueError(
                    f"{type(self).__name__} needs continuous latent variables, but the model has "
                    f"discrete latent site(s) {discrete}. Marginalise them out (e.g. with "
                    "numpyro.contrib.funsor enumeration in the likelihood) or use a discrete "
                    "sampler such as numpyro.infer.DiscreteHMCGibbs."
                )
            params_info, self._potential_fn_gen, self._postprocess_fn, _ = initialize_model(
                rng_key,
                self._model,
                dynamic_args=True,
                init_strategy=self._init_strategy,
                model_args=model_args,
                model_kwargs=model_kwargs,
                validate_grad=self._spec.uses_gradients,
            )
            if init_params is None:
                init_params = params_info[0]
        elif init_params is None:
            raise ValueError(
                "init_params must be given when the kernel is built from potential_fn."
            )

        one = jax.tree.map(lambda x: x[0], init_params) if batched else init_params
        _, self._unravel_fn = ravel_pytree(one)
        flat = jax.vmap(lambda p: ravel_pytree(p)[0]) if batched else (lambda p: ravel_pytree(p)[0])
        x0 = flat(init_params)
        self._num_warmup = int(num_warmup)
        dim = x0.shape[-1]
        self._dense = dim <= DENSE_MAX_DIM if self._dense_mass is None else bool(self._dense_mass)
        self._config = WarmupConfig(
            num_warmup=self._num_warmup,
            schedule=build_schedule(self._num_warmup),
            target_accept=self._target_accept,
            adapt_step_size=self._adapt_step_size and self._spec.step_size_probe is not None,
            adapt_preconditioner=self._adapt_preconditioner,
            inflation=self._inflation,
        )
        # The initialisation (MAP search, Hessian) is compiled once: eagerly it would dispatch
        # every L-BFGS operation separately. Model arguments are closed over as constants.
        if self._spec.is_population:
            init_fn = lambda k, x: self._init_chain(k[0], x, model_args, model_kwargs)
            self._sample_fn = self._sample_state
        elif batched:
            init_fn = jax.vmap(lambda k, x: self._init_chain(k, x, model_args, model_kwargs))
            self._sample_fn = self._vectorized_sample_state
        else:
            init_fn = lambda k, x: self._init_chain(k, x, model_args, model_kwargs)
            self._sample_fn = self._sample_state
        state = jax.jit(init_fn)(rng_key, x0)
        if batched and self._use_sharding(x0.shape[0]):
            state = shard_leading_axis(state, x0.shape[0])
        return state

    def _use_sharding(self, num_chains: int) -> bool:
        devices = jax.devices()
        if self._shard_chains is None:  # auto: every accelerator of the host, never fake CPUs
            wanted = len(devices) > 1 and devices[0].platform != "cpu"
        else:
            wanted = bool(self._shard_chains) and len(devices) > 1
        if wanted and num_chains % len(devices):
            if self._shard_chains:
                raise ValueError(
                    f"shard_chains=True needs num_chains ({num_chains}) divisible by the number "
                    f"of devices ({len(devices)})."
                )
            return False
        return wanted

    def sample(self, state, model_args, model_kwargs):
        return self._sample_fn(state, model_args, model_kwargs or {})

    # -- internals -----------------------------------------------------------------------------
    def _flat_logdensity(self, model_args, model_kwargs) -> Callable:
        if self._potential_fn_gen is not None:
            potential = self._potential_fn_gen(*model_args, **model_kwargs)
        else:
            potential = self._potential_fn
        unravel = self._unravel_fn
        return lambda x: -potential(unravel(x))

    def _init_cost(self):
        """(gradients, densities) of one spec.init call, per chain or particle."""
        return (1, 0) if self._spec.uses_gradients else (0, 1)

    def _laplace(self, logdensity_x, x0):
        """MAP and Laplace covariance from x0; returns (mode, covariance, gradient count)."""
        potential = lambda x: -logdensity_x(x)
        if self._map_iters > 0 and self._spec.uses_gradients:
            mode, n_map = find_map(potential, x0, self._map_iters)
            cov, n_hess = laplace_covariance(potential, mode, self._dense)
            return mode, cov, n_map + n_hess
        dim = x0.shape[-1]
        cov = jnp.eye(dim, dtype=x0.dtype) if self._dense else jnp.ones(dim, x0.dtype)
        return x0, cov, jnp.asarray(0, jnp.int32)

    def _initial_preconditioner(self, logdensity_x, x0):
        """(preconditioner, start point(s), gradient count per chain); x0 is (d,) or (n, d)."""
        dim = x0.shape[-1]
        if self._preconditioner == "identity":
            return (
                identity_preconditioner(dim, self._dense, x0.dtype),
                x0,
                jnp.asarray(0, jnp.int32),
            )
        if x0.ndim == 1:
            mode, cov, count = self._laplace(logdensity_x, x0)
            precond = Preconditioner(
                mode, self._inflation * scale_from_covariance(cov, self._dense)
            )
            return precond, mode, count
        n = min(x0.shape[0], MAX_MAP_PARTICLES)
        modes, covs, counts = jax.vmap(lambda x: self._laplace(logdensity_x, x))(x0[:n])
        mean, cov = pool_laplace(modes, covs)
        precond = Preconditioner(mean, self._inflation * scale_from_covariance(cov, self._dense))
        per_particle = (jnp.sum(counts) // x0.shape[0]).astype(jnp.int32)
        return precond, x0, per_particle

    def _make_state(self, key, x_start, precond, logdensity_x, grad_count):
        k_init, k_next = jax.random.split(key)
        ld_z = whitened_logdensity(logdensity_x, precond)
        sampler_state = self._spec.init(k_init, to_whitened(precond, x_start), ld_z)
        n_grad, n_dens = self._init_cost()
        unravel = jax.vmap(self._unravel_fn) if x_start.ndim == 2 else self._unravel_fn
        shape = x_start.shape[:-1]
        return ScoreSampleState(
            i=jnp.asarray(0, jnp.int32),
            z=unravel(x_start),
            potential_energy=log_det_scale(precond) - sampler_state.logdensity,
            diverging=jnp.zeros(shape, bool),
            num_grad_evals=jnp.full(shape, grad_count + n_grad, jnp.int32),
            num_density_evals=jnp.full(shape, n_dens, jnp.int32),
            sampler_state=sampler_state,
            adapt_state=warmup_init(precond, self._step_size),
            rng_key=k_next,
        )

    def _init_chain(self, key, x0, model_args, model_kwargs):
        """Initial state of one chain (x0 of shape (d,)) or of the population ((n, d))."""
        logdensity_x = self._flat_logdensity(model_args, model_kwargs)
        precond, x_start, count = self._initial_preconditioner(logdensity_x, x0)
        return self._make_state(key, x_start, precond, logdensity_x, count)

    def _vectorized_sample_state(self, state: ScoreSampleState, model_args, model_kwargs):
        """``_sample_state`` over a leading axis of chains. Every chain is at the same iteration,
        so the iteration counter is passed unbatched: under vmap a ``lax.cond`` on a batched
        predicate becomes a select that runs both branches, and the warmup branch (step-size
        probe, Welford update, warmup step) then ran at every sampling iteration (measured: RMP,
        256 chains, d = 10: 90x the cost of the bare kernel)."""
        i = state.i[0]  # closed over, so each chain's state carries an unbatched counter
        return jax.vmap(lambda s: self._sample_state(s._replace(i=i), model_args, model_kwargs))(
            state
        )

    def _sample_state(self, state: ScoreSampleState, model_args, model_kwargs):
        spec, config = self._spec, self._config
        logdensity_x = self._flat_logdensity(model_args, model_kwargs)
        adapt = state.adapt_state
        ld_z = whitened_logdensity(logdensity_x, adapt.precond)
        key, k_step, k_probe, k_reinit = jax.random.split(state.rng_key, 4)

        step_args = (k_step, state.sampler_state, ld_z, adapt.step_size)
        if spec.warmup_step is not None and config.num_warmup > 0:
            # The log density is a function, not an operand of lax.cond: close over it.
            proposed, info = jax.lax.cond(
                state.i < config.num_warmup,
                lambda a: spec.warmup_step(a[0], a[1], ld_z, a[2]),
                lambda a: spec.step(a[0], a[1], ld_z, a[2]),
                (k_step, state.sampler_state, adapt.step_size),
            )
        else:
            proposed, info = spec.step(*step_args)
        pos = proposed.position
        ok = ~jnp.asarray(info.diverging) & jnp.isfinite(proposed.logdensity)
        ok = ok & jnp.all(jnp.isfinite(pos), axis=-1)
        # An exploding trajectory need not overflow: a jump in energy marks it diverging too.
        max_rise = MAX_DELTA_ENERGY + pos.shape[-1]
        ok = ok & (proposed.logdensity - state.sampler_state.logdensity > -max_rise)
        sampler_state = _select(ok, proposed, state.sampler_state)
        x = to_position(adapt.precond, sampler_state.position)
        shape = x.shape[:-1]
        n_grad = jnp.broadcast_to(jnp.asarray(info.num_grad_evals, jnp.int32), shape)
        n_dens = jnp.broadcast_to(jnp.asarray(info.num_density_evals, jnp.int32), shape)
        # The initial state's counters hold the initialisation cost: report it with iteration 0.
        first = state.i == 0
        n_grad = n_grad + jnp.where(first, state.num_grad_evals, 0)
        n_dens = n_dens + jnp.where(first, state.num_density_evals, 0)

        if config.num_warmup > 0 and (config.adapt_step_size or config.adapt_preconditioner):
            init_grad, init_dens = self._init_cost()

            def warm(args):
                ss, ad = args
                if config.adapt_step_size:
                    acc, probe_grads = spec.step_size_probe(k_probe, ss, ld_z, ad.step_size)
                    acc = jnp.mean(acc)
                else:
                    acc, probe_grads = jnp.nan, 0
                new_ad, changed = warmup_update(config, state.i, ad, x, acc)

                def reinit(_):
                    ld_new = whitened_logdensity(logdensity_x, new_ad.precond)
                    return spec.init(k_reinit, to_whitened(new_ad.precond, x), ld_new)

                ss = jax.lax.cond(changed, reinit, lambda _: ss, None)
                extra_grad = probe_grads + jnp.where(changed, init_grad, 0)
                return (
                    ss,
                    new_ad,
                    jnp.asarray(extra_grad, jnp.int32),
                    jnp.where(changed, init_dens, 0).astype(jnp.int32),
                )

            def frozen(args):
                return args[0], args[1], jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32)

            sampler_state, adapt, extra_grad, extra_dens = jax.lax.cond(
                state.i < config.num_warmup, warm, frozen, (sampler_state, adapt)
            )
            n_grad = n_grad + extra_grad
            n_dens = n_dens + extra_dens

        unravel = jax.vmap(self._unravel_fn) if x.ndim == 2 else self._unravel_fn
        return ScoreSampleState(
            i=state.i + 1,
            z=unravel(x),
            potential_energy=log_det_scale(adapt.precond) - sampler_state.logdensity,
            diverging=~ok,
            num_grad_evals=n_grad,
            num_density_evals=n_dens,
            sampler_state=sampler_state,
            adapt_state=adapt,
            rng_key=key,
        )
