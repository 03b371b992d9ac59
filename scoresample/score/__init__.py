"""Score estimators: pure functions (rng_key, x, t, logdensity_fn, params) -> (score, info)."""
