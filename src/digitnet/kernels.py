"""The fast path's elementwise chains (batched.py), each one call.

On a GPU each array call is at least one kernel launch with ~10-20 us of
host time, more than the arithmetic of a small mini-batch, so on CuPy every
function here is a single fused kernel.  On NumPy the same function is the
chain of in-place ufunc calls it replaces (NumPy has no fusion, and on a
CPU a call costs ~1 us), and that chain is what the CPU tests check against
the plain engine; both follow the same formulas in the same order.

A step of the fast path is then: gather, per layer one GEMM and one
`activate`, `output_delta`, per layer below the top one GEMM and one
`hidden_delta`, and per layer one GEMM and one `update` (the chapter-1
step uses narrower versions of the three on negated weights:
`sigmoid_of_negated`, `sigmoid_delta_negated` and `sgd_negated`).  tests/test_kernels.py counts those calls.

The two classes take the same arguments for each chain, so batched.py binds
them once whatever the device; each uses what its arithmetic needs (the
NumPy chains write through scratch buffers such as `t` and 0-d constants
such as `one`, which a CUDA kernel keeps in registers; a CUDA kernel reads
the labels where NumPy gathers one-hot targets).  `upload`, the dropout
draws' copy to the device, is nothing on NumPy, where they are already there.
"""

from . import backend


# Kernel launches of each CupyKernels chain where it is not one (softmax:
# the column max and sum are CuPy reductions around one fused kernel).
LAUNCHES = {"softmax": 4}


