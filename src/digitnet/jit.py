"""The fast path's update on the CPU as one compiled loop (Numba), when installed.

NumPy has no fusion: the SGD update of a [w | b] block is a chain of two
to seven in-place ufunc calls (kernels.NumpyKernels), and each call is a full
pass over the block.  At fc:300 that block is ~1 MB, so the passes, not
the GEMMs, were most of a step with momentum or Nesterov.  Here each SGD
update of a block of at least SMALL elements is one loop that reads and
writes each element once, as CuPy's fused kernels do on a GPU.

Bit for bit what the chain computes: the same operations on the same
operands in the same order, each rounded to the dtype.  Numba compiles
without fast-math, so LLVM neither contracts a * b + c into a fused
multiply-add nor reorders; the tests compare every call against the chain.

The other chains stay NumPy's: they work on (n, m) buffers a few
thousand elements long, where a call's dispatch, not the pass, is the
cost; so does Adam (see NumbaKernels).  Conv networks' col2im, max-pooling
and batch normalization's passes are loops here too (Loops, which
layers.py asks for), bit for bit as well.  Install with the ``fast``
extra; without Numba (or with DIGITNET_JIT=0) NumPy's passes run.
"""

import os

import numpy as np

from . import kernels
from .kernels import NumpyKernels

try:
    # switched off from the start, Numba never loads (its runtime is ~70 MB)
    if os.environ.get("DIGITNET_JIT", "1") == "0":
        raise ImportError
    import numba
except ImportError:  # the `fast` extra is optional
    numba = None


# Below this many elements a block's chain is as fast as the loop, whose
# dispatch costs ~5 us (10 x 301: chain 6.0 us, loop 7.7; 30 x 785: 19.9
# against 15.7, on the 2-core Xeon of benchmarks/RESULTS.md).
SMALL = 8192


def available():
    """Whether the compiled update is used: Numba installed, not switched off."""
    return numba is not None and os.environ.get("DIGITNET_JIT", "1") != "0"


def _compiled(fn):
    # cache=True keeps the machine code beside this file (or in Numba's user
    # cache), so only a machine's first run pays the compile (~0.7 s a loop).
    # error_model="numpy": x / 0 is inf, as in the chain, not an exception.
    if numba is None:
        return fn
    options = dict(nogil=True, error_model="numpy")
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError as e:
        # A read-only install run by a user with no writable cache (a
        # service account, a read-only container): Numba refuses to cache,
        # so compile afresh in each process rather than fail every command.
        if "cannot cache" not in str(e):
            raise
        return numba.njit(**options)(fn)


def _inline(fn):
    return numba.njit(inline="always")(fn) if numba is not None else fn


# Each loop walks a C-contiguous (R, C) array; `last_row` says where the
# biases are, which L2 leaves alone: the last row when the block is stored
# transposed (batched.py's by_rows layout), else the last column.  A row's
# decayed weights come first, then its other elements, each in a loop with
# no branch per element and a start of 0 (LLVM then vectorizes it: a loop
# over range(n, cols) ran 3-4x slower).

@_inline
def _decayed(rows, cols, i, decayed, last_row):
    """How many of row i's elements, from the left, are decayed weights."""
    if not decayed or last_row and i == rows - 1:
        return 0
    return cols if last_row else cols - 1


@_compiled
def _sgd(wb, nabla, keep, decayed, last_row):
    """wb = (wb keep) - nabla, keep on the weights when decayed."""
    rows, cols = wb.shape
    for i in range(rows):
        n = _decayed(rows, cols, i, decayed, last_row)
        for j in range(n):
            wb[i, j] = wb[i, j] * keep - nabla[i, j]
        for j in range(cols - n):
            wb[i, n + j] = wb[i, n + j] - nabla[i, n + j]


@_compiled
def _momentum(wb, nabla, v, mu, decay, decayed, last_row):
    """v = (mu v - nabla) - decay w (weights only), wb = wb + v."""
    rows, cols = wb.shape
    for i in range(rows):
        n = _decayed(rows, cols, i, decayed, last_row)
        for j in range(n):
            s = (v[i, j] * mu - nabla[i, j]) - wb[i, j] * decay
            v[i, j] = s
            wb[i, j] = wb[i, j] + s
        for j in range(cols - n):
            s = v[i, n + j] * mu - nabla[i, n + j]
            v[i, n + j] = s
            wb[i, n + j] = wb[i, n + j] + s


