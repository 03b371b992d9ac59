"""NumPyro kernels for the multiscale averaging samplers (``scoresample.samplers.multiscale``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from scoresample.infer.base import ScoreSampleKernel, pop_base_kwargs
from scoresample.samplers import multiscale
from scoresample.samplers.base import (
    check_nonnegative_int,
    check_positive,
    value_and_grad_finite,
)

GAUSSIAN_FIT_STEPS = 1000
# One draw is one whole trajectory: a step size implying more slow steps than this would make a
# single iteration run for hours (step_size=1e-7 did not finish in 10 min), so it is an error.
MAX_SLOW_STEPS = 100_000
GAUSSIAN_FIT_BATCH = 8
GAUSSIAN_FIT_LR = 0.05


def gaussian_fit(logdensity_fn, mean, cov, key, num_steps=GAUSSIAN_FIT_STEPS, dense=True):
    """Gaussian variational fit N(m, S Sᵀ) of p ∝ exp(logdensity_fn), started at (mean, cov).

    Maximises the ELBO E_q[log p] + log |det S| (S lower triangular, dense, or diagonal) with
    the reparameterisation x = m + S ξ: Adam (learning rate ``GAUSSIAN_FIT_LR``) on
    ``GAUSSIAN_FIT_BATCH`` draws of ξ per step, for ``num_steps`` steps; the returned (m, Σ) is
    the average of the iterates of the second half (stochastic-gradient noise averages out).
    A non-finite log density or gradient at a draw counts as a zero gradient there. Returns
    (mean, covariance, gradient evaluations); falls back to the start if the fit is not finite.

    Why (eight schools, non-centred, measured): the joint MAP sits at log τ = 3.37 where the
    posterior mean is 0.82 (sd 1.16), so a Laplace reference is centred 2.2 sd away from the
    mass; the annealing cannot make up that distance in its slow horizon and 30 warmup draws
    per chain do not either (τ came out 1.8 sd too high). The fit puts log τ at 0.82 (median of
    20 fits; sd 0.70, a variational fit is narrower than the posterior along a funnel).
    """
    dim = mean.shape[-1]
    dtype = mean.dtype
    if dense:
        chol = jnp.linalg.cholesky(0.5 * (cov + cov.T))
        chol = jnp.where(jnp.all(jnp.isfinite(chol)), chol, jnp.diag(jnp.sqrt(jnp.diagonal(cov))))
        params = (mean, jnp.log(jnp.diagonal(chol)), jnp.tril(chol, -1))
    else:
        params = (mean, 0.5 * jnp.log(cov), jnp.zeros((), dtype))

    def scale_of(p):
        _, log_diag, off = p
        if dense:
            return jnp.tril(off, -1) + jnp.diag(jnp.exp(log_diag))
        return jnp.exp(log_diag)

    def draws(p, xi):
        s = scale_of(p)
        return p[0] + (xi @ s.T if dense else xi * s)

    def surrogate(p, xi, g):
        # Its gradient is the ELBO's: E[∇log p(x)ᵀ ∂x/∂p] + ∂ log|det S| / ∂p.
        return jnp.mean(jnp.sum(jax.lax.stop_gradient(g) * draws(p, xi), axis=-1)) + jnp.sum(p[1])

    opt = optax.adam(GAUSSIAN_FIT_LR)

    def step(carry, key):
        p, state = carry
        xi = jax.random.normal(key, (GAUSSIAN_FIT_BATCH, dim), dtype)
        _, g = jax.vmap(lambda x: value_and_grad_finite(logdensity_fn, x))(draws(p, xi))
        grads = jax.grad(lambda q: -surrogate(q, xi, g))(p)
        updates, state = opt.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        return (p, state), p

    keys = jax.random.split(key, num_steps)
    _, history = jax.lax.scan(step, (params, opt.init(params)), keys)
    avg = jax.tree.map(lambda h: jnp.mean(h[num_steps // 2 :], axis=0), history)
    s = scale_of(avg)
    m_fit = avg[0]
    cov_fit = s @ s.T if dense else s**2
    ok = jnp.all(jnp.isfinite(m_fit)) & jnp.all(jnp.isfinite(cov_fit))
    count = jnp.asarray(num_steps * GAUSSIAN_FIT_BATCH, jnp.int32)
    return jnp.where(ok, m_fit, mean), jnp.where(ok, cov_fit, cov), count


_COMMON_DOC = """
    One MCMC iteration is ONE complete trajectory per chain, started afresh from the reference,
    so consecutive draws are independent; buy draws with many vectorized chains. The kernel is
    per chain (``is_population=False``): the repair of the mode weights (a weighted, resampled
    ensemble of ``fast_chains`` fast chains) lives inside each particle, so chains never
    interact and every chain method works.

    No step size is adapted: ``step_size``, if given, is the slow step h and sets
    ``num_steps = round(horizon / step_size)``. Warmup finds the MAP + Laplace preconditioner,
    moves it to a Gaussian variational fit started there (``gaussian_fit_steps`` Adam steps,
    default 1000 with the Gaussian base, 0 with the Student-t one; 8 draws each; 0 keeps the
    Laplace scale: see ``gaussian_fit`` for why), and
    refines it from the (independent) warmup draws. On a multimodal target the first Laplace
    scale sees one mode only; the wide Newton starts of the fast ensemble (``wide_starts``) find
    the others, the warmup draws span them, and the refined preconditioner covers them (2-D
    four-mode mixture: tests/test_multiscale.py). ``inflation`` widens the reference further.

    Args (defaults and their sources: ``scoresample.samplers.multiscale.make_config``):
        num_steps, horizon, eps, fast_chains, reweight, init, newton_steps, stages, damping,
        schedule, lambda_min, lambda_switch, overdamped, friction_schedule, friction_low,
        friction, num_final_steps, final_step_size, curvature, defensive, resample_threshold,
        wide_starts, wide_scale.
        plain: True gives the paper's version (one fast chain, no weights, reference start).
        All common parameters of :class:`~scoresample.infer.base.ScoreSampleKernel`.
