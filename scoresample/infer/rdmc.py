"""NumPyro kernel for reverse diffusion Monte Carlo (``scoresample.samplers.rdmc``)."""

from __future__ import annotations

from scoresample.infer.base import ScoreSampleKernel, pop_base_kwargs
from scoresample.samplers import rdmc


class RDMC(ScoreSampleKernel):
    """Reverse diffusion Monte Carlo (Huang et al. 2024, ICLR), a drop-in for ``NUTS``.

    One MCMC iteration is one complete reverse OU trajectory per chain, in the whitened
    coordinates of the preconditioner, with scores estimated from the target (no training), so
    consecutive draws are independent; buy many draws with many vectorized chains.

    Step size: there is no outer step size (``step_size_probe`` is None). ``step_size`` is the
    initial inner MALA step multiplier c (ε = c sqrt(1 - a_s²)) and ``target_accept`` the inner
    acceptance target (default 0.75, as SLIPS); the multipliers adapt inside every trajectory
    (burn-in half of each inner chain) and are carried from draw to draw, warmup or not.

    Preconditioner: warmup starts from each chain's MAP and Laplace scale, which on a multimodal
    target is ONE mode with a local scale. rdMC does not need the reference to cover the modes:
    the trajectory starts at N(0, I) after T = 3 units of OU time, and the wide importance
    proposals N(y/a_s, (e^{2s} - 1) I) of the warm start reach every mode; the warmup draws then
    span all modes, and the Welford windows replace the local scale by the global one (measured on
    the 2-D unequal four-mode mixture: tests/test_rdmc.py). ``inflation`` stays 1 by default.

    Args:
        T: initial OU noise level (default 3). num_steps: outer steps K (default 32; posterior
            sds come out 4.5% too wide there, 2.0% at 128: SBC in benchmarks/BENCHMARKS.md).
        s_min: final noise level (default 0.02). grid: "geometric" (default) or "uniform".
        estimator: "langevin" (default: IS warm start + inner chains) or "importance"
            (gradient-free). output: "sample" (default), "mean" or "noisy".
        estimator_kwargs: fields of ``scoresample.score.LangevinParams`` (num_is_samples,
            num_chains, num_inner_steps, method, form, ...; the shorthands inner_steps,
            num_inner_chains, num_is_samples, inner_method, score_form map onto them) or
            ``ImportanceParams`` (num_samples, ...).
        All common parameters of :class:`~scoresample.infer.base.ScoreSampleKernel`.
    """

    default_target_accept = 0.75

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        T=rdmc.DEFAULT_T,
        num_steps=rdmc.DEFAULT_NUM_STEPS,
        s_min=rdmc.DEFAULT_S_MIN,
        grid="geometric",
        estimator="langevin",
        output="sample",
        inner_steps=None,
        num_inner_chains=None,
        num_is_samples=None,
        inner_method=None,
        score_form=None,
        **kwargs,
    ):
        rdmc.validate_params(T, num_steps, s_min, grid, estimator, output)
        base = pop_base_kwargs(kwargs)
        est = dict(kwargs)  # remaining keyword arguments go to the estimator
        for key, value in (
            ("num_inner_steps", inner_steps),
            ("num_chains", num_inner_chains),
            ("num_is_samples" if estimator == "langevin" else "num_samples", num_is_samples),
            ("method", inner_method),
            ("form", score_form),
        ):
            if value is not None:
                est[key] = value
        self._rdmc = dict(
            T=T, num_steps=num_steps, s_min=s_min, grid=grid, estimator=estimator, output=output
        )
        self._est = est
        rdmc.estimator_params(estimator, **self._inner(est, 1.0, 0.75))  # validate now
        super().__init__(model, potential_fn, **base)

    def _inner(self, est, step_size, target_accept):
        if self._rdmc["estimator"] != "langevin":
            return est
        return {"step_size": step_size, "target_accept": target_accept, **est}

    def _build_spec(self):
        est = self._inner(self._est, self._step_size, self._target_accept)
        return rdmc.spec(**self._rdmc, **est)
