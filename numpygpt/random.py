"""PyTorch's CPU random number generator, rebuilt on NumPy.

`numpygpt.manual_seed(123)` followed by the seed's code gives the numbers
`torch.manual_seed(123)` gives: the same weights from the same construction
order, the same dropout masks, the same shuffled batches. No PyTorch needed.

The engine is the one PyTorch's CPU generator uses: a standard 32-bit
Mersenne Twister (MT19937) seeded with `init_genrand(seed)`, which NumPy's
`MT19937` runs in C (`random_raw`). On top of its 32-bit words, each
distribution is PyTorch's own transformation (ATen's `TransformationHelper.h`,
`DistributionsHelper.h`, `cpu/DistributionTemplates.h`):

    random()          one 32-bit word
    random64()        two words, the first one high
    uniform float32   (random() & (2²⁴ - 1)) · 2⁻²⁴, scaled to [from, to) in float64,
                      then rounded to float32
    uniform float64   (random64() & (2⁵³ - 1)) · 2⁻⁵³, scaled to [from, to)
    normal, ≥ 16      fill with uniforms, then Box–Muller on each block of 16:
      contiguous      u1 = 1 - x[i], u2 = x[i + 8] (i < 8),
                      x[i] = √(-2 ln u1) cos(2π u2), x[i + 8] = √(-2 ln u1) sin(2π u2);
                      when the size is not a multiple of 16 the last 16 values are
                      drawn again and transformed as one more block
    normal, < 16      one float64 normal at a time: u1, u2 uniform float64,
                      r = √(-2 log1p(-u2)), value r cos(2π u1); r sin(2π u1) is kept
                      for the next draw
    randint           random() (random64() for ranges of 2³² or more) mod range, + low
    randperm(n)       Fisher–Yates: for i < n - 1, swap i with i + random() mod (n - i)
    bernoulli(p)      1 where a uniform float64 is below p
    exponential       -log1p(-u), u uniform float64 (multinomial's draws)

float32 normals agree with PyTorch's to within a few ulp (PyTorch computes
log, cos and sin with its own vectorised float32 routines); everything else
is bit for bit (float64 log, log1p, cos and sin as the C library computes
them, see `_c_library`).

Dropout has a second stream, for the printouts of older PyTorch releases on
x86 (the seed's among them), whose CPU dropout used MKL's MCG31m1 generator:
one random() word seeds it, x₀ = seed mod (2³¹ - 1), xₙ₊₁ = 1132489760 · xₙ
mod (2³¹ - 1), uₙ = xₙ / (2³¹ - 1), keep where uₙ < 1 - p. Choose it with
`set_dropout_stream("mkl")`; the default, "pytorch", is PyTorch 2's.

A generator's state is a plain dict (JSON-able: the 624 MT19937 words, the
position and the cached normal), so checkpoints save it and a resumed run
draws exactly the numbers an uninterrupted one would.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Sequence

import numpy as np

from . import _checks

DEFAULT_SEED = 67280421310721  # the seed PyTorch's default generator starts from
_CHUNK = 1 << 20               # draws are made (and transformed) this many at a time
_MCG31_M = 2**31 - 1           # MKL's MCG31m1: modulus and multiplier
_MCG31_A = 1132489760
DROPOUT_STREAMS = ("pytorch", "mkl")
_dropout_stream = "pytorch"


def _short(value: Any) -> str:
    """`repr(value)`, cut to about 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _init_genrand(seed: int) -> np.ndarray:
    """MT19937's 624 state words for a 32-bit seed (Matsumoto and Nishimura's init_genrand)."""
    key = np.empty(624, dtype=np.uint32)
    key[0] = x = seed & 0xFFFFFFFF
    for j in range(1, 624):
        x = (1812433253 * (x ^ (x >> 30)) + j) & 0xFFFFFFFF
        key[j] = x
    return key


def _shape(size: Any) -> tuple[int, ...]:
    return (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(n) for n in size)


