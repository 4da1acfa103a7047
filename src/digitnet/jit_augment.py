"""augment.py's pixel work on the CPU as two compiled loops (Numba).

NumPy's source coordinates and bilinear sampling are about 75 passes over
a (784, m) mini-batch (four gathers, each with its index arithmetic,
bounds mask and weight); the thickening, blur and clip 30 more.  At m = 64
that was 6.5 ms a mini-batch: a fifth of the handwriting recipe's step,
a tenth of the record's (benchmarks/RESULTS.md).  Here each half is one
loop that reads its inputs once.

Bit for bit what augment.py's passes compute, as jit.py's loops are: the
same operations in the same order, each rounded to the dtype (`one` and
`zero` come in as the arrays' dtype, so no literal widens a float32 sum to
float64), and np.maximum's, np.minimum's and np.clip's ties, signed zeros
and NaN kept.  tests/test_augment.py compares both on every call.
"""

import numpy as np

from .jit import _compiled, _inline


@_inline
def _larger(a, b):
    """np.maximum: a when a >= b or a is NaN, else b."""
    return a if a >= b or a != a else b


@_inline
def _smaller(a, b):
    """np.minimum: a when a <= b or a is NaN, else b."""
    return a if a <= b or a != a else b


@_compiled
def _sample(x, a, shift, r0, c0, c, dr, dc, side, one, zero):
    """augment.source_coordinates then augment.sample: where each output
    pixel comes from, then the four corners' weights times their pixels
    (black outside the picture), added corner by corner from zero."""
    n, m = x.shape
    out = np.empty_like(x)
    last = side - 1
    for q in range(n):
        for e in range(m):
            ru, cu = r0[q, 0] - shift[0, e], c0[q, 0] - shift[1, e]
            row = ((a[0, e] * ru + a[1, e] * cu) + c) + dr[q, e]
            col = ((a[2, e] * ru + a[3, e] * cu) + c) + dc[q, e]
            r, cl = np.floor(row), np.floor(col)
            fr, fc = row - r, col - cl
            ri, ci = np.int64(r), np.int64(cl)
            total = zero
            for dr_ in range(2):
                wr = fr if dr_ else one - fr
                rr = ri + dr_
                for dc_ in range(2):
                    wc = fc if dc_ else one - fc
                    cc = ci + dc_
                    inside = rr >= 0 and rr < side and cc >= 0 and cc < side
                    weight = wr * wc if inside else zero
                    pixel = min(max(rr, 0), last) * side + min(max(cc, 0), last)
                    total = total + weight * x[pixel, e]
            out[q, e] = total
    return out


@_inline
def _near(x, y, xx, i, j, e, side, zero):
    """Pixel (y + i - 1, xx + j - 1) of example e, zero outside the picture."""
    yy, xc = y + i - 1, xx + j - 1
    if yy < 0 or yy >= side or xc < 0 or xc >= side:
        return zero
    return x[yy * side + xc, e]


@_compiled
def _thicken_blur(x, grow, shrink, blur, weights, side, zero, one):
    """augment.thicken_and_blur then augment's clip to [0, 1]: the blend
    towards the 3x3 dilation or erosion, then towards the 3x3 blur
    (`weights`, the blur's nine in the dtype)."""
    m = x.shape[1]
    x1 = np.empty_like(x)
    for y in range(side):
        for xx in range(side):
            q = y * side + xx
            for e in range(m):
                dilated = eroded = _near(x, y, xx, 0, 0, e, side, zero)
                for k in range(1, 9):
                    v = _near(x, y, xx, k // 3, k % 3, e, side, zero)
                    dilated, eroded = _larger(dilated, v), _smaller(eroded, v)
                v = x[q, e]
                x1[q, e] = (v + grow[0, e] * (dilated - v)) - shrink[0, e] * (v - eroded)
    out = np.empty_like(x)
    for y in range(side):
        for xx in range(side):
            q = y * side + xx
            for e in range(m):
                blurred = _near(x1, y, xx, 0, 0, e, side, zero) * weights[0]
                for k in range(1, 9):
                    blurred = blurred + _near(x1, y, xx, k // 3, k % 3, e, side, zero) * weights[k]
                v = x1[q, e]
                v = v + blur[0, e] * (blurred - v)
                out[q, e] = _smaller(_larger(v, zero), one)  # np.clip's ties and NaN
    return out


def _one_dtype(arrays):
    """The arrays C-contiguous (a copy where not: the trainer's mini-batch
    is a transposed view), or None where their dtypes differ or are not
    floats (augment.py then makes its passes)."""
    dtype = arrays[0].dtype
    if dtype.kind != "f" or any(a.dtype != dtype for a in arrays):
        return None
    return [np.ascontiguousarray(a) for a in arrays]


def sample(x, a, shift, r0, c0, c, dr, dc, side):
    """The loop on augment.coordinate_terms' terms."""
    arrays = _one_dtype((x, a, shift, r0, c0, dr, dc))
    t = x.dtype.type
    return arrays and _sample(*arrays[:5], t(c), *arrays[5:], side, t(1), t(0))


def thicken_blur(x, grow, shrink, blur, weights, side):
    """The loop, np.clip to [0, 1] included."""
    arrays = _one_dtype((x, grow, shrink, blur, weights))
    t = x.dtype.type
    return arrays and _thicken_blur(*arrays, side, t(0), t(1))
