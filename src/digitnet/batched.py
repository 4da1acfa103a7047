"""The batched engine's fast path, for array modules with ``out=`` (NumPy, CuPy).

It takes the same step as the plain batched engine (engines.py: backprop on
the (784, m) mini-batch, then w -> w - eta/m nabla_w) for any network that
is a chain of sigmoid layers on the quadratic cost, but with as few array calls
as possible, because at the book's m = 10 the cost of each call, not the
arithmetic, decides the speed:

- every intermediate lives in a buffer allocated once per mini-batch size,
  and ufuncs and GEMMs write into it with ``out=``;
- each layer keeps [w | b] as one matrix and each layer's input carries an
  extra row of ones, so z = w a + b is one GEMM, and so is
  (nabla_w | nabla_b) = delta [a; 1]^T (the ones row sums delta: BP3);
- the output delta is scaled by eta/m once; backprop is linear in delta, so
  every later delta and gradient comes out pre-scaled and the update is a
  single subtraction.

Weights are copied into this workspace at the start of an epoch and back
into the network's `weights` and `biases` at its end.

The code reads in the book's orientation (neurons x examples), but for
m >= ROWS_FROM every buffer is stored transposed (examples x neurons):
OpenBLAS is 25-35% faster at these shapes when a GEMM's output has the long
dimension first (see benchmarks/RESULTS.md).  Each GEMM C = A B whose C is
stored transposed is issued as C^T = B^T A^T, decided once per buffer set.
On CuPy every m uses that layout: the other one's transposed weight view is
neither C- nor F-contiguous, and CuPy would copy it before every GEMM.
"""

from . import backend

ROWS_FROM = 50


def gemm(a, b, c):
    """(left, right, out) for C = A B as one `dot` that writes C's own layout."""
    return (a, b, c) if c.flags.c_contiguous else (b.T, a.T, c.T)