class Generator:
    """A random number generator with PyTorch's `torch.Generator` (CPU) numbers.

        g = numpygpt.Generator().manual_seed(123)
        numpygpt.randn(3, generator=g)       # torch.randn(3, generator=torch.Generator().manual_seed(123))

    The methods below draw NumPy arrays; the factories (`numpygpt.rand`,
    `randn`, `randint`, `randperm`), layer initialisation and dropout call them.
    Differs from PyTorch: `get_state()` returns a JSON-able dict, not a ByteTensor.
    """

    def __init__(self, device: str = "cpu") -> None:
        if device != "cpu":
            raise ValueError(f"numpygpt generators run on the CPU only, got device {device!r}")
        self._bits = np.random.MT19937()
        self._seed = DEFAULT_SEED
        self._next_normal: float | None = None  # the second Box–Muller value of a float64 normal
        self.manual_seed(DEFAULT_SEED)

    # -- seeding and state -------------------------------------------------------------
    def manual_seed(self, seed: int) -> Generator:
        """Seed as `torch.Generator.manual_seed`: MT19937's init_genrand with the seed's low 32 bits."""
        seed = _checks.integer(seed, "seed", minimum=0)
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": _init_genrand(seed), "pos": 624}}
        self._seed, self._next_normal = seed, None
        return self

    def seed(self) -> int:
        """Seed from the operating system's randomness; returns the seed used."""
        seed = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict[str, Any]:
        """The state as a JSON-able dict: seed, MT19937 words and position, cached normal."""
        mt = self._bits.state["state"]
        return {"algorithm": "mt19937", "seed": self._seed, "key": [int(k) for k in mt["key"]],
                "pos": int(mt["pos"]), "next_normal": self._next_normal}

    def set_state(self, state: Any) -> Generator:
        """Restore a state from `get_state()`; ValueError if it is not one."""
        if not isinstance(state, dict) or state.get("algorithm") != "mt19937":
            old = isinstance(state, dict) and state.get("bit_generator") == "PCG64"
            raise ValueError("not a valid generator state: " + (
                "it is the PCG64 state of numpygpt before 0.2, whose generator was not PyTorch's; "
                "load the checkpoint with restore_rng=False" if old else "expected a dict from get_state()"))
        try:
            words, pos, seed, normal = state["key"], state["pos"], state["seed"], state["next_normal"]
            # checked word by word before NumPy sees them: a float, a bool or 2**70 is refused, not cast
            if (not isinstance(words, list) or len(words) != 624
                    or not all(_checks.is_integer(w) and 0 <= w <= 0xFFFFFFFF for w in words)):
                raise ValueError(f"key must be a list of 624 integers in [0, 2**32), got {_short(words)}")
            if not _checks.is_integer(pos) or not 0 <= pos <= 624:
                raise ValueError(f"pos must be an integer in [0, 624], got {_short(pos)}")
            if not _checks.is_integer(seed) or not 0 <= seed < 2**64:
                raise ValueError(f"seed must be an integer in [0, 2**64), got {_short(seed)}")
            if not (normal is None or (isinstance(normal, float) and np.isfinite(normal))):
                raise ValueError(f"next_normal must be a finite float or None, got {_short(normal)}")
            key = np.array(words, dtype=np.uint32)
            self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": int(pos)}}
        except KeyError as e:
            raise ValueError(f"not a valid generator state: it has no {e} entry") from None
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"not a valid generator state: {e}") from None
        seed = int(seed)
        self._seed, self._next_normal = seed, normal
        return self

    # -- the engine's words ---------------------------------------------------------------
    def random32(self, n: int) -> np.ndarray:
        """n 32-bit words (as uint64), PyTorch's `random()`."""
        return self._bits.random_raw(n)

    def random64(self, n: int) -> np.ndarray:
        """n 64-bit words from two 32-bit words each, the first one high, PyTorch's `random64()`."""
        words = self._bits.random_raw(2 * n)
        return (words[0::2] << np.uint64(32)) | words[1::2]

    def _unit(self, n: int, dtype: np.dtype) -> np.ndarray:
        """n uniforms in [0, 1) as float64 values: 24 random bits for float32, 53 for float64."""
        if dtype == np.float32:
            return (self.random32(n) & np.uint64(0xFFFFFF)) * 2.0**-24
        return (self.random64(n) & np.uint64((1 << 53) - 1)) * 2.0**-53

    def _fill(self, shape: Sequence[int], dtype: Any, make: Any) -> np.ndarray:
        """An array of `shape` filled in order, `make(n)` values at a time (bounded temporaries)."""
        out = np.empty(_shape(shape), dtype=dtype)
        flat = out.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            stop = min(start + _CHUNK, flat.size)
            flat[start:stop] = make(stop - start)
        return out

    # -- distributions ---------------------------------------------------------------------
    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
        """U[low, high), as `torch.Tensor.uniform_` (and `torch.rand` for [0, 1))."""
        dtype = _float_dtype(dtype)
        low_t, high_t = dtype.type(low), dtype.type(high)
        width, start = float(high_t - low_t), float(low_t)  # PyTorch takes (to - from) in the tensor's dtype
        if dtype == np.float32:  # u · width + start in float64, then one rounding to float32
            return self._fill(shape, dtype, lambda n: self._unit(n, dtype) * width + start)
        return self._fill(shape, dtype, lambda n: _fused_multiply_add(self._unit(n, dtype), width, start))

    def normal(self, shape: Sequence[int], mean: float = 0.0, std: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
        """N(mean, std²), as `torch.Tensor.normal_` and `torch.randn` on a contiguous tensor."""
        dtype = _float_dtype(dtype)
        size = math.prod(_shape(shape))
        if size < 16:
            return np.array([self._normal_double(mean, std) for _ in range(size)]).astype(dtype).reshape(_shape(shape))
        out = self._fill(shape, dtype, lambda n: self._unit(n, dtype))  # uniforms first, all of them
        flat = out.reshape(-1)
        blocks = size // 16 * 16
        for start in range(0, blocks, _CHUNK):  # _CHUNK is a multiple of 16
            stop = min(start + _CHUNK, blocks)
            flat[start:stop] = _box_muller_16(flat[start:stop], mean, std)
        if size % 16:  # the last 16 again, from fresh uniforms
            flat[-16:] = _box_muller_16(self._unit(16, dtype).astype(dtype), mean, std)
        return out

    def _normal_double(self, mean: float, std: float) -> float:
        """One float64 normal (PyTorch's `normal_distribution<double>`), the second Box–Muller value cached."""
        if self._next_normal is not None:
            value, self._next_normal = self._next_normal, None
            return value * std + mean
        u1, u2 = self._unit(2, np.dtype(np.float64))
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self._next_normal = r * math.sin(theta)
        return r * math.cos(theta) * std + mean

    def randint(self, low: int, high: int, shape: Sequence[int]) -> np.ndarray:
        """Integers in [low, high), as `torch.randint` (int64)."""
        span = int(high) - int(low)
        if span <= 0:
            raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
        words = self.random64 if span >= 2**32 else self.random32
        return self._fill(shape, np.int64, lambda n: (words(n) % np.uint64(span)).astype(np.int64) + int(low))

    def randperm(self, n: int) -> np.ndarray:
        """A random permutation of 0 .. n-1 (int64), as `torch.randperm` (Fisher–Yates)."""
        n = _checks.integer(n, "randperm: n", minimum=0)
        perm = np.arange(n, dtype=np.int64)
        if n < 2:
            return perm
        offsets = self.random32(n - 1) % np.arange(n, 1, -1, dtype=np.uint64)  # z_i = random() mod (n - i)
        items = perm.tolist()
        for i, z in enumerate(offsets.tolist()):
            j = i + z
            items[i], items[j] = items[j], items[i]
        return np.array(items, dtype=np.int64)

    def random_int64(self) -> int:
        """One int in [0, 2⁶³), as `torch.empty((), dtype=torch.int64).random_()` (sampler seeds)."""
        return int(self.random64(1)[0] % np.uint64(2**63))

    def bernoulli(self, shape: Sequence[int], p: float) -> np.ndarray:
        """A bool array, True with probability p, as `torch.Tensor.bernoulli_(p)`."""
        return self._fill(shape, bool, lambda n: self._unit(n, np.dtype(np.float64)) < p)

    def bernoulli_mkl(self, shape: Sequence[int], p: float) -> np.ndarray:
        """The same from MKL's MCG31m1 stream, as older PyTorch releases on x86 drew dropout masks."""
        shape = _shape(shape)
        return (_mcg31(int(self.random32(1)[0]), math.prod(shape)) < p).reshape(shape)

    def exponential(self, shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
        """Exp(1) samples, as `torch.Tensor.exponential_()`."""
        dtype = _float_dtype(dtype)
        return self._fill(shape, dtype, lambda n: -_math("log1p", -self._unit(n, np.dtype(np.float64))))

    def multinomial(self, probs: np.ndarray, num_samples: int = 1) -> np.ndarray:
        """Indices drawn from each row of `probs` without replacement, as `torch.multinomial`:
        the largest p / q, q ~ Exp(1) (the exponential form of the Gumbel-max trick)."""
        num_samples = _checks.integer(num_samples, "num_samples")
        if num_samples > probs.shape[-1]:
            raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement "
                             f"from {probs.shape[-1]} categories")
        keys = probs / self.exponential(probs.shape, probs.dtype)
        if num_samples == 1:
            return np.argmax(keys, axis=-1)[..., None]
        return np.argsort(-keys, axis=-1, kind="stable")[..., :num_samples]


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"random floats are float32 or float64, got {dtype}")
    return dtype


