"""A conv layer's input gradient, and its GEMM orientation, measured (issue 28, item 2).

    python benchmarks/conv_backward.py [--quick] [--rounds R]

1. dC/dx of the conv layers that need one (the second of the conv and speed
   recipes' networks: conv:40x5x5 on 20x12x12 maps, conv:32x5x5 on
   16x12x12) at m = 20 and 64: today's (layers.Conv.backward: w^T d, then
   col2im as k*k strided +=) against other ways to the same dx (DX_METHODS).
2. One layer's forward and backward end to end (the first layers too) in
   today's orientation (z = w @ cols, maps stored (C, H, W, m)) against
   z^T = cols^T w^T with maps stored examples first, (m, H, W, C)
   (LAYOUTS).

Every method's result is checked against today's: in float32 (the
difference is rounding from another order of the sums) and in float64
(it should then be ~1e-15, or exactly 0 where the sums keep their order).
Random inputs: the arithmetic, not the values, decides these timings.
The methods run in interleaved rounds (A B C A B C ...) and the medians are
reported, so a change of load hits all of them; this machine's speed
wanders, so compare only figures of one run.
"""

import functools
import statistics
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

from digitnet import backend, layers
from digitnet.layers import Conv

# (name, input maps (C, H, W), filters, kernel side, needs dC/dx)
LAYERS = [("conv recipe L3 conv:40x5x5 on 20x12x12", (20, 12, 12), 40, 5, True),
          ("speed recipe L3 conv:32x5x5 on 16x12x12", (16, 12, 12), 32, 5, True),
          ("conv recipe L1 conv:20x5x5 on 1x28x28", (1, 28, 28), 20, 5, False),
          ("speed recipe L1 conv:16x5x5 on 1x28x28", (1, 28, 28), 16, 5, False)]
MS = (20, 64)


def shapes(layer, m):
    """(c, h, w, f, oh, ow, k) of a Conv layer without padding."""
    if layer.pad:
        raise ValueError("the study's layers have no padding")
    (c, h, w), (f, oh, ow) = layer.shape_in, layer.shape_out
    return c, h, w, f, oh, ow, layer.k


# --------------------------------------------------------------- 1. dC/dx

def today(layer, w, d):
    """Conv.backward's dC/dx as it stands: dcols = w^T d, then each kernel
    offset's share added onto its shifted view (k*k strided passes).
    main() checks it bit for bit against Conv.backward itself."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dcols = np.reshape(w.T @ np.reshape(d, (f, oh * ow * m)), (c, k * k, oh, ow, m))
    dx = np.zeros((c, h, wd, m), dtype=d.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + oh, j:j + ow, :] += dcols[:, i * k + j, ...]
    return dx


def j_outer(layer, w, d):
    """The same passes, columns of the kernel outermost."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dcols = np.reshape(w.T @ np.reshape(d, (f, oh * ow * m)), (c, k * k, oh, ow, m))
    dx = np.zeros((c, h, wd, m), dtype=d.dtype)
    for j in range(k):
        for i in range(k):
            dx[:, i:i + oh, j:j + ow, :] += dcols[:, i * k + j, ...]
    return dx


def offset_major(layer, w, d):
    """w's rows reordered (a 20,000-number copy a step) so the GEMM writes
    dcols offset first, (k*k, C, oh, ow, m): each pass reads one
    contiguous block rather than C strided ones."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    wk = np.reshape(np.reshape(w, (f, c, k * k)).transpose(2, 1, 0), (k * k * c, f))
    dcols = np.reshape(wk @ np.reshape(d, (f, oh * ow * m)), (k * k, c, oh, ow, m))
    dx = np.zeros((c, h, wd, m), dtype=d.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + oh, j:j + ow, :] += dcols[i * k + j]
    return dx


def two_stage(layer, w, d):
    """The k*k passes regrouped into 2k: k passes over (C, k, oh, ow, m)
    blocks sum each kernel row's column shifts into whole rows, then k
    passes add the rows: fewer, longer calls for the same sums."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dcols = np.reshape(w.T @ np.reshape(d, (f, oh * ow * m)), (c, k, k, oh, ow, m))
    rows = np.zeros((c, k, oh, wd, m), dtype=d.dtype)
    for j in range(k):
        rows[:, :, :, j:j + ow, :] += dcols[:, :, j]
    dx = np.zeros((c, h, wd, m), dtype=d.dtype)
    for i in range(k):
        dx[:, i:i + oh, :, :] += rows[:, i]
    return dx


def padded(d, top, side):
    """d (F, oh, ow, m) inside `top` zero rows above and below and `side`
    zero columns left and right."""
    f, oh, ow, m = d.shape
    out = np.zeros((f, oh + 2 * top, ow + 2 * side, m), dtype=d.dtype)
    out[:, top:top + oh, side:side + ow, :] = d
    return out