class FastBatched:
    """Preallocated state for training one network on one device dataset.

    `sizes` are the network's layer sizes, input first (engines.fast_sizes).
    """

    def __init__(self, net, sizes, rows, labels, mini_batch_size):
        xp = self.xp = net.xp
        self.net, self.sizes = net, sizes
        self.rows = rows
        self.bytes = rows.dtype == xp.uint8
        self.by_rows = mini_batch_size >= ROWS_FROM or backend.is_cupy(xp)
        # One-hot targets for the whole set, made once: a gather per step.
        self.targets = xp.take(xp.eye(sizes[-1], dtype=net.dtype), labels, axis=0)
        self.wb = [self.matrix(w.shape[0], w.shape[1] + 1) for w in net.weights]
        self.nabla = [self.matrix(*wb.shape) for wb in self.wb]
        self.plans = {}
        self.one = self.scalar(1.0)
        self.two55 = xp.asarray(255.0, dtype=xp.float32)
        self.take = xp.take
        self.take_kw = backend.take_rows_kwargs(xp)

    def matrix(self, rows, cols, fill=None):
        """A (rows, cols) work array, stored transposed when by_rows."""
        xp, dt = self.xp, self.net.dtype
        make = xp.empty if fill is None else xp.ones
        return make((cols, rows), dtype=dt).T if self.by_rows else make((rows, cols), dtype=dt)

    def scalar(self, value):
        # A 0-d array of the network's dtype: cheaper per call than a Python
        # float, and it keeps float32 arithmetic in float32.
        return self.xp.asarray(value, dtype=self.net.dtype)

    def load(self):
        """Copy the network's weights and biases into the [w | b] matrices."""
        for wb, w, b in zip(self.wb, self.net.weights, self.net.biases):
            wb[:, :-1] = w
            wb[:, -1:] = b

    def store(self):
        """Copy the trained [w | b] back into the network, in place."""
        for wb, w, b in zip(self.wb, self.net.weights, self.net.biases):
            w[...] = wb[:, :-1]
            b[...] = wb[:, -1:]

    def _plan(self, m):
        """Work arrays, and every view of them a step needs, for m examples.

        Views are made once here: creating one costs about as much as a
        small ufunc call, and a step at m = 10 is only ~30 such calls.
        """
        if m not in self.plans:
            xp, dt, sizes = self.xp, self.net.dtype, self.sizes
            x = xp.ones((m, sizes[0] + 1), dtype=dt)  # gathered rows; last column stays 1
            # uint8 rows are gathered as bytes, then scaled into x (bytes_to_float's k/255)
            self.raw = xp.empty((m, sizes[0]), dtype=xp.uint8) if self.bytes else None
            y = xp.empty((m, sizes[-1]), dtype=dt)
            # a^l with a ones row for every hidden layer; the output has none.
            acts = [self.matrix(n + 1, m, fill=1) for n in sizes[1:-1]]
            out = self.matrix(sizes[-1], m)
            zs = [self.matrix(n, m) for n in sizes[1:]]
            deltas = [self.matrix(n, m) for n in sizes[1:]]
            forward, backward = [], []
            last = len(self.wb) - 1
            for l, wb in enumerate(self.wb):
                a_in = x.T if l == 0 else acts[l - 1]          # [a^{l-1}; 1]
                a = out if l == last else acts[l][:-1]         # a^l
                forward.append((gemm(wb, a_in, zs[l]), zs[l], a))
                # BP2 writes delta^{l-1} = w^T delta, using z^{l-1}'s buffer for sigma'.
                below = (gemm(wb[:, :-1].T, deltas[l], deltas[l - 1]), a_in[:-1],
                         zs[l - 1], deltas[l - 1]) if l else None
                backward.append((below, gemm(deltas[l], a_in.T, self.nabla[l]), wb, self.nabla[l]))
            self.plans[m] = (x[:, :-1], y, y.T, forward, backward[::-1], deltas[-1], self.raw)
        return self.plans[m]

    def step(self, idx, k):
        """One SGD step on the examples `idx`, learning rate k = eta/m."""
        xp, one = self.xp, self.one
        dot, subtract, multiply = xp.dot, xp.subtract, xp.multiply
        negative, exp, add, reciprocal = xp.negative, xp.exp, xp.add, xp.reciprocal
        x_bare, y, y_t, forward, backward, delta, raw = (self.plans.get(idx.shape[0])
                                                          or self._plan(idx.shape[0]))
        if raw is None:
            self.take(self.rows, idx, out=x_bare, **self.take_kw)
        else:  # computed in float32 whatever x's dtype, as bytes_to_float does
            self.take(self.rows, idx, out=raw, **self.take_kw)
            xp.divide(raw, self.two55, out=x_bare)
        self.take(self.targets, idx, out=y, **self.take_kw)
        # Feedforward: a^l = sigma(z), z = [w | b] [a^{l-1}; 1], one GEMM a layer.
        # sigma(z) = 1/(1+exp(-z)): exp overflows to inf for very negative z,
        # which gives exactly 0, the right limit (run() silences the warning).
        for (left, right, product), z, a in forward:
            dot(left, right, out=product)
            negative(z, out=z)
            exp(z, out=z)
            add(z, one, out=z)
            reciprocal(z, out=a)
        # BP1 for the quadratic cost, times k: delta = k (a - y) sigma'(z),
        # with sigma'(z) = a (1 - a) (the output's z buffer is free to hold it).
        t = z
        subtract(a, y_t, out=delta)
        subtract(one, a, out=t)
        multiply(t, a, out=t)
        multiply(delta, t, out=delta)
        multiply(delta, k, out=delta)
        for below, (left, right, product), wb, nabla in backward:
            if below is not None:  # BP2, w^l before its update: delta^{l-1} = (w^T delta) sigma'
                (l2, r2, p2), a_below, t, delta_below = below
                dot(l2, r2, out=p2)
                subtract(one, a_below, out=t)
                multiply(t, a_below, out=t)
                multiply(delta_below, t, out=delta_below)
            # BP3 + BP4 in one GEMM: k (nabla_w | nabla_b) = delta [a; 1]^T.
            dot(left, right, out=product)
            subtract(wb, nabla, out=wb)