def _fused_multiply_add(x: np.ndarray, w: float, b: float) -> np.ndarray:
    """x · w + b with one rounding, as the compiled `x * (to - from) + from` of PyTorch (an FMA).

    Dekker's exact product splits x · w into p + e (Veltkamp's 27-bit halves),
    Knuth's two-sum splits p + b into s + t, and s + (t + e) rounds once more:
    the correctly rounded value but for ties far rarer than one in a million.
    """
    split = 134217729.0  # 2^27 + 1
    p = x * w
    xh = x * split
    xh = xh - (xh - x)
    xl = x - xh
    wh = w * split
    wh = wh - (wh - w)
    wl = w - wh
    e = ((xh * wh - p) + xh * wl + xl * wh) + xl * wl  # x · w - p, exactly
    s = p + b
    bb = s - p
    t = (p - (s - bb)) + (b - bb)                       # p + b - s, exactly
    return s + (t + e)


@functools.cache
def _c_library(name: str) -> Any:
    """NumPy's float64 `name` (log, log1p, cos, sin) if it gives the C library's bits on this CPU,
    else the C library's function number by number.

    PyTorch computes its float64 draws with the C library's scalar functions (std::log, ...).
    NumPy computes most float64 functions with the same library, but on CPUs with AVX-512 it runs
    SIMD routines of its own for some of them, whose last bit sometimes differs (there, NumPy's log
    differed from math.log on 0.3% of uniforms, log1p on 7%). Which case holds is tested once on
    4,096 numbers; the number-by-number path costs about 80 ns a number."""
    ufunc, scalar = getattr(np, name), getattr(math, name)
    probe = np.linspace(1e-3, 1.0, 4096) * (-0.999 if name == "log1p" else 1.0)  # inside the domain
    if all(float(a) == scalar(float(b)) for a, b in zip(ufunc(probe), probe)):
        return ufunc
    each = np.frompyfunc(scalar, 1, 1)
    return lambda x: each(x).astype(np.float64)


