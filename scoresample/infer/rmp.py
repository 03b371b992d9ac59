"""NumPyro kernel for randomized-midpoint Langevin (``scoresample.samplers.rmp``)."""

from __future__ import annotations

from scoresample.infer.base import ScoreSampleKernel
from scoresample.samplers import rmp


class RandomizedMidpoint(ScoreSampleKernel):
    """Randomized-midpoint Langevin Monte Carlo, a drop-in for ``numpyro.infer.NUTS``.

    Shen & Lee (2019), "The randomized midpoint method for log-concave sampling"; the kinetic
    step as in Yu, Karagulyan & Dalalyan (2023/24). Unadjusted (no Metropolis test): the bias is
    controlled by the step size, which warmup adapts by dual averaging towards ``target_accept``
    of a one-step HMC test that is computed, not applied (``scoresample.adapt.step_size``).

    One MCMC iteration is ``num_steps`` Langevin steps (2 gradients each) of one chain. A step
    that meets a non-finite density is undone and the velocity reversed (the draw is flagged
    ``diverging``); see ``scoresample.samplers.rmp.build_kernel``. Warmup starts from the shared
    Pathfinder reference when the model's priors are proper (``preconditioner="auto"``; before,
    each chain's own MAP + Laplace start and its own adaptation: on eight schools one chain of
    four then got a step size 2x the others' and a log tau scale 2x the posterior's, and was
    thrown to log tau = -32, seed 2 at 4 x (500 + 1500)); vectorized chains pool their
    adaptation.

    Args:
        friction: γ in whitened coordinates. None (default): tuned in warmup to 1/RMS of the
            whitened draws' scales (``scoresample.adapt.friction``: the minimiser of the mean
            integrated autocorrelation time of x² on a Gaussian; ≈ 1 once the preconditioner
            fits); a number fixes it (the papers' setting; 1 was the earlier default).
        num_steps: steps per MCMC iteration (default 5, i.e. 10 gradients per draw, about what
            NUTS spends on these posteriors; measured with `benchmarks.rmp`, 32 chains, against 10
            steps: warmup gradients 5.5k vs 10.5k per chain at 500 warmup iterations (NUTS
            5.4k-6.4k), min bulk ESS per gradient 0.055 / 0.072 / 0.055 vs 0.043 / 0.067 /
            0.062 on eight schools / German credit / the κ = 1e4 Gaussian; checked on eight
            schools seeds 0-7 at 4 x (500 + 1500): max |z| 0.055, max sd error 8.7%).
        variant: "kinetic" (default) or "overdamped".
        target_accept: default 0.97, measured: on eight schools (non-centred) 0.9 left one of
            four chains with a step size that diverged (sd of theta[1] +90%), 0.97 and 0.99 gave
            |z| < 0.03 and sd errors < 3% for every parameter; on the κ = 100 Gaussian without
            preconditioning (tests/test_adapt.py) 0.97 keeps every sd within 3%. SBC (S = 1000,
            benchmarks/BENCHMARKS.md): sds 1.1% too wide at 0.97, 0.5% at 0.995 (unadjusted).
        All common parameters of :class:`~scoresample.infer.base.ScoreSampleKernel`.
    """

    default_target_accept = 0.97

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        friction=None,
        num_steps=5,
        variant="kinetic",
        **kwargs,
    ):
        given = rmp.DEFAULT_FRICTION if friction is None else friction
        rmp.validate_params(None, given, num_steps, variant)
        self._friction = None if friction is None else float(friction)
        self._num_steps = num_steps
        self._variant = variant
        super().__init__(model, potential_fn, **kwargs)

    def _build_spec(self):
        return rmp.spec(self._friction, self._num_steps, self._variant)
