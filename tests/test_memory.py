"""numpygpt/_memory.py: after `import numpygpt`, a big block freed and asked for again is the
same memory, already paged in (no fresh page faults); NUMPYGPT_KEEP_FREED_MEMORY=0 leaves malloc alone."""

import os
import subprocess
import sys

import pytest

import numpygpt  # noqa: F401 - the import is what sets malloc up
from numpygpt import _memory

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                           reason="mallopt is glibc's")

# a 64 MiB block, above glibc's largest mmap threshold (32 MiB): by default it is mmapped and unmapped
_CHECK = """
import resource, numpy as np{imports}
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(2**24, dtype=np.float32); del a
before = faults()
b = np.ones(2**24, dtype=np.float32)
print(faults() - before)
"""


def _fresh_faults(env_value: str | None, imports: str) -> int:
    env = dict(os.environ)
    env.pop(_memory._ENV, None)
    if env_value is not None:
        env[_memory._ENV] = env_value
    out = subprocess.run([sys.executable, "-c", _CHECK.format(imports=imports)], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@glibc
def test_a_freed_big_block_comes_back_paged_in():
    kept = _fresh_faults(None, "\nimport numpygpt")
    assert kept < 16, f"{kept} page faults re-filling a freed 64 MiB block: it was not kept"


@glibc
def test_the_default_malloc_without_numpygpt_or_when_turned_off():
    # the contrast that makes the test above mean something: 64 MiB of fresh pages fault
    # (32 faults of 2 MiB pages with transparent huge pages, 16,384 of 4 KiB ones without)
    assert _fresh_faults(None, "") >= 16
    assert _fresh_faults("0", "\nimport numpygpt") >= 16


@glibc
def test_keep_freed_memory_reports_what_it_did(monkeypatch):
    assert _memory.keep_freed_memory() is True
    monkeypatch.setenv(_memory._ENV, "0")
    assert _memory.keep_freed_memory() is False

