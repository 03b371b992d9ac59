"""Shared test setup: float32 (the default numeric path), 4 host devices so that
chain_method="parallel" and sharding run for real on CPU; seeds are fixed in each test."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every executable holds a few memory
    mappings; one process running the whole suite reached the kernel's limit (vm.max_map_count,
    65530) and XLA crashed (segfault) while compiling."""
    yield
    jax.clear_caches()
    gc.collect()
