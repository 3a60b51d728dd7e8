"""Compare two recordings tensor by tensor, in forward order, and name the first that disagrees.

    result = numpygpt.compare.compare(ours, theirs)      # name -> array mappings
    print(result.report())                                # the table, then the verdict

Every name both recordings hold is one row, in the first recording's order:
its max absolute error, its max relative error (max |a - b| over the tensor's
scale, max |b|: so an element that is 0 in one and 1e-9 in the other does not
count as 100% off), and, for float32, the largest distance in units in the
last place. A gradient's scale is at least a thousandth of the largest
gradient's (`GRAD_FLOOR`): some gradients are 0 in exact arithmetic (the
key bias's: adding a constant to a row of scores leaves its softmax
unchanged) and hold only rounding noise, in every implementation. A row
passes when max |a - b| <= atol + rtol * scale.
The first row that does not is the first divergence: the layer (or gradient)
where the other implementation goes wrong, since everything before it agrees.

The default tolerances are measured, not guessed: `numpygpt precision` (see
precision.py) measures how far numpygpt's own float32 run is from its float64
run, tensor by tensor, and `DEFAULT_TOLERANCE` allows ten times the worst of
that over GPT-2 small's recording; for float64 it is far below any real bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["DEFAULT_TOLERANCE", "Comparison", "Row", "compare", "default_tolerance", "ulp_distance"]

# (rtol, atol) by dtype, from `numpygpt precision` (README, "How close is close enough"):
# numpygpt's float32 run of GPT-2 small against its float64 run is at worst 1.6e-6 off,
# relative to the tensor's scale (final_norm's gradient); the float32 tolerance is ten times
# that, rounded up. Between numpygpt and PyTorch in float64 every tensor agrees to 1e-10
# (tests/test_hooks_reference.py), and 1e-9 is still far below any real mistake.
DEFAULT_TOLERANCE = {"float32": (2e-5, 1e-30), "float64": (1e-9, 1e-30)}
GRAD_FLOOR = 1e-3


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) for comparing recordings in `dtype` (float16 and bfloat16 count as float32's,
    which is too tight for them: pass rtol explicitly)."""
    return DEFAULT_TOLERANCE["float64" if np.dtype(dtype) == np.float64 else "float32"]


@dataclass
class Row:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ulp: int | None      # float32 only: the largest distance in units in the last place
    ok: bool
    note: str = ""       # a shape mismatch, NaNs where the other has numbers, ...


@dataclass
class Comparison:
    rows: list[Row]
    rtol: float
    atol: float
    only_ours: list[str] = field(default_factory=list)
    only_theirs: list[str] = field(default_factory=list)
    looks_like: list[str] = field(default_factory=list)  # descriptions of known mistakes that fit

    @property
    def first(self) -> Row | None:
        return next((r for r in self.rows if not r.ok), None)

    @property
    def ok(self) -> bool:
        return self.first is None and bool(self.rows)

    def verdict(self) -> str:
        """One plain sentence: where the first divergence is and how well everything before it agrees."""
        if not self.rows:
            return "nothing to compare: the two recordings share no tensor name"
        first = self.first
        if first is None:
            worst = self._worst(self.rows)
            within = f"worst: {worst.name}, max rel {worst.max_rel:.1e}" if worst else "all within atol"
            return (f"no divergence: all {len(self.rows)} shared tensors agree ({within}; "
                    f"rtol {self.rtol:g}, atol {self.atol:g})")
        before = self._worst(self.rows[:self.rows.index(first)])
        agree = ("it is the first tensor compared" if first is self.rows[0] else
                 f"everything before it agrees to {before.max_rel:.0e}" if before else
                 "everything before it is identical" if self.atol < 1e-20 else
                 f"everything before it agrees to within atol {self.atol:g}")
        what = first.note or f"max rel {first.max_rel:.1e}, max abs {first.max_abs:.1e}"
        return f"first divergence: {first.name} ({what}), {agree}"

    def _worst(self, rows: list[Row]) -> Row | None:
        """The largest relative error among rows whose error is above atol (the rest is rounding
        noise on values that are 0 in exact arithmetic, such as W_key.bias's gradient)."""
        return max((r for r in rows if r.max_abs > self.atol), key=lambda r: r.max_rel, default=None)

    def report(self, all_rows: bool = True) -> str:
        lines = [f"{'tensor':<44}{'shape':>18}{'max abs':>11}{'max rel':>11}{'ulp':>9}  ok"]
        for r in self.rows if all_rows else self.rows[:self.rows.index(self.first) + 1 if self.first else None]:
            ulp = "" if r.ulp is None else (f"{r.ulp:,}" if r.ulp < 10**7 else ">1e7")
            lines.append(f"{r.name:<44}{str(list(r.shape)):>18}{r.max_abs:>11.2e}{r.max_rel:>11.2e}{ulp:>9}  "
                         f"{'yes' if r.ok else 'NO'}{'  ' + r.note if r.note else ''}")
        lines.append("")
        lines.append(self.verdict())
        for description in self.looks_like:
            lines.append(f"looks like: {description}")
        if self.only_ours or self.only_theirs:
            lines.append(f"not compared: {len(self.only_ours)} tensors only in the first, "
                         f"{len(self.only_theirs)} only in the second")
        return "\n".join(lines)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """The largest number of float32 values between a and b, element by element (0: identical)."""
    def ordered(x: np.ndarray) -> np.ndarray:  # float32 bits as integers that sort as the floats do
        i = np.ascontiguousarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    if a.size == 0:
        return 0
    return int(np.max(np.abs(ordered(a) - ordered(b))))