@_compiled
def _nesterov(wb, nabla, v, mu, decay, decayed, last_row):
    """g = nabla + w decay (weights only), v = mu v - g, wb = (wb + mu v) - g."""
    rows, cols = wb.shape
    for i in range(rows):
        n = _decayed(rows, cols, i, decayed, last_row)
        for j in range(n):
            g = nabla[i, j] + wb[i, j] * decay
            s = v[i, j] * mu - g
            v[i, j] = s
            wb[i, j] = (wb[i, j] + s * mu) - g
        for j in range(cols - n):
            g = nabla[i, n + j]
            s = v[i, n + j] * mu - g
            v[i, n + j] = s
            wb[i, n + j] = (wb[i, n + j] + s * mu) - g


def _rows(*arrays):
    """The arrays as C-contiguous views and whether the biases are the last
    row (a block stored transposed), or None for a layout the loops do not
    take (the chain then runs)."""
    if all(a.flags.c_contiguous for a in arrays):
        return arrays, False
    if all(a.flags.f_contiguous for a in arrays):
        return tuple(a.T for a in arrays), True
    return None, None


class NumbaKernels(NumpyKernels):
    """NumpyKernels with SGD's update one compiled loop.

    Adam keeps its chain: its loop, written the same way, ran 4-6x slower
    than the chain where no weight decays (not understood).
    """

    @staticmethod
    def update(xp, wb, nabla, v, w, nabla_w, v_w, mu, decay, keep, scratch=None):
        arrays, last_row = (None, None) if wb.size < SMALL else (
            _rows(wb, nabla) if v is None else _rows(wb, nabla, v))
        if arrays is None:
            return NumpyKernels.update(xp, wb, nabla, v, w, nabla_w, v_w, mu, decay, keep,
                                       scratch)
        decayed = decay is not None
        if v is None:
            _sgd(*arrays, keep[()], decayed, last_row)
        else:
            (_nesterov if scratch is not None else _momentum)(
                *arrays, mu[()], (decay if decayed else mu)[()], decayed, last_row)


# ---------------------------------------------------------------- conv and pooling
# A conv layer's col2im is k*k strided += passes over dC/dx, and max-pooling's
# forward and backward p*p strided passes each (layers.py): about a quarter
# of a conv step.  Each loop below walks its output once, in the order the
# passes add (col2im: offset (0, 0), (0, 1), ... onto 0), so the bits are
# the passes'.  Feature maps are (C, H, W, m): m, contiguous, is the inner
# loop everywhere.

@_compiled
def _col2im(dcols, k, p, h, w):
    """dC/dx (C, h, w, m) from each kernel offset's share dcols (k*k, C, oh,
    ow, m), the border of p (padding) left out."""
    _, c, oh, ow, m = dcols.shape
    dx = np.zeros((c, h, w, m), dcols.dtype)
    for ch in range(c):
        for y in range(h):
            for x in range(w):
                out = dx[ch, y, x]
                for i in range(k):
                    yy = y + p - i
                    if yy < 0 or yy >= oh:
                        continue
                    for j in range(k):
                        xx = x + p - j
                        if xx < 0 or xx >= ow:
                            continue
                        share = dcols[i * k + j, ch, yy, xx]
                        for n in range(m):
                            out[n] += share[n]
    return dx


@_inline
def _block_max(x, t, ch, y, xx, p):
    """t = block (y, xx)'s largest values, as np.maximum takes them: NaN
    wins, and of two equal numbers the later (signed zeros)."""
    first = x[ch, y * p, xx * p]
    for n in range(t.shape[0]):
        t[n] = first[n]
    for i in range(p):
        for j in range(p):
            if i == 0 and j == 0:
                continue
            v = x[ch, y * p + i, xx * p + j]
            for n in range(t.shape[0]):
                a = t[n]
                b = v[n]
                t[n] = a if a > b or a != a else b


