"""NumPyro kernels for the multiscale averaging samplers (``scoresample.samplers.multiscale``)."""

from __future__ import annotations

from scoresample.infer.base import ScoreSampleKernel
from scoresample.samplers import multiscale
from scoresample.samplers.base import check_positive

_COMMON_DOC = """
    One MCMC iteration is ONE complete trajectory per chain, started afresh from the reference,
    so consecutive draws are independent; buy draws with many vectorized chains. The kernel is
    per chain (``is_population=False``): the repair of the mode weights (a weighted, resampled
    ensemble of ``fast_chains`` fast chains) lives inside each particle, so chains never
    interact and every chain method works.

    No step size is adapted: ``step_size``, if given, is the slow step h and sets
    ``num_steps = round(horizon / step_size)``. Warmup finds the MAP + Laplace preconditioner and
    refines it from the (independent) warmup draws; for a multimodal target give an
    ``inflation`` (or a preconditioner that spans the modes), since a per-chain Laplace scale
    sees one mode only.

    Args (defaults and their sources: ``scoresample.samplers.multiscale.make_config``):
        num_steps, horizon, eps, fast_chains, reweight, init, newton_steps, stages, damping,
        schedule, lambda_min, lambda_switch, overdamped, friction_schedule, friction_low,
        friction, num_final_steps, final_step_size, curvature, defensive, resample_threshold.
        plain: True gives the paper's version (one fast chain, no weights, reference start).
        All common parameters of :class:`~scoresample.infer.base.ScoreSampleKernel`.
"""


class _Multiscale(ScoreSampleKernel):
    _method = "almc"

    def __init__(self, model=None, potential_fn=None, *, plain=False, step_size=None, **kwargs):
        base_keys = {
            "init_strategy",
            "adapt_step_size",
            "target_accept",
            "preconditioner",
            "adapt_preconditioner",
            "dense_mass",
            "inflation",
            "map_iters",
        }
        base_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in base_keys}
        params = dict(kwargs)
        if plain:
            params.update(fast_chains=1, reweight=False, init="reference")
        if step_size is not None:
            h = check_positive("step_size", step_size)
            horizon = params.get("horizon", 5.0 if self._method == "almc" else 3.0)
            params["num_steps"] = max(1, int(round(float(horizon) / h)))
        self._config = multiscale.make_config(self._method, **params)
        super().__init__(model, potential_fn, **base_kw)

    def _build_spec(self):
        c = self._config
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
    with the posterior mean of the denoising posterior replaced by the fast ensemble. Only the
    overdamped reverse OU is implemented.
"""
        + _COMMON_DOC
    )

    _method = "cdiff"