def _row(name: str, a: np.ndarray, b: np.ndarray, rtol: float, atol: float, floor: float = 0.0) -> Row:
    a, b = np.asarray(a), np.asarray(b)
    if a.size == b.size == 1:  # a scalar saved as 0-d or as shape (1,): the same number
        a, b = a.reshape(()), b.reshape(())
    if a.shape != b.shape:
        return Row(name, a.shape, np.inf, np.inf, None, False, f"shape {list(a.shape)} against {list(b.shape)}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same_nonfinite = (np.isnan(a64) & np.isnan(b64)) | (np.isinf(a64) & (a64 == b64))
    if np.any(~np.isfinite(a64) & ~same_nonfinite) or np.any(~np.isfinite(b64) & ~same_nonfinite):
        return Row(name, a.shape, np.inf, np.inf, None, False, "nan or inf where the other has a number")
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: counted as equal below
        diff = np.where(same_nonfinite, 0.0, np.abs(a64 - b64))
    max_abs = float(diff.max()) if diff.size else 0.0
    finite_b = np.abs(np.where(same_nonfinite, 0.0, b64))
    scale = max(float(finite_b.max()) if finite_b.size else 0.0, floor)
    max_rel = max_abs / max(scale, 1e-30) if max_abs else 0.0
    ulp = ulp_distance(np.where(same_nonfinite, 0, a), np.where(same_nonfinite, 0, b)) \
        if a.dtype == np.float32 and b.dtype == np.float32 else None
    return Row(name, a.shape, max_abs, max_rel, ulp, max_abs <= atol + rtol * scale)


def compare(ours: Mapping[str, Any], theirs: Mapping[str, Any], rtol: float | None = None,
            atol: float | None = None) -> Comparison:
    """Compare every tensor the two recordings share, in `ours`' order (see the module docstring).

    The tolerance defaults to `default_tolerance` of the less precise of the two recordings.
    """
    shared = [k for k in ours if k in theirs]
    if rtol is None or atol is None:
        dtypes = {np.asarray(v).dtype for k in shared for v in (ours[k], theirs[k]) if np.asarray(v).dtype.kind == "f"}
        d_rtol, d_atol = default_tolerance(np.float64 if dtypes and dtypes <= {np.dtype(np.float64)} else np.float32)
        rtol, atol = (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol)
    grads = [float(np.max(np.abs(theirs[k]), initial=0.0)) for k in shared if k.endswith(".grad")]
    floor = GRAD_FLOOR * max((g for g in grads if np.isfinite(g)), default=0.0)
    rows = [_row(k, ours[k], theirs[k], rtol, atol, floor if k.endswith(".grad") else 0.0) for k in shared]
    return Comparison(rows, rtol, atol, [k for k in ours if k not in theirs], [k for k in theirs if k not in ours])