@_compiled
def _pool_max(x, p):
    """Each p x p block's largest value."""
    c, h, w, m = x.shape
    top = np.empty((c, h // p, w // p, m), x.dtype)
    for ch in range(c):
        for y in range(h // p):
            for xx in range(w // p):
                _block_max(x, top[ch, y, xx], ch, y, xx, p)
    return top


@_compiled
def _pool_max_relu(x, p):
    """(each block's max, its ReLU as np.maximum(top, 0) rounds it)."""
    c, h, w, m = x.shape
    top = np.empty((c, h // p, w // p, m), x.dtype)
    out = np.empty_like(top)
    for ch in range(c):
        for y in range(h // p):
            for xx in range(w // p):
                t, o = top[ch, y, xx], out[ch, y, xx]
                _block_max(x, t, ch, y, xx, p)
                for n in range(m):
                    a = t[n]
                    o[n] = a if a > 0.0 or a != a else 0.0
    return top, out


@_inline
def _route(x, dx, t, d, ch, y, xx, p):
    """Block (y, xx)'s inputs get (x == its max) x d: the float of the
    comparison times d."""
    for i in range(p):
        for j in range(p):
            v, out = x[ch, y * p + i, xx * p + j], dx[ch, y * p + i, xx * p + j]
            for n in range(t.shape[0]):
                out[n] = (1.0 if v[n] == t[n] else 0.0) * d[n]


@_compiled
def _pool_back(x, top, delta, p):
    """dC/dx from dC/d of each block's max."""
    c, h, w, m = x.shape
    dx = np.empty_like(x)
    for ch in range(c):
        for y in range(h // p):
            for xx in range(w // p):
                _route(x, dx, top[ch, y, xx], delta[ch, y, xx], ch, y, xx, p)
    return dx


@_compiled
def _pool_back_relu(x, top, delta, p):
    """The same after ReLU's derivative: delta times the float of (max > 0),
    as activations.relu_back takes it (max > 0 exactly where relu(max) > 0).
    A loop of its own: one with a flag ran 2x slower at m = 20."""
    c, h, w, m = x.shape
    dx = np.empty_like(x)
    e = np.empty(m, delta.dtype)
    for ch in range(c):
        for y in range(h // p):
            for xx in range(w // p):
                t, d = top[ch, y, xx], delta[ch, y, xx]
                for n in range(m):
                    e[n] = (1.0 if t[n] > 0.0 else 0.0) * d[n]
                _route(x, dx, t, e, ch, y, xx, p)
    return dx


# Batch normalization: the per-channel sums stay GEMMs (layers.row_sums,
# row_dots); the passes between them, each a channel's constants applied to
# every one of its numbers, become one loop each.

@_compiled
def _bn_out(zc, s, b, relu):
    """y = zc s + b, then max(y, 0) as np.maximum rounds it when relu."""
    rows, k = zc.shape
    y = np.empty_like(zc)
    for c in range(rows):
        sc, bc = s[c, 0], b[c, 0]
        for n in range(k):
            v = zc[c, n] * sc + bc
            y[c, n] = (v if v > 0.0 or v != v else 0.0) if relu else v
    return y


@_compiled
def _bn_back(zc, d, a, sub, s):
    """dz = ((zc a + d) - sub) s, BatchNorm.backward's four passes in one."""
    rows, k = zc.shape
    dz = np.empty_like(zc)
    for c in range(rows):
        ac, bc, sc = a[c, 0], sub[c, 0], s[c, 0]
        for n in range(k):
            dz[c, n] = ((zc[c, n] * ac + d[c, n]) - bc) * sc
    return dz


def _same(*arrays):
    """Whether the arrays are C-contiguous and of one dtype (what the loops take)."""
    return all(a.flags.c_contiguous and a.dtype == arrays[0].dtype for a in arrays)


class Loops:
    """The conv and pooling loops, for layers.py; each takes C-contiguous
    arrays of one dtype and returns None for any others (layers.py then
    makes its passes)."""

    @staticmethod
    def col2im(dcols, k, p, h, w):
        return _col2im(dcols, k, p, h, w) if _same(dcols) else None

    @staticmethod
    def pool_max(x, p, relu):
        """(top, its ReLU when relu, else top again)."""
        if not _same(x):
            return None
        return _pool_max_relu(x, p) if relu else (_pool_max(x, p),) * 2

    @staticmethod
    def pool_back(x, top, delta, p, relu):
        if not _same(x, top, delta):
            return None
        return (_pool_back_relu if relu else _pool_back)(x, top, delta, p)

    @staticmethod
    def bn_out(zc, s, b, activation):
        if activation not in (None, "relu") or not _same(zc, s, b):
            return None
        return _bn_out(zc, s, b, activation == "relu")

    @staticmethod
    def bn_back(zc, d, a, sub, s):
        return _bn_back(zc, d, a, sub, s) if _same(zc, d, a, sub, s) else None


def loops(xp):
    """Loops when xp is NumPy and the loops are available, else None."""
    return Loops if xp is np and available() else None


def for_namespace(xp):
    """kernels.for_namespace, with NumbaKernels for its NumPy chains when available."""
    chosen = kernels.for_namespace(xp)  # looked up per call: tests stand in for it
    return NumbaKernels if chosen is NumpyKernels and available() else chosen


__all__ = ["Loops", "NumbaKernels", "available", "for_namespace", "loops"]