def _math(name: str, x: np.ndarray) -> np.ndarray:
    """np.<name>(x), in float64 with PyTorch's bits (see `_c_library`)."""
    return _c_library(name)(x) if x.dtype == np.float64 else getattr(np, name)(x)


def _box_muller_16(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """PyTorch's `normal_fill_16` on each block of 16 uniforms, in the array's dtype."""
    t = x.dtype.type
    blocks = x.reshape(-1, 16)
    radius = np.sqrt(t(-2.0) * _math("log", t(1.0) - blocks[:, :8]))  # u1 = 1 - x[i]
    theta = t(2.0 * t(math.pi)) * blocks[:, 8:]                       # 2π u2, u2 = x[i + 8]
    out = np.empty_like(blocks)
    out[:, :8] = radius * _math("cos", theta) * t(std) + t(mean)
    out[:, 8:] = radius * _math("sin", theta) * t(std) + t(mean)
    return out.reshape(-1)


def _mcg31(seed: int, n: int) -> np.ndarray:
    """n uniforms of MKL's MCG31m1 stream seeded with `seed`: x₀ = seed mod m (1 if that is 0),
    xₖ₊₁ = a · xₖ mod m, uₖ = xₖ / m. Computed a block at a time from the powers of a."""
    block = min(n, 4096)
    powers = np.empty(block, dtype=np.uint64)  # a^j mod m, j < block
    p = 1
    for j in range(block):
        powers[j] = p
        p = p * _MCG31_A % _MCG31_M
    step = p  # a^block mod m
    x = seed % _MCG31_M or 1
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        out[start:stop] = (powers[:stop - start] * np.uint64(x)) % np.uint64(_MCG31_M)
        x = x * step % _MCG31_M
    return out / _MCG31_M


# ----------------------------------------------------------------------------- the global generator

default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Reseed the global generator, as `torch.manual_seed`; returns it."""
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> dict[str, Any]:
    """The global generator's state as a JSON-able dict (`torch.get_rng_state` gives a ByteTensor)."""
    return default_generator.get_state()


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global generator's state from `get_rng_state()`."""
    default_generator.set_state(state)


def set_dropout_stream(name: str) -> str:
    """Choose where dropout masks come from; returns the previous choice.

    "pytorch" (the default): PyTorch 2's `bernoulli_`, from the generator's MT19937 words.
    "mkl": the MCG31m1 stream older PyTorch releases used on x86 (see the module docstring),
    for reproducing printouts made with them.
    """
    global _dropout_stream
    if name not in DROPOUT_STREAMS:
        raise ValueError(f"dropout stream must be one of {', '.join(map(repr, DROPOUT_STREAMS))}, got {name!r}")
    previous, _dropout_stream = _dropout_stream, name
    return previous


def dropout_keep_mask(shape: Sequence[int], p: float, generator: Generator | None = None) -> np.ndarray:
    """Which elements dropout with rate p keeps (True with probability 1 - p), from the chosen stream."""
    g = generator or default_generator
    return g.bernoulli_mkl(shape, 1 - p) if _dropout_stream == "mkl" else g.bernoulli(shape, 1 - p)