def full_conv(layer, w, d):
    """The "full" convolution: one GEMM of the flipped, transposed kernels
    (C, F k k) against the im2col of the delta padded by k-1 all round,
    made by backend.windows as the forward im2col is.  2.25x the GEMM's
    FLOPs at these shapes (the padding's zeros), and a larger im2col."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dp = padded(d, k - 1, k - 1)
    cols = np.reshape(backend.windows(np, dp, k, h, wd), (f * k * k, h * wd * m))
    flipped = np.reshape(np.reshape(w, (f, c, k, k))[:, :, ::-1, ::-1].transpose(1, 0, 2, 3),
                         (c, f * k * k))
    return np.reshape(flipped @ cols, (c, h, wd, m))


def rows_gemm(layer, w, d):
    """Half of each: the delta padded along x only, its k windows along x
    (one copy), and one GEMM of the kernels' rows, flipped along x, gives
    each kernel row's share over whole rows (1.5x today's FLOPs here); k
    row passes add them, instead of k*k."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dp = padded(d, 0, k - 1)
    s = dp.strides
    windows = as_strided(dp, (f, k, oh, wd, m), (s[0], s[2], s[1], s[2], s[3]))
    cols = np.reshape(windows, (f * k, oh * wd * m))
    wr = np.reshape(np.reshape(w, (f, c, k, k))[:, :, :, ::-1].transpose(2, 1, 0, 3),
                    (k * c, f * k))
    parts = np.reshape(wr @ cols, (k, c, oh, wd, m))
    dx = np.zeros((c, h, wd, m), dtype=d.dtype)
    for i in range(k):
        dx[:, i:i + oh, :, :] += parts[i]
    return dx