"""


class _Multiscale(ScoreSampleKernel):
    _method = "almc"

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        plain=False,
        step_size=None,
        gaussian_fit_steps=None,
        **kwargs,
    ):
        if gaussian_fit_steps is not None:
            check_nonnegative_int("gaussian_fit_steps", gaussian_fit_steps)
        base_kw = pop_base_kwargs(kwargs, exclude=("step_size",))
        params = dict(kwargs)
        if plain:
            params.update(fast_chains=1, reweight=False, init="reference")
        if step_size is not None:
            h = check_positive("step_size", step_size)
            overdamped = params.get("overdamped", self._method == "cdiff")
            horizon = params.get("horizon", multiscale.default_horizon(self._method, overdamped))
            num_steps = max(1, int(round(float(horizon) / h)))
            if num_steps > MAX_SLOW_STEPS:
                raise ValueError(
                    f"step_size={step_size!r} gives {num_steps} slow steps per trajectory (one "
                    f"trajectory per draw); more than {MAX_SLOW_STEPS} is refused: use a step "
                    f"size of at least {float(horizon) / MAX_SLOW_STEPS:.3g}"
                )
            params["num_steps"] = num_steps
        self._multiscale_config = multiscale.make_config(self._method, **params)
        if gaussian_fit_steps is None:
            # The Student-t reference is normalised to a Laplace-whitened target (module
            # docstring of scoresample.samplers.multiscale): keep the Laplace scale there (with
            # the fit, the t_3 test's 5% quantile came out 83% off instead of 5%, measured).
            student = self._multiscale_config.base == "student_t"
            gaussian_fit_steps = 0 if student else GAUSSIAN_FIT_STEPS
        self._gaussian_fit_steps = gaussian_fit_steps
        super().__init__(model, potential_fn, **base_kw)

    def _laplace(self, logdensity_x, x0):
        mode, cov, count = super()._laplace(logdensity_x, x0)
        if self._gaussian_fit_steps == 0:
            return mode, cov, count
        # A fixed key seeds the fit's draws (the chain's key is not passed down to here): the
        # preconditioner is a deterministic function of the MAP and Laplace covariance.
        key = jax.random.key(0)
        mean, cov, n_fit = gaussian_fit(
            logdensity_x, mode, cov, key, self._gaussian_fit_steps, self._dense
        )
        return mean, cov, count + n_fit

    def _build_spec(self):
        c = self._multiscale_config
        return multiscale.spec(
            c.method, **{k: getattr(c, k) for k in c.__dataclass_fields__ if k != "method"}
        )


class MultALMC(_Multiscale):
    __doc__ = (
        """Multiscale annealed Langevin (MultALMC), a drop-in for ``numpyro.infer.NUTS``.

    Cordero-Encinar, Duncan, Reich & Akyildiz (2025), "Sampling by averaging: a multiscale
    approach to score estimation": the slow variable anneals along μ_λ = Law(sqrt(λ) X +
    sqrt(1-λ) Z) (λ: λ_δ → 1 - λ_δ, sin² schedule) with underdamped Langevin (OBABO; or
    ``overdamped=True``), its score averaged on the fly by fast chains advanced one SK-ROCK step
    per slow step. ``base="student_t"`` with ``tail_index`` α takes a Student-t reference for
    heavy-tailed targets (fast process: the normalised modified Itô diffusion of the module
    docstring of ``scoresample.samplers.multiscale``).
"""
        + _COMMON_DOC
    )

    _method = "almc"

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        overdamped=False,
        base="gaussian",
        tail_index=3.0,
        **kwargs,
    ):
        super().__init__(
            model,
            potential_fn,
            overdamped=overdamped,
            base=base,
            tail_index=tail_index,
            **kwargs,
        )


class MultCDiff(_Multiscale):
    __doc__ = (
        """Multiscale reverse-diffusion sampler (MultCDiff), a drop-in for ``numpyro.infer.NUTS``.

    Cordero-Encinar, Duncan, Reich & Akyildiz (2025): the reverse OU process of §2 (exponential
    integrator, geometric grid in s from ``horizon`` = 3 to s_min with a_{s_min}² = 1 - λ_δ),
    with the posterior mean of the denoising posterior replaced by the fast ensemble.
    ``overdamped=False`` runs the reverse of the kinetic (critically damped) OU process instead
    (Gaussian base only; module docstring of ``scoresample.samplers.multiscale``).
"""
        + _COMMON_DOC
    )

    _method = "cdiff"
