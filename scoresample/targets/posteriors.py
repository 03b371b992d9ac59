"""Real posteriors: eight schools (non-centred, posteriordb reference) and German credit."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from scoresample.targets.base import Target
from scoresample.targets.references import reference_summary, shared_dir

EIGHT_SCHOOLS = "eight_schools-eight_schools_noncentered"
# posteriordb's data (Rubin 1981), shipped so the model runs without shared/.
EIGHT_SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools_model(sigma, y=None):
    """posteriordb eight_schools_noncentered: mu ~ N(0, 5), tau ~ HalfCauchy(5),
    theta_trans ~ N(0, 1), theta = mu + tau theta_trans, y ~ N(theta, sigma)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_trans)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools() -> Target:
    """Eight schools with the posteriordb reference summary in ``extra['reference']``:
    {"mu": (mean, sd), "tau": ..., "theta[1]"...} in the constrained space."""
    sigma, y = jnp.asarray(EIGHT_SCHOOLS_SIGMA), jnp.asarray(EIGHT_SCHOOLS_Y)

    def logdensity_fn(x):
        # flat unconstrained (mu, log tau, theta_trans[8]), with the log-Jacobian of tau = e^s.
        mu, log_tau, tt = x[0], x[1], x[2:]
        tau = jnp.exp(log_tau)
        lp = dist.Normal(0.0, 5.0).log_prob(mu) + dist.HalfCauchy(5.0).log_prob(tau) + log_tau
        lp = lp + jnp.sum(dist.Normal(0.0, 1.0).log_prob(tt))
        return lp + jnp.sum(dist.Normal(mu + tau * tt, sigma).log_prob(y))

    return Target(
        "eight_schools",
        10,
        logdensity_fn,
        eight_schools_model,
        model_args=(sigma, y),
        site="",
        extra={"reference": reference_summary(EIGHT_SCHOOLS)},
        to_flat=lambda smp: np.concatenate(
            [
                np.asarray(smp["mu"])[..., None],
                np.log(np.asarray(smp["tau"]))[..., None],
                np.asarray(smp["theta_trans"]),
            ],
            axis=-1,
        ),
    )


def eight_schools_constrained(samples: dict) -> dict[str, np.ndarray]:
    """Map NumPyro samples {mu, tau, theta} to the reference names {mu, tau, theta[1..8]}."""
    out = {"mu": np.asarray(samples["mu"]).ravel(), "tau": np.asarray(samples["tau"]).ravel()}
    theta = np.asarray(samples["theta"]).reshape(-1, 8)
    for j in range(8):
        out[f"theta[{j + 1}]"] = theta[:, j]
    return out


def german_credit_data():
    """(X (1000, 25) standardised with a bias column last, y in {0, 1}) from shared/data."""
    raw = np.loadtxt(shared_dir() / "data" / "uci" / "german.data-numeric")
    features, labels = raw[:, :-1], raw[:, -1] - 1.0
    features = (features - features.mean(0)) / features.std(0)
    x = np.concatenate([features, np.ones((features.shape[0], 1))], axis=1)
    return x.astype(np.float32), labels.astype(np.float32)


def german_credit_model(x, y=None):
    """Bayesian logistic regression (inference-gym's German credit): w ~ N(0, I_25)."""
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def german_credit() -> Target:
    x, y = german_credit_data()
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def logdensity_fn(w):
        logits = xj.astype(w.dtype) @ w
        return -0.5 * jnp.sum(w**2) + jnp.sum(yj * logits - jnp.logaddexp(0.0, logits))

    return Target(
        "german_credit", 25, logdensity_fn, german_credit_model, model_args=(xj, yj), site="w"
    )
