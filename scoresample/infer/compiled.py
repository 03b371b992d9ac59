"""Compiled functions kept across ``MCMC.run`` calls and kernel instances.

The warmup start (Pathfinder paths or MAP search, then the chains' initial states) takes seconds
to compile and milliseconds to run. NumPyro calls ``kernel.init`` on every ``run``, so a jit of a
fresh closure over the model's arguments recompiled it every time (7-9 s per run). Here the
model's array arguments are arguments of the compiled function, and the function is kept under a
key made of everything else it depends on: the kernel's class and constructor settings, the
resolved warmup choices, the structure of the parameters, and the non-array model arguments
(Python numbers, strings: they may steer the model's control flow, so they are part of the key).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable

import jax
import numpy as np

MAX_ENTRIES = 32  # compiled starts kept (least recently used dropped)


def _is_array(x) -> bool:
    return isinstance(x, (np.ndarray, jax.Array))


def freeze(value) -> Hashable:
    """A hashable stand-in for a setting: containers by content, arrays by shape, dtype and bytes,
    anything else as itself (functions by identity). TypeError when it cannot be hashed."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    if _is_array(value):
        a = np.asarray(value)
        return ("array", a.shape, a.dtype.str, a.tobytes())
    hash(value)
    return (type(value), value)  # 1 and 1.0 are equal but may steer a model differently


def split_arrays(tree) -> tuple[Hashable, list, Callable]:
    """(key of the non-array part, the array leaves, rebuild(array leaves) -> tree)."""
    leaves, treedef = jax.tree.flatten(tree)
    is_arr = [_is_array(x) for x in leaves]
    static = tuple(None if a else freeze(x) for a, x in zip(is_arr, leaves))
    arrays = [x for a, x in zip(is_arr, leaves) if a]
    template = [None if a else x for a, x in zip(is_arr, leaves)]  # holds no array

    def rebuild(new_arrays):
        it = iter(new_arrays)
        return jax.tree.unflatten(treedef, [next(it) if a else x for a, x in zip(is_arr, template)])

    return (treedef, tuple(is_arr), static), arrays, rebuild


def structure_key(tree) -> Hashable:
    """Tree structure, shapes and dtypes of a pytree of arrays."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves)


class CompiledCache:
    """A small LRU of compiled functions keyed by hashable settings."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], Any]):
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]
        self.misses += 1
        fn = self._entries[key] = build()
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return fn

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0


INIT_CACHE = CompiledCache()
