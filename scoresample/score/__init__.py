"""Score estimators: pure functions (rng_key, x, t, logdensity_fn, params) -> (score, info)."""

from scoresample.score import ensemble, follmer
from scoresample.score.importance import ImportanceInfo, ImportanceParams, importance_score
from scoresample.score.langevin import LangevinInfo, LangevinParams, langevin_score

__all__ = ["ensemble", "follmer"]
__all__ += ["ImportanceInfo", "ImportanceParams", "importance_score"]
__all__ += ["LangevinInfo", "LangevinParams", "langevin_score"]
