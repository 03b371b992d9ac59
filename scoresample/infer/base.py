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

import copy
import inspect
import warnings
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
    pool_gaussians,
    scale_from_covariance,
    to_position,
    to_whitened,
    whitened_logdensity,
)
from scoresample.adapt.reference import (
    PATHFINDER_MAXITER,
    ModelPrior,
    distinct_mode_weights,
    improper_sites,
    model_prior,
    pathfinder_fit,
)
from scoresample.adapt.smoothness import (
    looks_discontinuous,
    rejection_ratio,
    smoothness_probe,
    warn_if_discontinuous,
)
from scoresample.adapt.warmup import WarmupConfig, build_schedule, warmup_init, warmup_update
from scoresample.diffusion.annealing import Reference
from scoresample.infer.compiled import INIT_CACHE, freeze, split_arrays, structure_key
from scoresample.samplers.base import (
    SamplerSpec,
    check_choice,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
)

PRECONDITIONERS = ("auto", "pathfinder", "laplace", "identity")
REFERENCES = ("auto", "prior", "init")
DEFAULT_NUM_PATHS = 16  # Pathfinder paths from dispersed starts (a choice, not a measurement)
DEFAULT_INIT_WIDENING = 2.0  # init-strategy starts widened by this sd when no prior is known
CHAIN_AXIS = "chains"  # vmap axis of vectorized per-chain kernels (warmup pools over it)


class LocalReferenceWarning(UserWarning):
    """The warmup reference is built from the init strategy's points only (no proper prior, no
    ``reference_scale``): modes or scales far from those points may be missed."""


# A potential rising by more than MAX_DELTA_ENERGY + d in one iteration diverges (NUTS's 1000,
# plus d: a draw of a d-dimensional target's typical set sits about d/2 nats above its mode, so an
# independent draw after a start at the MAP rises by ~d/2; without the +d every draw of a correct
# sampler was flagged at d = 2000).
MAX_DELTA_ENERGY = 1000.0
MAX_MAP_PARTICLES = 32  # population kernels: MAP + Laplace from at most this many particles


# NumPyro NUTS/HMC (and MCMC) keywords with no counterpart here, and why.
NUTS_ONLY = {
    "max_tree_depth": "there is no tree: one draw is a fixed number of steps (see num_steps)",
    "trajectory_length": "there is no HMC trajectory (see num_steps)",
    "find_heuristic_step_size": "warmup adapts the step size from the preconditioned start",
    "kinetic_fn": "the kinetic energy is fixed by the sampler",
    "forward_mode_differentiation": "gradients are taken in reverse mode only",
    "regularize_mass_matrix": "the preconditioner is regularised by its own rules",
    "num_chains": "the number of chains is MCMC(..., num_chains=N)",
}


def is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def as_float(value):
    """float(value), or the traced value itself (a kernel built inside ``jit``)."""
    return value if is_traced(value) else float(value)


def refuse_unknown(kernel: str, unknown: dict) -> None:
    """ValueError for NumPyro keywords that do not carry over (saying why), TypeError for the
    rest, as Python would."""
    for name in unknown:
        if name in NUTS_ONLY:
            raise ValueError(f"{kernel} does not take {name}: {NUTS_ONLY[name]}")
    if unknown:
        raise TypeError(f"{kernel} got unexpected keyword argument(s) {sorted(unknown)}")


def alias(name: str, value, numpyro_name: str, numpyro_value):
    """``value``, or NumPyro's spelling of it when that one is given (both: ValueError)."""
    if numpyro_value is None:
        return value
    if value is not None:
        raise ValueError(f"give {name} or NumPyro's {numpyro_name}, not both")
    return numpyro_value


