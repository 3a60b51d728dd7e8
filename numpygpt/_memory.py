"""Freed memory kept for the next step: glibc's malloc asked not to give big blocks back.

glibc serves each allocation above its mmap threshold (a few MiB, 32 MiB at
most) with a fresh `mmap` and gives it back with `munmap` when it is freed.
A training loop frees and remakes the same large arrays every step (for
GPT-2 small at batch (2, 256): the logits and the cross-entropy's buffer,
103 MB each, the weight gradients of the embedding and the output head,
154 MB each), so every step the kernel hands out fresh zeroed pages, one
fault per page. On a virtual machine whose host takes back the pages a guest
frees (free page reporting, a couple of seconds after the free), the next
touch of such a page waits for the host as well: in a train step at context
1024, filling a fresh (1024, 50257) float32 array (206 MB) took 0.55 s,
against 13 ms for memory the process had kept; the same fill right after a
free, before the host took the pages, 25 ms.

So when numpygpt is imported it sets two of glibc's `mallopt` parameters
for the process:
    M_MMAP_MAX = 0             large blocks come from the heap as well, not from mmap
    M_TRIM_THRESHOLD = 2³¹ - 1 the heap is not shrunk when its top is freed
and a block a step frees is there for the next step, already paged in. Measured
in one process each, alternating (float32, GPT-2 small): the train step at
batch (2, 256) 3.17-3.74 s -> 2.79-3.26 s, at context 1024 6.94-7.81 s ->
6.31-6.52 s, the no-grad forward at context 1024 2.29-2.44 s -> 2.05-2.21 s.

The cost: the process keeps its peak memory until it exits (the heap is
never handed back), and the peak itself can be a little higher, since big
blocks now share one heap (the train step above: 2,752 -> 2,813 MiB, with
AdamW's moments in one block per dtype; 2,843 MiB with a block per parameter).
`NUMPYGPT_KEEP_FREED_MEMORY=0` leaves malloc as it was. Nothing is done
where the C library is not glibc (macOS, musl): `mallopt` is glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_ENV = "NUMPYGPT_KEEP_FREED_MEMORY"
_M_TRIM_THRESHOLD = -1      # glibc's malloc.h
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1        # mallopt takes a C int


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks (see the module doc); True if it took both settings."""
    if os.environ.get(_ENV, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):      # not glibc: musl has no mallopt to speak of
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    took = [mallopt(_M_MMAP_MAX, 0), mallopt(_M_TRIM_THRESHOLD, _INT_MAX)]  # both asked, whatever the first said
    return all(took)
