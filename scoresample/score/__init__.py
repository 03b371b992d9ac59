"""Score estimators: pure functions (rng_key, x, t, logdensity_fn, params) -> (score, info)."""

from scoresample.score import ensemble, follmer

__all__ = ["ensemble", "follmer"]