def check_inverse_mass_matrix(matrix, preconditioner):
    """NumPyro's inverse_mass_matrix as an array (d,) or (d, d) of a positive (definite) cov."""
    if isinstance(matrix, dict):
        raise ValueError(
            "inverse_mass_matrix must be an array (d,) or (d, d) over all unconstrained "
            "coordinates; NumPyro's per-site dict form is not supported"
        )
    if preconditioner != "auto":
        raise ValueError("give inverse_mass_matrix or preconditioner, not both")
    m = np.asarray(matrix, np.float64)
    ok = m.ndim == 1 and np.all(m > 0)
    if m.ndim == 2 and m.shape[0] == m.shape[1]:
        ok = np.allclose(m, m.T) and np.all(np.linalg.eigvalsh(m) > 0)
    if not ok:
        raise ValueError(
            "inverse_mass_matrix must be a positive vector (d,) or a symmetric positive "
            f"definite matrix (d, d), got shape {m.shape}"
        )
    return m


def pop_base_kwargs(kwargs: dict, exclude=()) -> dict:
    """Remove and return the keyword arguments that belong to ``ScoreSampleKernel.__init__``
    (the sampler-specific rest stays in ``kwargs``); ``exclude`` keeps names a kernel handles
    itself. Derived from the signature, so a new common option reaches every kernel; NumPyro
    keywords that do not carry over go along too (the base class refuses them)."""
    names = set(inspect.signature(ScoreSampleKernel.__init__).parameters) - {
        "self",
        "model",
        "potential_fn",
        "unknown",
        *exclude,
    }
    return {k: kwargs.pop(k) for k in list(kwargs) if k in names or k in NUTS_ONLY}


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

    def __getitem__(self, key):
        return state_item(self, key)


def state_item(state: tuple, key):
    """Tuple indexing; a name is an extra field that does not exist. NumPyro's MCMC looks an
    unknown ``extra_fields`` name up as an item after the attribute lookup failed, which for a
    tuple gave "tuple indices must be integers"; say which fields there are instead."""
    if isinstance(key, str):
        raise KeyError(
            f"no extra field {key!r} in {type(state).__name__}; fields: {', '.join(state._fields)}"
            " (and their attributes, e.g. 'sampler_state.position'). Unadjusted samplers have no "
            "accept_prob; the cost per draw is num_grad_evals / num_density_evals (NUTS's "
            "num_steps is the number of leapfrog steps)"
        )
    return tuple.__getitem__(state, key)


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