class NumpyKernels:
    """The chains as NumPy ufunc calls writing into preallocated buffers."""

    @staticmethod
    def gather(xp, rows, idx, x, raw, two55):
        """x = the rows `idx` (bytes are scaled by 1/255 in float32, as
        backend.bytes_to_float does)."""
        if raw is None:
            xp.take(rows, idx, out=x, axis=0, mode="clip")  # in range: a permutation
        else:
            xp.take(rows, idx, out=raw, axis=0, mode="clip")
            xp.divide(raw, two55, out=x)

    @staticmethod
    def upload(xp, host, device):
        """The host's dropout draws on the device (here they are one array)."""

    @staticmethod
    def activate(xp, kind, z, a, one, zero, drop):
        """a = f(z) in place of z's buffer; with drop = (draw, p, keep, mask,
        thinned): mask = (draw >= p) / keep and thinned = a * mask."""
        if kind == "sigmoid":  # 1/(1+exp(-z)): exp overflowing to inf gives exactly 0
            xp.negative(z, out=z)
            NumpyKernels.sigmoid_of_negated(xp, z, a, one)
        elif kind == "relu":
            xp.maximum(z, zero, out=a)
        else:
            xp.tanh(z, out=a)
        if drop is not None:
            draw, p, keep, mask, thinned = drop
            xp.greater_equal(draw, p, out=mask)
            xp.divide(mask, keep, out=mask)
            xp.multiply(a, mask, out=thinned)

    # The chapter-1 step's chains, without activate's, hidden_delta's and
    # update's choices (at m = 10 a step is a few dozen calls, and the choices
    # and their arguments cost a share of it), on [w | b] stored negated (batched.py's
    # `negated`): z arrives as -z, which saves the negation, one call of ~26.

    @staticmethod
    def sigmoid_of_negated(xp, z, a, one):
        """a = 1/(1 + exp(z)) for z = -(w a + b)."""
        xp.exp(z, out=z)
        xp.add(z, one, out=z)
        xp.reciprocal(z, out=a)

    @staticmethod
    def sigmoid_delta_negated(xp, delta, a, t, one):
        """hidden_delta's sigmoid for delta = -(w^T delta): times a (a - 1) = -sigma'."""
        xp.subtract(a, one, out=t)
        xp.multiply(t, a, out=t)
        xp.multiply(delta, t, out=delta)

    @staticmethod
    def sgd_negated(xp, wb, nabla):
        """update, without momentum or L2, of -[w | b]."""
        xp.add(wb, nabla, out=wb)

    @staticmethod
    def softmax(xp, z, column, a):
        """a = exp(z - max) / sum, down each column; z is overwritten."""
        xp.max(z, axis=0, keepdims=True, out=column)
        xp.subtract(z, column, out=z)
        xp.exp(z, out=z)
        xp.sum(z, axis=0, keepdims=True, out=column)
        xp.divide(z, column, out=a)

    @staticmethod
    def output_delta(xp, quadratic, a, targets, labels, smooth, idx, y, k, delta, t, one):
        """BP1 times k: k (a - y) a (1 - a) for the quadratic cost on sigmoid
        outputs, k (a - y) where f' cancels; y = the target rows `idx`
        (one-hot, or label-smoothed: the CUDA kernel's (hot, cold) `smooth`)."""
        xp.take(targets, idx, out=y, axis=0, mode="clip")
        xp.subtract(a, y.T, out=delta)
        if quadratic:
            xp.subtract(one, a, out=t)
            xp.multiply(t, a, out=t)
            xp.multiply(delta, t, out=delta)
        xp.multiply(delta, k, out=delta)

    @staticmethod
    def hidden_delta(xp, kind, delta, a, mask, t, one, zero):
        """BP2's second half, in place: delta *= mask * f'(z), f' from a = f(z)."""
        if mask is not None:
            xp.multiply(delta, mask, out=delta)
        if kind == "sigmoid":
            xp.subtract(one, a, out=t)
            xp.multiply(t, a, out=t)
        elif kind == "relu":
            xp.greater(a, zero, out=t)
        else:
            xp.multiply(a, a, out=t)
            xp.subtract(one, t, out=t)
        xp.multiply(delta, t, out=delta)

    @staticmethod
    def update(xp, wb, nabla, v, w, nabla_w, v_w, mu, decay, keep, scratch=None):
        """[w | b] one step on the pre-scaled gradient nabla = k (nabla_w |
        nabla_b), as engines.update: with momentum v = mu v - nabla - decay w
        (decay on the weights only), w += v; else w *= 1 - decay, w -= nabla.
        With a `scratch` [w | b] buffer, Nesterov's: g = nabla + decay w,
        v = mu v - g, w = w + mu v - g."""
        if scratch is not None:
            if decay is not None:
                xp.multiply(w, decay, out=scratch[:, :-1])
                xp.add(nabla_w, scratch[:, :-1], out=nabla_w)  # nabla is now g
            xp.multiply(v, mu, out=v)
            xp.subtract(v, nabla, out=v)
            xp.multiply(v, mu, out=scratch)
            xp.add(wb, scratch, out=wb)
            xp.subtract(wb, nabla, out=wb)
            return
        if v is None:
            if decay is not None:
                xp.multiply(w, keep, out=w)
            xp.subtract(wb, nabla, out=wb)
            return
        xp.multiply(v, mu, out=v)
        xp.subtract(v, nabla, out=v)
        if decay is not None:
            xp.multiply(w, decay, out=nabla_w)  # nabla is spent: its buffer is scratch
            xp.subtract(v_w, nabla_w, out=v_w)
        xp.add(wb, v, out=wb)

    @staticmethod
    def adam(xp, wb, g, mo, ve, w, keep, weight, low, b2, c1b2, c2, eps, step, scratch):
        """[w | b] one AdamW step (optimizers.Adam) on the mean gradient g:
        w *= keep (weights only; keep None: no decay), mo = lerp(mo, g,
        weight) in its `low` (weight < 0.5) or other form, ve = b2 ve +
        (c1b2 g) g, wb += (step mo) / (sqrt(ve) / c2 + eps); g is spent."""
        if keep is not None:
            xp.multiply(w, keep, out=w)
        xp.subtract(g, mo, out=scratch)
        xp.multiply(scratch, weight, out=scratch)
        if low:
            xp.add(mo, scratch, out=mo)
        else:
            xp.subtract(g, scratch, out=mo)
        xp.multiply(ve, b2, out=ve)
        xp.multiply(g, c1b2, out=scratch)
        xp.multiply(scratch, g, out=scratch)
        xp.add(ve, scratch, out=ve)
        xp.sqrt(ve, out=scratch)
        xp.divide(scratch, c2, out=scratch)
        xp.add(scratch, eps, out=scratch)
        xp.multiply(mo, step, out=g)
        xp.divide(g, scratch, out=g)
        xp.add(wb, g, out=wb)


