"""The batched engine's fast path, for array modules with ``out=`` (NumPy, CuPy).

It takes the same step as the plain batched engine (engines.py: backprop on
the (784, m) mini-batch, then the update with momentum and L2) for any
chain of fully connected layers: sigmoid, tanh or ReLU hidden layers, a
sigmoid or softmax output, every cost, dropout.  It does so with as few
array calls as possible, because at the book's m = 10 the cost of each
call, not the arithmetic, decides the speed, and at fc:300 every pass over
the weights costs as much as a GEMM:

- every intermediate lives in a buffer allocated once per mini-batch size,
  and ufuncs and GEMMs write into it with ``out=``;
- each layer keeps [w | b] as one matrix and each layer's input carries an
  extra row of ones, so z = w a + b is one GEMM, and so is
  (nabla_w | nabla_b) = delta [a; 1]^T (the ones row sums delta: BP3);
- the output delta is scaled by eta/m once; backprop is linear in delta, so
  every later delta and gradient comes out pre-scaled and the update is a
  single subtraction (momentum: three passes; L2: two more);
- on CuPy each elementwise chain is one fused kernel (kernels.py).

The [w | b] matrices are the network's own: its store makes each layer's
weights and bias views of one (params.blocks), once per run, and the
optimizer its momentum or Adam buffers, so nothing is copied in or out.

The code reads in the book's orientation (neurons x examples), but for
m >= ROWS_FROM, for any layer wider than WIDE and on CuPy every buffer is
stored transposed (examples x neurons): OpenBLAS is faster at these
shapes when a GEMM's output has the long dimension first, and the weight
part of [w | b] is then one contiguous block for L2 (see
benchmarks/RESULTS.md).  Each GEMM C = A B whose C is stored transposed is
issued as C^T = B^T A^T, decided once per buffer set.  On CuPy the other
layout's transposed weight view is neither C- nor F-contiguous, and CuPy
would copy it before every GEMM.
"""

from typing import NamedTuple

import numpy as np

from . import backend

ROWS_FROM = 50
WIDE = 100


def gemm(a, b, c):
    """(left, right, out) for C = A B as one `dot` that writes C's own layout."""
    return (a, b, c) if c.flags.c_contiguous else (b.T, a.T, c.T)


class Plan(NamedTuple):
    """Everything a step at one m needs, bound once (FastBatched._plan); a
    tuple, so that a step unpacks it in one go."""
    x: object        # the gathered inputs' float view (m, n_in)
    raw: object      # their bytes, for uint8 rows, else None
    y: object        # the one-hot targets (m, n_out)
    draws: tuple     # (host, device) dropout draws, or (None, None)
    forward: list    # per layer: (left, right, product, kernel, its arguments)
    delta: tuple     # output_delta's arguments before and after (idx, y, k)
    backward: list   # per layer, top first: (BP2 or None, left, right, product, update, args)