def strided_sum(layer, w, d):
    """A gather, not a scatter: w^T against the delta padded by k-1 puts
    every offset's share on a padded grid (4x today's FLOPs here), and dx
    is one sum over a 6-d strided view of it."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m, q = d.shape[-1], k - 1
    dp = padded(d, q, q)
    hp, wp = dp.shape[1:3]
    grid = np.reshape(w.T @ np.reshape(dp, (f, hp * wp * m)), (c, k, k, hp, wp, m))
    s = grid.strides
    # view[c, y, x, i, j, :] = grid[c, i, j, q + y - i, q + x - j, :]
    view = as_strided(grid[:, :, :, q:, q:, :], (c, h, wd, k, k, m),
                      (s[0], s[3], s[4], s[1] - s[3], s[2] - s[4], s[5]))
    return view.sum(axis=(3, 4))


@functools.lru_cache(maxsize=None)
def scatter_index(shape_in, k, m):
    """Where each element of dcols (C, k, k, oh, ow, m) lands in dx's flat
    (C, H, W, m): made once per shape, as a layer would keep it."""
    c, h, wd = shape_in
    oh, ow = h - k + 1, wd - k + 1
    ci, i, j, y, x, e = np.ix_(*(np.arange(n) for n in (c, k, k, oh, ow, m)))
    return (((ci * h + y + i) * wd + x + j) * m + e).ravel()


def add_at(layer, w, d):
    """np.add.at: the scatter as one unbuffered call (sums in today's order)."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dcols = w.T @ np.reshape(d, (f, oh * ow * m))
    dx = np.zeros(c * h * wd * m, dtype=d.dtype)
    np.add.at(dx, scatter_index(layer.shape_in, k, m), dcols.ravel())
    return np.reshape(dx, (c, h, wd, m))


def bincount(layer, w, d):
    """np.bincount with weights: the scatter summed in float64, then cast."""
    c, h, wd, f, oh, ow, k = shapes(layer, d.shape[-1])
    m = d.shape[-1]
    dcols = w.T @ np.reshape(d, (f, oh * ow * m))
    sums = np.bincount(scatter_index(layer.shape_in, k, m), weights=dcols.ravel(),
                       minlength=c * h * wd * m)
    return np.reshape(sums.astype(d.dtype, copy=False), (c, h, wd, m))


DX_METHODS = {
    "before 2026-12-07: w^T d, col2im of 25 strided += (i outer)": today,
    "col2im, j outer": j_outer,
    "col2im, dcols offset-major (contiguous sources; Conv.backward since 2026-12-07)": offset_major,
    "col2im in two stages (5 column passes, 5 row passes)": two_stage,
    "full convolution: flipped kernels @ im2col of padded delta": full_conv,
    "rows: x-padded delta's x windows, one GEMM, 5 row +=": rows_gemm,
    "strided-view sum over w^T @ padded delta": strided_sum,
    "np.add.at scatter": add_at,
    "np.bincount scatter (float64 sums)": bincount,
}


# --------------------------------------------- 2. orientation, end to end

class Today:
    """The layer as it is: (C, H, W, m) maps, z = w @ cols, Conv's own code."""
    name = "today: z = w @ cols, maps (C, H, W, m)"

    def __init__(self, layer, w, b, x, d, need):
        self.layer, self.w, self.b, self.x, self.d, self.need = layer, w, b, x, d, need

    def forward(self):
        return self.layer.forward(np, self.w, self.b, self.x)

    def backward(self, state):
        return self.layer.backward(np, self.w, state[1], self.d, self.need)

    def results(self, state, grads):
        """(z, nabla_w, nabla_b, dx) in today's layouts."""
        (gw, gb), dx = grads
        return state[0], gw, gb, dx


class Transposed(Today):
    """Today's maps and cols, but the forward GEMM issued as z^T = cols^T w^T
    (the long dimension first) and copied back to (F, oh, ow, m)."""
    name = "z^T = cols^T w^T, copied back to (C, H, W, m)"

    def forward(self):
        layer, m = self.layer, self.x.shape[-1]
        cols = layer.columns(np, self.x)
        z = np.ascontiguousarray((cols.T @ self.w.T).T)
        z += self.b
        return np.reshape(z, layer.shape_out + (m,)), cols


class ExamplesFirst:
    """Maps stored (m, H, W, C): im2col is one copy of a strided view whose
    rows are (example, position), z^T = cols^T w^T comes out (m, oh, ow, F),
    the next layer's layout, and col2im adds into (m, H, W, C).  The
    weights are kept as (k, k, C, F), as such a layer would store them."""
    name = "z^T = cols^T w^T, maps (m, H, W, C)"

    def __init__(self, layer, w, b, x, d, need):
        c, h, wd, f, oh, ow, k = shapes(layer, x.shape[-1])
        self.layer, self.need, self.b = layer, need, np.reshape(b, (f,))
        self.wt = np.reshape(np.reshape(w, (f, c, k, k)).transpose(2, 3, 1, 0), (k * k * c, f))
        self.x = np.ascontiguousarray(x.transpose(3, 1, 2, 0))
        self.d = np.ascontiguousarray(np.reshape(d, (f, oh, ow, -1)).transpose(3, 1, 2, 0))

    def forward(self):
        c, h, wd, f, oh, ow, k = shapes(self.layer, 0)
        m, s = self.x.shape[0], self.x.strides
        windows = as_strided(self.x, (m, oh, ow, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
        cols = np.reshape(windows, (m * oh * ow, k * k * c))
        z = cols @ self.wt
        z += self.b
        return np.reshape(z, (m, oh, ow, f)), cols

    def backward(self, state):
        cols = state[1]
        c, h, wd, f, oh, ow, k = shapes(self.layer, 0)
        m = self.x.shape[0]
        d = np.reshape(self.d, (m * oh * ow, f))
        gw = spans(cols, d)
        gb = d.sum(axis=0)
        if not self.need:
            return (gw, gb), None
        dcols = np.reshape(d @ self.wt.T, (m, oh, ow, k, k, c))
        dx = np.zeros((m, h, wd, c), dtype=d.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, i:i + oh, j:j + ow, :] += dcols[:, :, :, i, j, :]
        return (gw, gb), dx

    def results(self, state, grads):
        c, h, wd, f, oh, ow, k = shapes(self.layer, 0)
        (gw, gb), dx = grads
        z = state[0].transpose(3, 1, 2, 0)
        gw = np.reshape(np.reshape(gw, (k, k, c, f)).transpose(3, 2, 0, 1), (f, c * k * k))
        return z, gw, gb[:, None], None if dx is None else dx.transpose(3, 1, 2, 0)


def spans(cols, d):
    """nabla_w^T = cols^T d summed in spans of layers.SPAN rows, as
    layers.nabla_w sums today's (OpenBLAS is faster at shorter inner sums)."""
    total = None
    for a in range(0, d.shape[0], layers.SPAN):
        part = cols[a:a + layers.SPAN].T @ d[a:a + layers.SPAN]
        total = part if total is None else total + part
    return total


LAYOUTS = (Today, Transposed, ExamplesFirst)


# ------------------------------------------------------------ measuring

def inputs(layer, m, dtype, seed=0):
    """w, b, x (C, H, W, m) and the delta (F, oh, ow, m), random."""
    rng = np.random.default_rng(seed)
    c, h, wd, f, oh, ow, k = shapes(layer, m)
    w = (rng.standard_normal((f, c * k * k)) / np.sqrt(c * k * k)).astype(dtype)
    b = rng.standard_normal((f, 1)).astype(dtype)
    x = rng.standard_normal((c, h, wd, m)).astype(dtype)
    d = rng.standard_normal((f, oh, ow, m)).astype(dtype)
    return w, b, x, d


def interleaved(fns, rounds):
    """Median seconds of each function, run A B C A B C ... after one warm-up."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for ts, fn in zip(times, fns):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b))) if a is not None else 0.0


def dx_table(rounds):
    """Section 1: every dx method, per layer and m."""
    lines = ["### dC/dx of a conv layer (`benchmarks/conv_backward.py`)", "",
             "| layer | m | method | median ms | ratio to the first row | max abs diff f32 | "
             "max abs diff f64 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, shape_in, filters, k, need in LAYERS:
        if not need:
            continue
        layer = Conv(shape_in, filters, k, None)
        for m in MS:
            w, b, x, d = inputs(layer, m, np.float32)
            w64, _, x64, d64 = inputs(layer, m, np.float64)
            check_today(layer, w, x, d)
            ref, ref64 = today(layer, w, d), today(layer, w64, d64)
            d2 = np.reshape(d, (d.shape[0], -1))
            times = interleaved([functools.partial(fn, layer, w, d) for fn in DX_METHODS.values()]
                                + [lambda: w.T @ d2], rounds)
            for (label, fn), t in zip(DX_METHODS.items(), times):
                lines.append(f"| {name} | {m} | {label} | {t * 1e3:.3f} | {t / times[0]:.2f} | "
                             f"{max_diff(fn(layer, w, d), ref):.1e} | "
                             f"{max_diff(fn(layer, w64, d64), ref64):.1e} |")
            # what every col2im variant shares, and the scale of the differences
            lines.append(f"| {name} | {m} | (reference: the GEMM w^T d alone) | "
                         f"{times[-1] * 1e3:.3f} | {times[-1] / times[0]:.2f} | "
                         f"max abs dx {np.abs(ref).max():.1f} | |")
    return lines


def check_today(layer, w, x, d):
    """today() is Conv.backward's dC/dx, bit for bit: else the study
    measures something the layer no longer does."""
    cols = layer.columns(np, x)
    if not np.array_equal(today(layer, w, d), layer.backward(np, w, cols, d, True)[1]):
        raise RuntimeError("today() no longer matches layers.Conv.backward: update it")


def layout_table(rounds):
    """Section 2: one layer forward and backward in each orientation."""
    lines = ["### One conv layer forward + backward, by GEMM orientation and layout", "",
             "(rel diff: the largest difference in z, nabla_w, nabla_b or dx over that "
             "output's largest value)", "",
             "| layer | m | method | forward ms | backward ms | total ms | ratio to today's | "
             "max rel diff f32 | max rel diff f64 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, shape_in, filters, k, need in LAYERS:
        layer = Conv(shape_in, filters, k, None)
        for m in MS:
            ways = [cls(layer, *inputs(layer, m, np.float32), need) for cls in LAYOUTS]
            fns = [f for way in ways for f in (way.forward, functools.partial(
                   way.backward, way.forward()))]
            times = interleaved(fns, rounds)
            diffs = diffs_against_today(layer, m, need)
            total0 = times[0] + times[1]
            for i, way in enumerate(ways):
                fwd, bwd = times[2 * i], times[2 * i + 1]
                lines.append(f"| {name} | {m} | {way.name} | {fwd * 1e3:.3f} | {bwd * 1e3:.3f} | "
                             f"{(fwd + bwd) * 1e3:.3f} | {(fwd + bwd) / total0:.2f} | "
                             f"{diffs[i][0]:.1e} | {diffs[i][1]:.1e} |")
    return lines


def diffs_against_today(layer, m, need):
    """Per layout, the largest difference of z, nabla_w, nabla_b and dx
    from today's, each relative to that output's largest value (nabla_w
    sums thousands of terms, and is that much larger than dx), in float32
    and in float64."""
    out = []
    for cls in LAYOUTS:
        per_dtype = []
        for dtype in (np.float32, np.float64):
            ref, way = (c(layer, *inputs(layer, m, dtype), need) for c in (Today, cls))
            state = way.forward()
            got = way.results(state, way.backward(state))
            ref_state = ref.forward()
            want = ref.results(ref_state, ref.backward(ref_state))
            per_dtype.append(max(max_diff(g, r) / float(np.max(np.abs(r)))
                                 for g, r in zip(got, want) if r is not None))
        out.append(per_dtype)
    return out


def main(argv):
    quick = "--quick" in argv
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else (2 if quick else 40)
    print(f"Medians of {rounds} interleaved rounds; NumPy {np.__version__}; float32 timings.\n")
    print("\n".join(dx_table(rounds)) + "\n", flush=True)
    print("\n".join(layout_table(rounds)))


if __name__ == "__main__":
    main(sys.argv[1:])
