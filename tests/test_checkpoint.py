"""Checkpoint and resume (scoresample.checkpoint): a killed run resumes without losing or
duplicating draws, and ends with exactly the draws of an uninterrupted checkpointed run.

The comparisons are exact (same keys, same compiled programs on the same machine), so no Monte
Carlo tolerance is involved; a 2-D correlated Gaussian keeps every run small.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

from scoresample import RandomizedMidpoint
from scoresample.checkpoint import load_checkpoint, run_checkpointed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COV = jnp.array([[1.0, 0.5], [0.5, 2.0]])
MEAN = jnp.array([1.0, -1.0])
NUM_WARMUP, NUM_SAMPLES, EVERY, CHAINS = 100, 300, 50, 2
FIELDS = ("potential_energy",)


def model():
    numpyro.sample("x", dist.MultivariateNormal(MEAN, COV))


def make_mcmc(kernel="rmp"):
    # The per-chain start: each subprocess recompiles the Pathfinder start otherwise (issue 17).
    k = (
        RandomizedMidpoint(model, num_steps=5, preconditioner="laplace")
        if kernel == "rmp"
        else NUTS(model)
    )
    return MCMC(
        k,
        num_warmup=NUM_WARMUP,
        num_samples=NUM_SAMPLES,
        num_chains=CHAINS,
        chain_method="vectorized",
        progress_bar=False,
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A persistent compilation cache for this module only: JAX's cache is process-wide, and
    leaving it on made a later test's cache write crash the interpreter (CI, jax 0.10.2)."""
    yield str(tmp_path_factory.mktemp("xla_cache"))
    jax.config.update("jax_compilation_cache_dir", None)
    from jax._src import compilation_cache

    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """An uninterrupted checkpointed run (RandomizedMidpoint, key 7) and its checkpoint path."""
    path = str(tmp_path_factory.mktemp("reference") / "ref.ckpt")
    run = run_checkpointed(
        make_mcmc(),
        jax.random.key(7),
        path=path,
        every=EVERY,
        extra_fields=FIELDS,
        compilation_cache=cache_dir,
    )
    return path, run


class Interrupt(Exception):
    pass


def interrupt_at(segment):
    def callback(run):
        if run.segment == segment:
            raise Interrupt

    return callback


def check_draws(run):
    x = np.asarray(run.samples["x"])
    assert x.shape == (CHAINS, NUM_SAMPLES, 2)
    assert run.extra_fields["potential_energy"].shape == (CHAINS, NUM_SAMPLES)
    assert np.all(np.isfinite(x)) and not np.any(run.extra_fields["diverging"])
    # No duplicated draw: without divergences no two iterations of a chain are equal (a
    # resumed run repeating a segment would repeat its draws exactly).
    for chain in x:
        assert np.unique(chain, axis=0).shape[0] == NUM_SAMPLES