def _unchanged(state: ScoreSampleState) -> ScoreSampleState:
    """The next state of a model without latent dimensions."""
    return state._replace(i=state.i + 1)


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
        preconditioner: "auto" (default: "pathfinder" when the starts can be dispersed, i.e. the
            model's latent sites all have proper priors or ``reference_scale`` is given, else
            "laplace"), "pathfinder", "laplace" (each chain's MAP and Laplace scale, each chain
            adapting alone: the earlier warmup, local) or "identity".
            "pathfinder": single-path Pathfinder (BlackJAX) from ``num_paths`` dispersed starts
            (the reference's draws), the fits of distinct modes pooled into one Gaussian that
            covers them all; vectorized chains share it and pool their Welford windows.
            Gradient-free kernels moment-match the starts instead.
        reference: where the starts come from. "auto" (default): the model's prior when every
            latent site has a proper prior (and ``reference_scale`` is not given), else the
            init strategy's points widened; "prior" (an improper prior raises); "init".
        reference_scale: sd of the Gaussian widening of the init-strategy starts (default
            2.0, with a LocalReferenceWarning: nothing wider is known); give it when you know
            the posterior's scale in the unconstrained space.
        num_paths: Pathfinder paths (default 16, a choice).
        adapt_preconditioner: refine (m, L) from warmup draws in Welford windows (default True).
        dense_mass: dense L (default: when d ≤ 200) or diagonal.
        inflation: multiply L by this (> 1 widens the reference of diffusion samplers).
        map_iters: L-BFGS iterations per Pathfinder path (default 100) or of the MAP search
            ("laplace", default 200); 0 skips the optimisation (moment match of the starts).
        shard_chains: split vectorized chains (population: particles) over ``jax.devices()``.
            None (default) shards when the host has several accelerators (GPU/TPU), never on
            CPU; True forces it (e.g. CPU devices from --xla_force_host_platform_device_count).

    NumPyro's names, where the meaning carries over: ``target_accept_prob`` (= target_accept),
    ``adapt_mass_matrix`` (= adapt_preconditioner), ``inverse_mass_matrix`` (an array (d,) or
    (d, d): the posterior covariance the preconditioner starts from, centred at 0 as NUTS's
    mass matrix; no Pathfinder or MAP search). NUTS/HMC parameters without a counterpart
    (``NUTS_ONLY``) raise ValueError saying why; so does NumPyro's structured ``dense_mass``.
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
        preconditioner="auto",
        reference="auto",
        reference_scale=None,
        num_paths=DEFAULT_NUM_PATHS,
        adapt_preconditioner=None,
        dense_mass=None,
        inflation=1.0,
        map_iters=None,
        shard_chains=None,
        target_accept_prob=None,
        adapt_mass_matrix=None,
        inverse_mass_matrix=None,
        **unknown,
    ):
        refuse_unknown(type(self).__name__, unknown)
        check_choice("preconditioner", preconditioner, PRECONDITIONERS)
        target_accept = alias(
            "target_accept", target_accept, "target_accept_prob", target_accept_prob
        )
        adapt_preconditioner = alias(
            "adapt_preconditioner", adapt_preconditioner, "adapt_mass_matrix", adapt_mass_matrix
        )
        adapt_preconditioner = True if adapt_preconditioner is None else adapt_preconditioner
        if not isinstance(dense_mass, (bool, type(None))):
            raise ValueError(
                f"dense_mass must be True or False (one dense or diagonal preconditioner for all "
                f"sites), got {dense_mass!r}: NumPyro's structured form (a list of site tuples) "
                "is not supported"
            )
        if inverse_mass_matrix is not None:
            inverse_mass_matrix = check_inverse_mass_matrix(inverse_mass_matrix, preconditioner)
            preconditioner = "given"
            dense_mass = inverse_mass_matrix.ndim == 2
        if (model is None) == (potential_fn is None):
            raise ValueError("Exactly one of `model` or `potential_fn` must be given.")
        if step_size is not None:
            check_positive("step_size", step_size)
        target_accept = self.default_target_accept if target_accept is None else target_accept
        if not is_traced(target_accept) and not (0.0 < float(target_accept) < 1.0):
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}")
        check_choice("reference", reference, REFERENCES)
        if reference_scale is not None:
            scale = np.asarray(reference_scale, np.float64)
            if scale.ndim > 1 or not np.all(np.isfinite(scale) & (scale > 0)):
                raise ValueError(
                    "reference_scale must be a positive number or a vector of positive numbers, "
                    f"got {reference_scale!r}"
                )
        check_positive_int("num_paths", num_paths)
        check_positive("inflation", inflation)
        if map_iters is not None:
            check_nonnegative_int("map_iters", map_iters)
        self._model = model
        self._potential_fn = potential_fn
        self._init_strategy = init_strategy
        # A kernel built inside jit (NumPyro's consensus-MC pattern) may get traced values.
        self._step_size = 1.0 if step_size is None else as_float(step_size)
        self._adapt_step_size = bool(adapt_step_size)
        self._target_accept = as_float(target_accept)
        self._preconditioner_arg = preconditioner
        self._preconditioner = "laplace" if preconditioner == "auto" else preconditioner
        if map_iters is None:
            self._map_iters = 200 if self._preconditioner == "laplace" else PATHFINDER_MAXITER
        self._reference = reference
        self._reference_scale = reference_scale
        self._num_paths = num_paths
        self._adapt_preconditioner = bool(adapt_preconditioner)
        self._dense_mass = dense_mass
        self._inflation = float(inflation)
        self._map_iters_arg = map_iters
        if map_iters is not None:
            self._map_iters = map_iters
        self._shard_chains = shard_chains
        self._inverse_mass_matrix = inverse_mass_matrix
        # The constructor's settings (subclasses set theirs before calling this): with the
        # resolved warmup choices they key the compiled warmup start (``infer.compiled``).
        self._settings = dict(vars(self))
        self._spec: SamplerSpec = self._build_spec()
        self._potential_fn_gen = None
        self._postprocess_fn = None
        self._sample_fn = None
        self._chain_axis = None
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
        if state.adapt_state is None:
            return "no latent dimensions"
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
        ravel = lambda p: ravel_pytree(p)[0]
        # axis_size: a model without latent sites has init_params {} (nothing to map over).
        x0 = jax.vmap(ravel, axis_size=rng_key.shape[0])(init_params) if batched else ravel(one)
        self._num_warmup = int(num_warmup)
        dim = x0.shape[-1]
        if self._inverse_mass_matrix is not None and self._inverse_mass_matrix.shape[0] != dim:
            raise ValueError(
                f"inverse_mass_matrix has shape {self._inverse_mass_matrix.shape}, but the model "
                f"has {dim} unconstrained dimensions"
            )
        if dim == 0:
            return self._init_without_latent_dims(rng_key, x0, batched, model_args, model_kwargs)
        self._dense = dim <= DENSE_MAX_DIM if self._dense_mass is None else bool(self._dense_mass)
        self._config = WarmupConfig(
            num_warmup=self._num_warmup,
            schedule=build_schedule(self._num_warmup),
            target_accept=self._target_accept,
            adapt_step_size=self._adapt_step_size and self._spec.step_size_probe is not None,
            adapt_preconditioner=self._adapt_preconditioner,
            inflation=self._inflation,
            tune_friction=self._spec.friction is not None,
        )
        self._resolve_preconditioner(model_args, model_kwargs)
        self._check_reference(model_args, model_kwargs)
        self._chain_axis = None
        if self._spec.is_population:
            self._sample_fn = self._sample_state
        elif batched:
            self._chain_axis = None if self._preconditioner == "laplace" else CHAIN_AXIS
            self._sample_fn = self._vectorized_sample_state
        else:
            self._sample_fn = self._sample_state
        state = self._compiled_init(batched, one)(rng_key, x0, model_args, model_kwargs)
        if batched and self._use_sharding(x0.shape[0]):
            state = shard_leading_axis(state, x0.shape[0])
        return state

    def _init_without_latent_dims(self, rng_key, x0, batched, model_args, model_kwargs):
        """A model with nothing to sample (no latent sites, only deterministic ones, or sites of
        zero unconstrained dimensions such as Dirichlet(ones(1))): every draw is the one point,
        at no cost, and deterministic sites are computed from it by postprocessing."""
        potential = self._flat_logdensity(model_args, model_kwargs)
        shape = x0.shape[:-1]
        unravel = jax.vmap(self._unravel_fn) if batched else self._unravel_fn
        per_chain = batched and not self._spec.is_population
        self._sample_fn = lambda state, *_: _unchanged(state)
        return ScoreSampleState(
            i=jnp.zeros(shape if per_chain else (), jnp.int32),
            z=unravel(x0),
            potential_energy=jnp.broadcast_to(-potential(jnp.zeros(0, x0.dtype)), shape),
            diverging=jnp.zeros(shape, bool),
            num_grad_evals=jnp.zeros(shape, jnp.int32),
            num_density_evals=jnp.zeros(shape, jnp.int32),
            sampler_state=None,
            adapt_state=None,
            rng_key=rng_key,
        )

    def _init_states(self, batched: bool) -> Callable:
        """init(rng_key, x0, model_args, model_kwargs) -> initial state(s), not compiled."""
        if self._spec.is_population:
            return lambda k, x, a, kw: self._init_chain(k[0], x, a, kw)
        return self._init_chains if batched else self._init_chain

    def _compiled_init(self, batched: bool, params) -> Callable:
        """The initialisation (Pathfinder or MAP search, Hessian), compiled: eagerly it would
        dispatch every L-BFGS operation separately. The compiled function is kept across runs
        and kernels with the same settings (``infer.compiled``), the model's array arguments
        passed to it; a model that cannot take them traced, or a setting or argument that
        cannot be hashed, gets a function compiled for this run with the arguments closed
        over (the earlier behaviour)."""

        def for_this_run(rng_key, x0, model_args, model_kwargs):
            init = self._init_states(batched)
            return jax.jit(lambda k, x: init(k, x, model_args, model_kwargs))(rng_key, x0)

        def cached(rng_key, x0, model_args, model_kwargs):
            try:
                settings = freeze(self._settings)
                args_key, arrays, rebuild = split_arrays((model_args, model_kwargs))
            except TypeError:
                return for_this_run(rng_key, x0, model_args, model_kwargs)
            key = (
                type(self),
                settings,
                self._preconditioner,
                self._dense,
                batched,
                structure_key(params),
                args_key,
            )
            # A copy: the compiled function must not see this kernel's later inits.
            init = copy.copy(self)._init_states(batched)
            fn = INIT_CACHE.get(key, lambda: jax.jit(lambda k, x, arr: init(k, x, *rebuild(arr))))
            try:
                return fn(rng_key, x0, arrays)
            except Exception:  # e.g. a model that needs concrete arguments
                INIT_CACHE.discard(key)
                return for_this_run(rng_key, x0, model_args, model_kwargs)

        return cached

    def _resolve_preconditioner(self, model_args, model_kwargs):
        """preconditioner="auto": Pathfinder when the starts can be dispersed (a proper prior, or
        a reference_scale), else the MAP + Laplace start (the only local information)."""
        kind = self._preconditioner_arg
        if kind == "auto":
            proper = self._model is not None and not improper_sites(
                self._model, model_args, model_kwargs
            )
            wide = (proper and self._reference != "init") or self._reference_scale is not None
            kind = "pathfinder" if wide else "laplace"
        self._preconditioner = kind
        if self._map_iters_arg is None:
            self._map_iters = 200 if kind == "laplace" else PATHFINDER_MAXITER

    def _check_reference(self, model_args, model_kwargs):
        """Raise for reference="prior" without a proper prior; warn when the reference is local."""
        if self._preconditioner == "identity":
            return
        improper = (
            ["<potential_fn>"]
            if self._model is None
            else improper_sites(self._model, model_args, model_kwargs)
        )
        if self._reference == "prior" and improper:
            raise ValueError(
                f"reference='prior' needs a proper prior on every latent site; improper: "
                f"{improper}. Give proper priors, or reference='init' with reference_scale."
            )
        local = (
            self._reference == "init" or improper or self._preconditioner == "laplace"
        ) and self._reference_scale is None
        if local:
            why = (
                "preconditioner='laplace' starts at each chain's MAP"
                if self._preconditioner == "laplace"
                else f"no proper prior is known (improper: {improper})"
                if improper
                else "reference='init'"
            )
            warnings.warn(
                f"{type(self).__name__}: the warmup reference is local ({why}): it is built "
                "around the init strategy's points, and modes or scales far from them may be "
                "missed. Give proper priors, or reference_scale= (the posterior's scale in the "
                "unconstrained space).",
                LocalReferenceWarning,
                stacklevel=4,
            )

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

    def _model_prior(self, model_args, model_kwargs, dim) -> ModelPrior | None:
        """The model's prior on the flat unconstrained space when the reference uses it."""
        use = self._reference == "prior" or (
            self._reference == "auto" and self._reference_scale is None
        )
        if self._model is None or not use:
            return None
        return model_prior(self._model, model_args, model_kwargs, self._unravel_fn, dim)

    def _path_reference(self, model_args, model_kwargs, precond) -> Reference | None:
        """Extension point of annealing samplers (``spec.takes_reference``): the start q0 of
        the path in whitened coordinates, or None for N(0, I) (the warmup's Gaussian)."""
        return None

    def _reference_starts(self, key, x0, prior, num):
        """``num`` dispersed starts: prior draws, or the init points widened by a Gaussian."""
        if prior is not None:
            return jax.vmap(prior.sample)(jax.random.split(key, num))
        base = jnp.atleast_2d(x0)
        base = base[jnp.arange(num) % base.shape[0]]
        widen = DEFAULT_INIT_WIDENING if self._reference_scale is None else self._reference_scale
        noise = jax.random.normal(key, base.shape, base.dtype)
        return base + jnp.asarray(widen, base.dtype) * noise

    def _laplace_preconditioner(self, logdensity_x, x0):
        """The earlier warmup: MAP + Laplace at x0 (d,), or pooled over a population's x0."""
        if x0.ndim == 1:
            mode, cov, count = self._laplace(logdensity_x, x0)
            precond = Preconditioner(
                mode, self._inflation * scale_from_covariance(cov, self._dense)
            )
            return precond, mode, count
        n = min(x0.shape[0], MAX_MAP_PARTICLES)
        modes, covs, counts = jax.vmap(lambda x: self._laplace(logdensity_x, x))(x0[:n])
        mean, cov = pool_gaussians(modes, covs)
        precond = Preconditioner(mean, self._inflation * scale_from_covariance(cov, self._dense))
        per_particle = (jnp.sum(counts) // x0.shape[0]).astype(jnp.int32)
        return precond, x0, per_particle

    def _pathfinder_reference(self, key, logdensity_x, starts):
        """Pooled Gaussian of the Pathfinder fits from ``starts`` (each distinct mode counted
        once), chain starts at the fits' means (best ELBO first, cycled), and the cost."""
        dense = self._dense
        # One path after another (lax.map), not vmap: BlackJAX's Pathfinder vmapped over 16
        # starts on ManyWell-32 never returned in float32 (every thread idle; one by one: 2.5 s).
        fits = jax.lax.map(
            lambda a: pathfinder_fit(a[0], logdensity_x, a[1], dense, self._map_iters),
            (jax.random.split(key, starts.shape[0]), starts),
        )
        usable = jnp.isfinite(fits.elbo)
        eye = jnp.eye(starts.shape[-1], dtype=starts.dtype) if dense else jnp.ones_like(starts[0])
        means = jnp.where(usable[:, None], fits.mean, starts)
        covs = jnp.where(usable.reshape((-1,) + (1,) * eye.ndim), fits.cov, eye)
        weights = distinct_mode_weights(means, covs, usable)
        # No usable path: moment-match the starts, each with unit variance.
        weights = jnp.where(jnp.any(usable), weights, 1.0)
        mean, cov = pool_gaussians(means, covs, weights)
        order = jnp.argsort(-jnp.where(usable, fits.elbo, -jnp.inf))
        n_ok = jnp.maximum(jnp.sum(usable), 1)
        chain_means = means[order[jnp.arange(starts.shape[0]) % n_ok]]
        return mean, cov, chain_means, jnp.sum(fits.num_grad_evals), jnp.sum(fits.num_density_evals)

    def _initial_preconditioner(self, key, logdensity_x, x0, prior):
        """(preconditioner, start point(s), gradient and density counts per chain or particle).

        x0 is (d,) for one chain, (n, d) for n vectorized chains or a population of n."""
        dim = x0.shape[-1]
        zero = jnp.asarray(0, jnp.int32)
        if self._preconditioner == "identity":
            return identity_preconditioner(dim, self._dense, x0.dtype), x0, zero, zero
        if self._preconditioner == "given":
            cov = jnp.asarray(self._inverse_mass_matrix, x0.dtype)
            precond = Preconditioner(
                jnp.zeros(dim, x0.dtype), scale_from_covariance(cov, cov.ndim == 2)
            )
            return precond, x0, zero, zero
        if self._preconditioner == "laplace":
            return (*self._laplace_preconditioner(logdensity_x, x0), zero)
        n = 1 if x0.ndim == 1 else x0.shape[0]
        k_starts, k_fit = jax.random.split(key)
        if self._spec.uses_gradients and self._map_iters > 0:
            starts = self._reference_starts(k_starts, x0, prior, self._num_paths)
            mean, cov, chain_means, n_grad, n_dens = self._pathfinder_reference(
                k_fit, logdensity_x, starts
            )
        else:  # gradient-free: moment match of many starts (prior draws are cheap)
            starts = self._reference_starts(k_starts, x0, prior, max(self._num_paths, n, 64))
            unit = jnp.eye(dim, dtype=x0.dtype) if self._dense else jnp.ones(dim, x0.dtype)
            spread = 0.0 if prior is not None else 1.0  # init points: unit variance each
            covs = spread * jnp.broadcast_to(unit, (starts.shape[0],) + unit.shape)
            mean, cov = pool_gaussians(starts, covs)
            chain_means, n_grad, n_dens = starts, zero, zero
        precond = Preconditioner(mean, self._inflation * scale_from_covariance(cov, self._dense))
        if self._spec.is_population:
            x_start = x0
        else:
            x_start = chain_means[jnp.arange(n) % chain_means.shape[0]]
            x_start = x_start[0] if x0.ndim == 1 else x_start
        per_chain = lambda c: (c // n).astype(jnp.int32)
        return precond, x_start, per_chain(n_grad), per_chain(n_dens)

    def _make_state(self, key, x_start, precond, logdensity_x, grad_count, dens_count=0):
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
            num_density_evals=jnp.full(shape, dens_count + n_dens, jnp.int32),
            sampler_state=sampler_state,
            adapt_state=warmup_init(precond, self._step_size, self._spec.friction or 1.0),
            rng_key=k_next,
        )

    def _init_chain(self, key, x0, model_args, model_kwargs):
        """Initial state of one chain (x0 of shape (d,)) or of the population ((n, d))."""
        logdensity_x = self._flat_logdensity(model_args, model_kwargs)
        prior = self._model_prior(model_args, model_kwargs, x0.shape[-1])
        # The local starts use no randomness: the state keeps the key (the earlier draws).
        local = self._preconditioner in ("laplace", "identity")
        k_ref, k_state = (key, key) if local else jax.random.split(key)
        precond, x_start, n_grad, n_dens = self._initial_preconditioner(
            k_ref, logdensity_x, x0, prior
        )
        return self._make_state(k_state, x_start, precond, logdensity_x, n_grad, n_dens)

    def _init_chains(self, keys, x0, model_args, model_kwargs):
        """Initial states of vectorized per-chain kernels (x0 (n, d)): one reference for all
        chains, each chain started at one of its fits; the cost shared between the chains."""
        if self._preconditioner == "laplace":  # the earlier warmup: each chain alone
            return jax.vmap(lambda k, x: self._init_chain(k, x, model_args, model_kwargs))(keys, x0)
        logdensity_x = self._flat_logdensity(model_args, model_kwargs)
        prior = self._model_prior(model_args, model_kwargs, x0.shape[-1])
        k_ref = jax.random.fold_in(keys[0], 1)
        precond, x_start, n_grad, n_dens = self._initial_preconditioner(
            k_ref, logdensity_x, x0, prior
        )
        return jax.vmap(lambda k, x: self._make_state(k, x, precond, logdensity_x, n_grad, n_dens))(
            keys, x_start
        )

    def _report_smoothness(self, i, smoothness, logdensity):
        """At the first sampling iteration, warn (host callback) when the warmup's probes say
        the density jumps (``scoresample.adapt.smoothness``)."""

        def report(_):
            flag = looks_discontinuous(smoothness, jnp.mean(logdensity))
            ratio = rejection_ratio(smoothness)
            jax.debug.callback(warn_if_discontinuous, flag, ratio, smoothness.count)

        jax.lax.cond(i == self._config.num_warmup, report, lambda _: None, None)

    def _vectorized_sample_state(self, state: ScoreSampleState, model_args, model_kwargs):
        """``_sample_state`` over a leading axis of chains. Every chain is at the same iteration,
        so the iteration counter is passed unbatched: under vmap a ``lax.cond`` on a batched
        predicate becomes a select that runs both branches, and the warmup branch (step-size
        probe, Welford update, warmup step) then ran at every sampling iteration (measured: RMP,
        256 chains, d = 10: 90x the cost of the bare kernel)."""
        i = state.i[0]  # closed over, so each chain's state carries an unbatched counter
        return jax.vmap(
            lambda s: self._sample_state(s._replace(i=i), model_args, model_kwargs),
            axis_name=self._chain_axis,
        )(state)

    def _sample_state(self, state: ScoreSampleState, model_args, model_kwargs):
        spec, config = self._spec, self._config
        logdensity_x = self._flat_logdensity(model_args, model_kwargs)
        adapt = state.adapt_state
        ld_z = whitened_logdensity(logdensity_x, adapt.precond)
        key, k_step, k_probe, k_reinit = jax.random.split(state.rng_key, 4)

        step_args = (k_step, state.sampler_state, ld_z, adapt.step_size)
        kw = {}
        if spec.takes_reference:
            kw["reference"] = self._path_reference(model_args, model_kwargs, adapt.precond)
        if spec.friction is not None:
            kw["friction"] = adapt.friction
        if spec.warmup_step is not None and config.num_warmup > 0:
            # The log density is a function, not an operand of lax.cond: close over it.
            proposed, info = jax.lax.cond(
                state.i < config.num_warmup,
                lambda a: spec.warmup_step(a[0], a[1], ld_z, a[2], **kw),
                lambda a: spec.step(a[0], a[1], ld_z, a[2], **kw),
                (k_step, state.sampler_state, adapt.step_size),
            )
        else:
            proposed, info = spec.step(*step_args, **kw)
        pos = proposed.position
        flagged = jnp.asarray(info.diverging)
        ok = jnp.isfinite(proposed.logdensity) & jnp.all(jnp.isfinite(pos), axis=-1)
        ok = ok if spec.reflects else ok & ~flagged
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
            smoothness_test = spec.unadjusted

            def warm(args):
                ss, ad = args
                if config.adapt_step_size:
                    acc, probe_grads = spec.step_size_probe(k_probe, ss, ld_z, ad.step_size)
                    acc = jnp.mean(acc)
                else:
                    acc, probe_grads = jnp.nan, 0
                pair = None
                if smoothness_test:  # second half of warmup only
                    pair, more = jax.lax.cond(
                        state.i >= config.num_warmup // 2,
                        lambda: smoothness_probe(jax.random.fold_in(k_probe, 1), ss, ld_z),
                        lambda: ((jnp.float32(1.0), jnp.float32(1.0)), jnp.int32(0)),
                    )
                    probe_grads = probe_grads + more
                x_pool = x
                if self._chain_axis is not None:  # vectorized chains share one adaptation
                    x_pool = jax.lax.all_gather(x, self._chain_axis)
                    acc = jax.lax.pmean(acc, self._chain_axis)
                    if pair is not None:
                        pair = jax.lax.pmean(pair, self._chain_axis)
                new_ad, changed = warmup_update(config, state.i, ad, x_pool, acc, pair)

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
            if smoothness_test:
                self._report_smoothness(state.i, adapt.smoothness, sampler_state.logdensity)

        unravel = jax.vmap(self._unravel_fn) if x.ndim == 2 else self._unravel_fn
        return ScoreSampleState(
            i=state.i + 1,
            z=unravel(x),
            potential_energy=log_det_scale(adapt.precond) - sampler_state.logdensity,
            diverging=~ok | flagged,
            num_grad_evals=n_grad,
            num_density_evals=n_dens,
            sampler_state=sampler_state,
            adapt_state=adapt,
            rng_key=key,
        )