class CupyKernels:
    """The same chains, each one CuPy kernel (compiled on first use).

    Not yet run on a GPU.  Without one, tests/test_gpu_codegen.py compiles
    CuPy's generated source for every launch with NVRTC and runs it on the
    host (docs/gpu.md); benchmarks/gpu_check.sh runs the fast path against
    the plain engine on CuPy.
    """

    _cache = {}
    # No fused multiply-add (NVRTC fuses by default): `mu * v - nabla` is then
    # rounded twice, as the plain engine's two ufunc calls round it, so each
    # kernel computes what its NumPy twin's chain computes (docs/gpu.md).
    # These kernels are memory-bound, so FMA should save no measurable time
    # (not measured: no GPU yet; benchmarks/gpu_check.sh).
    OPTIONS = ("--fmad=false",)

    @classmethod
    def _kernel(cls, cp, name, params, out, body):
        key = (name, params, out, body)
        if key not in cls._cache:
            cls._cache[key] = cp.ElementwiseKernel(params, out, body, f"digitnet_{name}",
                                                   options=cls.OPTIONS)
        return cls._cache[key]

    @classmethod
    def gather(cls, cp, rows, idx, x, raw, two55):
        # x is the (m, n) gathered block (maybe a view): row i // n, column i % n
        scale = "/ 255.0f" if raw is not None else ""
        cast = "(float)" if raw is not None else ""
        kernel = cls._kernel(cp, "gather", "raw S rows, raw int64 idx, int64 n", "T x",
                             f"x = (T)({cast}rows[idx[i / n] * n + i % n] {scale});")
        kernel(rows, idx.astype(cp.int64, copy=False), x.shape[1], x)

    @staticmethod
    def upload(cp, host, device):
        device.set(host)

    @classmethod
    def activate(cls, cp, kind, z, a, one, zero, drop):
        f = {"sigmoid": "T f = (T)1 / ((T)1 + exp(-z));",
             "relu": "T f = (z > (T)0 || z != z) ? z : (T)0;",
             "tanh": "T f = tanh(z);"}[kind]
        if drop is None:
            cls._kernel(cp, "act_" + kind, "T z", "T a", f + " a = f;")(z, a)
            return
        draw, p, keep, mask, thinned = drop
        kernel = cls._kernel(cp, "act_drop_" + kind, "T z, float32 draw, float32 p, T keep",
                             "T a, T mask, T thinned",
                             f + " T k = (draw >= p ? (T)1 : (T)0) / keep;"
                             " a = f; mask = k; thinned = f * k;")
        kernel(z, draw, p, keep, a, mask, thinned)

    @classmethod
    def sigmoid_of_negated(cls, cp, z, a, one):
        cls._kernel(cp, "sigmoid_neg", "T z", "T a", "a = (T)1 / ((T)1 + exp(z));")(z, a)

    @classmethod
    def sigmoid_delta_negated(cls, cp, delta, a, t, one):
        cls._kernel(cp, "hd_sigmoid_neg", "T a", "T delta",
                    "delta = delta * ((a - (T)1) * a);")(a, delta)

    @classmethod
    def sgd_negated(cls, cp, wb, nabla):
        cls._kernel(cp, "sgd_neg", "T nabla", "T wb", "wb = wb + nabla;")(nabla, wb)

    @classmethod
    def softmax(cls, cp, z, column, a):
        cp.max(z, axis=0, keepdims=True, out=column)
        cls._kernel(cp, "shift_exp", "T c", "T z", "z = exp(z - c);")(column, z)
        cp.sum(z, axis=0, keepdims=True, out=column)
        cp.divide(z, column, out=a)

    @classmethod
    def output_delta(cls, cp, quadratic, a, targets, labels, smooth, idx, y, k, delta, t, one):
        # delta is (n_out, m): class i / m, example i % m, its label labels[idx[i % m]];
        # smooth is None (one-hot) or the (hot, cold) targets of label smoothing
        hot, cold = ("hot", "cold") if smooth is not None else ("(T)1", "(T)0")
        d = f"T d = a - (labels[idx[i % m]] == i / m ? {hot} : {cold});"
        if quadratic:
            d += " d = d * (((T)1 - a) * a);"
        name = "output_delta" + ("_q" if quadratic else "") + ("_s" if smooth is not None else "")
        params = "T a, raw L labels, raw J idx, int64 m, T k" + (", T hot, T cold"
                                                                 if smooth is not None else "")
        kernel = cls._kernel(cp, name, params, "T delta", d + " delta = d * k;")
        kernel(a, labels, idx, delta.shape[1], k, *(smooth or ()), delta)

    @classmethod
    def hidden_delta(cls, cp, kind, delta, a, mask, t, one, zero):
        # each f' parenthesized: delta * (f') rounds as the NumPy chain does
        fprime = {"sigmoid": "(((T)1 - a) * a)", "relu": "(a > (T)0 ? (T)1 : (T)0)",
                  "tanh": "((T)1 - a * a)"}[kind]
        if mask is None:
            cls._kernel(cp, "hd_" + kind, "T a", "T delta",
                        f"delta = delta * {fprime};")(a, delta)
        else:
            cls._kernel(cp, "hd_drop_" + kind, "T a, T mask", "T delta",
                        f"delta = delta * mask * {fprime};")(a, mask, delta)

    @classmethod
    def update(cls, cp, wb, nabla, v, w, nabla_w, v_w, mu, decay, keep, scratch=None):
        # one kernel over [w | b]: the last column (of the (rows, cols) view)
        # holds the biases, which L2 leaves alone
        cols = wb.shape[1]
        if scratch is not None:  # Nesterov's, rounded as the NumPy chain rounds it
            g = ("T g = nabla + ((i % cols) == cols - 1 ? (T)0 : decay * wb);"
                 if decay is not None else "T g = nabla;")
            cls._kernel(cp, "nesterov", "T nabla, int64 cols, T mu, T decay", "T v, T wb",
                        g + " v = mu * v - g; wb = (wb + mu * v) - g;")(
                nabla, cols, mu, decay if decay is not None else mu, v, wb)
            return
        if v is None:
            body = ("wb = ((i % cols) == cols - 1 ? wb : wb * keep) - nabla;"
                    if decay is not None else "wb = wb - nabla;")
            cls._kernel(cp, "sgd", "T nabla, int64 cols, T keep", "T wb", body)(
                nabla, cols, keep, wb)
            return
        body = ("T dv = (i % cols) == cols - 1 ? (T)0 : decay * wb;"
                " v = (mu * v - nabla) - dv; wb = wb + v;") if decay is not None else (
               "v = mu * v - nabla; wb = wb + v;")
        cls._kernel(cp, "momentum", "T nabla, int64 cols, T mu, T decay", "T v, T wb", body)(
            nabla, cols, mu, decay if decay is not None else mu, v, wb)


    @classmethod
    def adam(cls, cp, wb, g, mo, ve, w, keep, weight, low, b2, c1b2, c2, eps, step, scratch):
        cols = wb.shape[1]
        p = "T p = (i % cols) == cols - 1 ? wb : wb * keep;" if keep is not None else "T p = wb;"
        lerp = "mo = mo + (g - mo) * weight;" if low else "mo = g - (g - mo) * weight;"
        cls._kernel(cp, "adam", "T g, int64 cols, T keep, T weight, T b2, T c1b2, T c2, T eps, "
                    "T step", "T mo, T ve, T wb",
                    p + " " + lerp + " ve = ve * b2 + (c1b2 * g) * g;"
                    " wb = p + (step * mo) / (sqrt(ve) / c2 + eps);")(
            g, cols, keep if keep is not None else b2, weight, b2, c1b2, c2, eps, step,
            mo, ve, wb)


def for_namespace(xp):
    """The kernels for an array module with ``out=`` (NumPy or CuPy)."""
    return CupyKernels if backend.is_cupy(xp) else NumpyKernels


__all__ = ["NumpyKernels", "CupyKernels", "for_namespace"]