class FastBatched:
    """Preallocated state for training one network on one device dataset.

    `spec` is net.dense_spec(); `decay` is eta lmbda / n, and `optimizer`
    the run's (optimizers.py), whose momentum buffers it steps; `l2` says the
    decay may change from step to step (set_decay: a per-step rate), `nesterov`
    takes Nesterov's step, and `smoothing` is label smoothing's eps.  With an
    Adam `optimizer` each step is an AdamW step on its moments (set_adam
    before each; the step's k is then 1/m, for the mean gradient).
    """

    def __init__(self, net, spec, rows, labels, mini_batch_size, optimizer, momentum=0.0,
                 decay=0.0, l2=False, nesterov=False, smoothing=0.0):
        xp = self.xp = net.xp
        self.net = net
        self.sizes, self.activation, self.output = spec.sizes, spec.activation, spec.output
        self.cost, self.dropout = spec.cost, spec.dropout
        sizes = self.sizes
        self.rows = rows
        self.bytes = rows.dtype == xp.uint8
        self.by_rows = (mini_batch_size >= ROWS_FROM or max(sizes[1:]) > WIDE
                        or backend.is_cupy(xp))
        # The targets for the whole set, made once: a gather per step.  One-hot,
        # or smoothed as engines.targets smooths them, element for element.
        eye = xp.eye(sizes[-1], dtype=net.dtype)
        if smoothing:
            eye = eye * (1.0 - smoothing) + smoothing / sizes[-1]
        self.targets = xp.take(eye, labels, axis=0)
        # what a CUDA kernel reads instead: the label's target and the others'
        self.smooth = (eye[0, 0], eye[1, 0]) if smoothing else None
        adam = self.adam = optimizer if optimizer.kind == "adam" else None
        self.wb = net.store.blocks(self.by_rows, self.matrix)
        self.nabla = [self.matrix(*wb.shape) for wb in self.wb]
        self.vel = (optimizer.blocks(("velocity_w", "velocity_b"), self.by_rows, self.matrix)
                    if momentum and adam is None else None)
        self.scratch = ([self.matrix(*wb.shape) for wb in self.wb]
                        if momentum and nesterov or adam else None)
        if adam is not None:  # its moments as [w | b] blocks, and its step's constants
            self.moments = list(zip(*(optimizer.blocks(pair, self.by_rows, self.matrix)
                                      for pair in (("adam_m_w", "adam_m_b"),
                                                   ("adam_v_w", "adam_v_b")))))
            c, weight = adam.config, 1 - adam.config.beta1
            self.low = weight < 0.5  # lerp's two forms, as PyTorch's
            self.weight = self.scalar(weight if self.low else 1 - weight)
            self.b2, self.c1b2 = self.scalar(c.beta2), self.scalar(1 - c.beta2)
            self.eps, self.c2, self.neg_step = self.scalar(adam.EPS), self.scalar(1), self.scalar(0)
        self.plans = {}
        self.one = self.scalar(1.0)
        self.zero = self.scalar(0.0)
        self.mu = self.scalar(momentum)
        self.decay = self.scalar(decay) if decay or l2 else None
        self.keep = self.scalar(1.0 - decay)
        self.keep_p = self.scalar(1.0 - self.dropout)  # dropout's 1 - p
        self.two55 = xp.asarray(255.0, dtype=xp.float32)
        self.labels = labels
        from . import jit  # Numba (0.3 s to import) only once a fast path is built
        self.k = jit.for_namespace(xp)
        # A sigmoid chain trained by plain SGD negates its blocks for the
        # length of a pass (begin, end): the GEMM then gives -z, which the
        # sigmoid wants, and negation is exact, so every number is the same
        # bit for bit (BP2's -w^T delta meets a (a - 1), the update adds).
        # One call fewer per layer, which counts at m = 10.
        self.negated = (self.activation == "sigmoid" and self.output == "sigmoid"
                        and not self.dropout and not momentum and self.decay is None
                        and adam is None)

    def matrix(self, rows, cols, fill=None):
        """A (rows, cols) work array, stored transposed when by_rows."""
        xp, dt = self.xp, self.net.dtype
        make = xp.empty if fill is None else xp.ones
        return make((cols, rows), dtype=dt).T if self.by_rows else make((rows, cols), dtype=dt)

    def set_adam(self, eta, n):
        """Advance Adam a step at rate eta over n examples: its decay, step
        size and bias correction for the next step."""
        neg_step, c2 = self.adam.advance(eta)
        self.neg_step[...], self.c2[...] = neg_step, c2
        if self.decay is not None:
            self.set_decay(self.adam.decay(eta, n))

    def set_decay(self, decay):
        """The L2 factor eta lmbda / n of a per-step rate, for the next step,
        rounded to the dtype as a new scalar would be."""
        self.decay[...] = decay
        self.keep[...] = 1.0 - decay

    def scalar(self, value):
        # A 0-d array of the network's dtype: cheaper per call than a Python
        # float, and it keeps float32 arithmetic in float32.
        return self.xp.asarray(value, dtype=self.net.dtype)

    def begin(self):
        """Start a pass: the chapter-1 chain's blocks are negated while it runs."""
        if self.negated:
            for wb in self.wb:
                self.xp.negative(wb, out=wb)

    def end(self):
        """End a pass (also one cut short): the network's own signs back."""
        self.begin()

    def _plan(self, m):
        """Work arrays, and every view of them a step needs, for m examples.

        Views are made once here: creating one costs about as much as a
        small ufunc call, and a step at m = 10 is only ~30 such calls.
        """
        if m not in self.plans:
            xp, dt, sizes = self.xp, self.net.dtype, self.sizes
            x = xp.ones((m, sizes[0] + 1), dtype=dt)  # gathered rows; last column stays 1
            # uint8 rows are gathered as bytes, then scaled into x (bytes_to_float's k/255)
            raw = xp.empty((m, sizes[0]), dtype=xp.uint8) if self.bytes else None
            y = xp.empty((m, sizes[-1]), dtype=dt)
            # [a^l; 1] for every hidden layer (the next layer's input, dropped
            # out when dropout is on); the output has no ones row.
            acts = [self.matrix(n + 1, m, fill=1) for n in sizes[1:-1]]
            out = self.matrix(sizes[-1], m)
            zs = [self.matrix(n, m) for n in sizes[1:]]
            deltas = [self.matrix(n, m) for n in sizes[1:]]
            # f(z) of each hidden layer: its own buffer when dropout thins it
            # (the derivative needs the undropped value), else acts' top rows.
            fs = [self.matrix(n, m) if self.dropout else acts[l][:-1]
                  for l, n in enumerate(sizes[1:-1])]
            # dropout: one (m, sum of the hidden sizes) uniform draw on the
            # host per step, as Model.dropout_masks draws it, its device copy
            # (the same array on NumPy), each layer's block of it, and the
            # masks (0 or 1/(1-p)) in the buffers' layout
            hidden = sizes[1:-1] if self.dropout else []
            host = np.empty((m, sum(hidden)), dtype=np.float32) if hidden else None
            device = (xp.empty(host.shape, dtype=xp.float32) if hidden and backend.is_cupy(xp)
                      else host)
            ends = np.cumsum([0] + hidden)
            blocks = [device[:, int(a):int(b)].T for a, b in zip(ends[:-1], ends[1:])]
            masks = [self.matrix(n, m) for n in hidden]
            column = self.matrix(1, m)
            K, one = self.k, self.one
            forward, backward = [], []
            last = len(self.wb) - 1
            for l, wb in enumerate(self.wb):
                a_in = x.T if l == 0 else acts[l - 1]          # [a^{l-1}; 1]
                a = out if l == last else fs[l]                # a^l = f(z^l)
                if l == last and self.output == "softmax":
                    act = (K.softmax, (xp, zs[l], column, a))
                else:  # with dropout, the next layer's input is a thinned copy of a
                    drop = ((blocks[l], self.dropout, self.keep_p, masks[l], acts[l][:-1])
                            if self.dropout and l < last else None)
                    act = self._activation(self.output if l == last else self.activation,
                                           zs[l], a, drop)
                forward.append(gemm(wb, a_in, zs[l]) + act)
                # BP2 writes delta^{l-1} = w^T delta, using z^{l-1}'s buffer for f'.
                below = (gemm(wb[:, :-1].T, deltas[l], deltas[l - 1])
                         + self._hidden_delta(deltas[l - 1], fs[l - 1], zs[l - 1],
                                              masks[l - 1] if self.dropout else None)
                         ) if l else None
                backward.append((below,) + gemm(deltas[l], a_in.T, self.nabla[l])
                                + self._update(l))
            # output_delta's arguments around the step's idx and k
            delta = ((xp, self.cost == "quadratic", out, self.targets, self.labels, self.smooth),
                     (deltas[-1], zs[-1], one))
            self.plans[m] = Plan(x[:, :-1], raw, y, (host, device), forward, delta,
                                 backward[::-1])
        return self.plans[m]

    # The kernels.py call, with its arguments, for each part of a layer:
    # the narrow chapter-1 ones on negated weights where they apply.

    def _activation(self, kind, z, a, drop):
        xp, K = self.xp, self.k
        if self.negated:
            return K.sigmoid_of_negated, (xp, z, a, self.one)
        return K.activate, (xp, kind, z, a, self.one, self.zero, drop)

    def _hidden_delta(self, delta, a, t, mask):
        xp, K = self.xp, self.k
        if self.negated:
            return K.sigmoid_delta_negated, (xp, delta, a, t, self.one)
        return K.hidden_delta, (xp, self.activation, delta, a, mask, t, self.one, self.zero)

    def _update(self, l):
        xp, K, wb, nabla = self.xp, self.k, self.wb[l], self.nabla[l]
        v = self.vel[l] if self.vel else None
        if self.negated:
            return K.sgd_negated, (xp, wb, nabla)
        if self.adam is not None:
            mo, ve = self.moments[l]
            return K.adam, (xp, wb, nabla, mo, ve, wb[:, :-1],
                            self.keep if self.decay is not None else None, self.weight,
                            self.low, self.b2, self.c1b2, self.c2, self.eps, self.neg_step,
                            self.scratch[l])
        return K.update, (xp, wb, nabla, v, wb[:, :-1], nabla[:, :-1],
                          None if v is None else v[:, :-1], self.mu, self.decay, self.keep,
                          self.scratch[l] if self.scratch else None)

    def step(self, idx, k):
        """One SGD step on the examples `idx`, learning rate k = eta/m.

        Each layer is one GEMM and one kernels.py call forward, and one or
        two GEMMs and calls backward, with every argument bound in _plan.
        """
        xp, K, dot = self.xp, self.k, self.xp.dot
        x, raw, y, (host, device), forward, (head, tail), backward = (
            self.plans.get(idx.shape[0]) or self._plan(idx.shape[0]))
        K.gather(xp, self.rows, idx, x, raw, self.two55)
        if host is not None:
            self.net.rng.random(dtype=np.float32, out=host)
            K.upload(xp, host, device)
        # Feedforward: a^l = f(z), z = [w | b] [a^{l-1}; 1], one GEMM a layer.
        for left, right, product, act, args in forward:
            dot(left, right, out=product)
            act(*args)
        # BP1 times k: k (a - y) sigma'(z) for the quadratic cost, k (a - y)
        # when f' cancels (cross-entropy, log-likelihood).
        K.output_delta(*head, idx, y, k, *tail)
        for below, left, right, product, update, args in backward:
            if below is not None:  # BP2, w^l before its update: delta^{l-1} = (w^T delta) f'
                l2, r2, p2, hidden_delta, hidden_args = below
                dot(l2, r2, out=p2)
                hidden_delta(*hidden_args)
            # BP3 + BP4 in one GEMM: k (nabla_w | nabla_b) = delta [a; 1]^T.
            dot(left, right, out=product)
            update(*args)