SCRIPT = textwrap.dedent(
    """
    import sys, time
    import jax
    sys.path.insert(0, {root!r})
    from tests.test_checkpoint import make_mcmc
    from scoresample.checkpoint import run_checkpointed

    def pause(run):
        if run.segment == 2:  # give the test time to kill us with a checkpoint on disk
            time.sleep(600)

    run_checkpointed(make_mcmc(), jax.random.key(7), path={path!r}, every={every},
                     extra_fields=("potential_energy",), callback=pause,
                     compilation_cache={cache!r})
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, cache_dir, reference):
    ref = reference[1]
    path = str(tmp_path / "killed.ckpt")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=ROOT, path=path, every=EVERY, cache=cache_dir))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT)
    try:
        deadline = time.time() + 300
        while not (os.path.exists(path) and load_checkpoint(path).segment >= 2):
            assert proc.poll() is None, "the run to be killed ended early"
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(path)
    assert saved.segment == 2 and saved.samples["x"].shape == (CHAINS, 2 * EVERY, 2)

    seen = []
    mcmc = make_mcmc()  # a fresh object and kernel, as in a new process
    resumed = run_checkpointed(
        mcmc,
        jax.random.key(7),
        path=path,
        every=EVERY,
        extra_fields=FIELDS,
        callback=lambda r: seen.append(r.segment),
        compilation_cache=cache_dir,
    )
    assert seen == [3, 4, 5, 6]  # only the missing segments ran
    assert resumed.complete
    check_draws(ref)
    check_draws(resumed)
    np.testing.assert_array_equal(resumed.samples["x"], ref.samples["x"])
    np.testing.assert_array_equal(
        resumed.extra_fields["potential_energy"], ref.extra_fields["potential_energy"]
    )
    # The kept draws are the ones saved before the kill, followed by new ones.
    np.testing.assert_array_equal(resumed.samples["x"][:, : 2 * EVERY], saved.samples["x"])
    # The MCMC object describes the whole run.
    assert mcmc.get_samples()["x"].shape == (CHAINS * NUM_SAMPLES, 2)
    assert mcmc.get_samples(group_by_chain=True)["x"].shape == (CHAINS, NUM_SAMPLES, 2)
    # And it samples the target (MC error of a mean from 600 correlated draws: < 0.3 at 5 sd).
    np.testing.assert_allclose(mcmc.get_samples()["x"].mean(0), MEAN, atol=0.35)


@pytest.mark.slow
def test_nuts_interrupted_and_resumed(tmp_path, cache_dir):
    """NUTS too, with a raw uint32 key and a shorter last segment (80, 80, 80, 60), interrupted
    by an exception after segment 3."""
    key = jax.random.PRNGKey(11)
    ref = run_checkpointed(
        make_mcmc("nuts"),
        key,
        path=str(tmp_path / "ref.ckpt"),
        every=80,
        extra_fields=FIELDS,
        compilation_cache=cache_dir,
    )
    path = str(tmp_path / "cut.ckpt")
    with pytest.raises(Interrupt):
        run_checkpointed(
            make_mcmc("nuts"),
            key,
            path=path,
            every=80,
            extra_fields=FIELDS,
            callback=interrupt_at(3),
            compilation_cache=cache_dir,
        )
    assert load_checkpoint(path).segment == 3
    assert ref.num_segments == 4
    resumed = run_checkpointed(make_mcmc("nuts"), key, path=path, every=80, extra_fields=FIELDS)
    assert resumed.samples["x"].shape == (CHAINS, NUM_SAMPLES, 2)
    np.testing.assert_array_equal(resumed.samples["x"], ref.samples["x"])
    # The adaptation (step size, mass matrix) is the saved one, not a new warmup.
    np.testing.assert_array_equal(
        resumed.state.adapt_state.step_size, ref.state.adapt_state.step_size
    )


def test_complete_checkpoint_is_returned_and_settings_are_checked(tmp_path, reference):
    path, first = reference
    mcmc = make_mcmc()
    again = run_checkpointed(
        mcmc,
        jax.random.key(7),
        path=path,
        every=EVERY,
        extra_fields=FIELDS,
        callback=lambda r: pytest.fail("a complete run sampled again"),
    )
    assert again.complete and again.num_segments == NUM_SAMPLES // EVERY
    np.testing.assert_array_equal(again.samples["x"], first.samples["x"])
    assert mcmc.num_samples == NUM_SAMPLES and mcmc.get_samples()["x"].shape == (600, 2)
    with pytest.raises(ValueError, match="rng_key"):
        run_checkpointed(mcmc, jax.random.key(1), path=path, every=EVERY, extra_fields=FIELDS)
    with pytest.raises(ValueError, match="every"):
        run_checkpointed(mcmc, jax.random.key(7), path=path, every=25, extra_fields=FIELDS)
    with pytest.raises(ValueError, match="every"):
        run_checkpointed(mcmc, jax.random.key(0), path=str(tmp_path / "x"), every=0)
    thinned = MCMC(
        RandomizedMidpoint(model), num_warmup=5, num_samples=30, thinning=3, progress_bar=False
    )
    with pytest.raises(ValueError, match="thinning"):
        run_checkpointed(thinned, jax.random.key(0), path=str(tmp_path / "y"), every=10)
    # No temporary files are left behind by the atomic writes.
    assert os.listdir(os.path.dirname(path)) == ["ref.ckpt"]
