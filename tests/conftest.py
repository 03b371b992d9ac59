"""Shared test setup: float32 (the default numeric path), 4 host devices so that
chain_method="parallel" and sharding run for real on CPU; seeds are fixed in each test."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)
