"""Work split over the CPU's cores, in threads.

NumPy releases the GIL inside its loops (a ufunc over an array, a copy, a
file read into an array's buffer), so Python threads running such calls use
several cores at once. numpygpt does this only where one NumPy call at a time
would leave cores idle and the pieces are independent: the tensors of a
weights file (`files.read_safetensors`), the parameters' chunks of an
optimizer step (`optim.AdamW`) and the chunks of GELU over a large activation
(`functional.GELUTanh`). Every piece computes exactly what it would alone, so
the results are the same bits with one thread or many.

The number of threads is the number of CPUs this process may run on, or
`NUMPYGPT_NUM_THREADS` when set (1: everything runs in the calling thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["map_in_threads", "num_threads"]

T = TypeVar("T")
R = TypeVar("R")

_ENV = "NUMPYGPT_NUM_THREADS"
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()
_inside = threading.local()  # set in the pool's threads: work they map runs where it is, never queued behind itself


def num_threads() -> int:
    """How many threads `map_in_threads` uses: `NUMPYGPT_NUM_THREADS`, else the usable CPUs."""
    value = os.environ.get(_ENV)
    if value is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{_ENV} must be a whole number of threads, 1 or more; got {value!r}")
    return n


def map_in_threads(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`[fn(item) for item in items]`, the calls spread over `num_threads()` threads.

    Results come back in the items' order; the first exception a call raises
    is raised here (after the calls already started have finished). Give the
    largest items first: each thread takes the next item as it becomes free.
    """
    items = list(items)
    n = min(num_threads(), len(items))
    if n <= 1 or getattr(_inside, "flag", False):
        return [fn(item) for item in items]
    return list(_executor(n).map(fn, items))


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(n, thread_name_prefix="numpygpt", initializer=_mark), n
        return _pool


def _mark() -> None:
    _inside.flag = True


def _forget_pool() -> None:
    """After fork: the parent's threads do not exist in the child, so its pool must not be used."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)

