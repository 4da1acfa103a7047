"""Layers for the networks of chapters 3 and 6: fully connected,
convolution, max-pooling, and beyond the book batch normalization,
written once against `xp`.

Examples stay in the last axis everywhere, as the book's columns: a dense
activation is (n, m), a stack of feature maps (channels, height, width, m).
A mini-batch is then still one matrix for the GEMMs, and handing conv
features to a dense layer is a free reshape.

Each layer has `forward(xp, w, b, x) -> (a, cache)` and
`backward(xp, w, cache, delta, need_input) -> ((nabla_w, nabla_b), dC/dx)`,
where `w, b` are the layer's parameters, kept by the model in its `weights`
and `biases` lists (None for pooling; batch normalization's forward also
takes the network's buffers and whether it trains; a b of None and
backward's `bias=False` leave out a bias the bn layer after cancels), and `delta`
is dC/dz of the layer's weighted input (for max-pooling, which has none,
dC/d of its output, and the pool applies its activation's derivative
itself); the model applies the other layers' activation derivatives
between layers (see model.py).  Gradients are summed over the m
examples, as in the chapter-1 `backprop`.
"""

from . import backend
from .activations import ACTIVATIONS, softmax


def loops(xp):
    """jit.py's compiled col2im and pooling for NumPy arrays, or None (the
    passes below run); imported here, so Numba loads only with a conv net."""
    from . import jit
    return jit.loops(xp)


def identity(xp, z):
    return z


def identity_back(xp, a, d):
    return d


def activation_pair(name):
    """(f, back) for an activation name; None is the identity."""
    return (identity, identity_back) if name is None else ACTIVATIONS[name]


class FullyConnected:
    """a' = f(w a + b): the chapter-1 layer, with any activation."""

    def __init__(self, shape_in, n_out, activation):
        self.shape_in = shape_in
        self.n_in = 1
        for s in shape_in:
            self.n_in *= s
        self.shape_out = (n_out,)
        self.activation = activation
        # None: a bn layer after it normalizes z and applies f itself
        self.f, self.back = ((softmax, None) if activation == "softmax"
                             else activation_pair(activation))
        self.w_shape, self.fan_in = (n_out, self.n_in), self.n_in

    def forward(self, xp, w, b, x):
        x = xp.reshape(x, (self.n_in, x.shape[-1]))
        z = w @ x
        return self.f(xp, z if b is None else z + b), x

    def backward(self, xp, w, x, delta, need_input, bias=True):
        grads = (delta @ x.T, bias_grad(xp, delta, bias))   # BP4, BP3
        if not need_input:
            return grads, None
        return grads, xp.reshape(w.T @ delta, self.shape_in + (delta.shape[-1],))


def bias_grad(xp, delta, bias):
    """BP3, dC/db = delta summed over examples (and positions); zero for a
    bias the model left out of the training forward (Model.cancelled): a bn
    layer after it subtracts the batch mean, so b moves nothing."""
    if not bias:
        return xp.zeros((delta.shape[0], 1), dtype=delta.dtype)
    return xp.sum(delta, axis=1, keepdims=True)


SPAN = 1440  # the longest sum one GEMM of nabla_w does (see nabla_w)


def nabla_w(cols, d):
    """BP4 for a conv layer, d cols^T, summed over every position of every
    example: a GEMM with tiny output and a long inner sum, which OpenBLAS
    does faster in spans of at most SPAN; each span is written long side
    first (benchmarks/RESULTS.md, "Why the code is shaped so")."""
    length = d.shape[1]
    total = None
    for a in range(0, length, SPAN):
        b = min(a + SPAN, length)
        part = cols[:, a:b] @ d[:, a:b].T
        total = part if total is None else total + part
    return total.T


class Conv:
    """`filters` feature maps, each one k x k kernel shared across the image
    (chapter 6's local receptive fields and shared weights), stride 1, and
    `pad` rows and columns of zeros around each input map (pad = (k-1)/2
    keeps the maps' size, so 3x3 layers can be stacked).  Done as im2col:
    the k*k shifted views of the (padded) input, stacked, make one
    (C k k, positions * m) matrix, so the whole layer is one GEMM.
    """

    def __init__(self, shape_in, filters, k, activation, pad=0):
        c, h, w = shape_in
        if k > h + 2 * pad or k > w + 2 * pad:
            raise ValueError(f"a {k}x{k} kernel does not fit {h}x{w} feature maps")
        self.shape_in, self.k, self.pad = shape_in, k, pad
        self.shape_out = (filters, h + 2 * pad - k + 1, w + 2 * pad - k + 1)
        self.activation = activation
        self.f, self.back = activation_pair(activation)
        self.w_shape, self.fan_in = (filters, c * k * k), c * k * k

    def columns(self, xp, x):
        _, oh, ow = self.shape_out
        k, m = self.k, x.shape[-1]
        windows = backend.windows(xp, x, k, oh, ow)
        if windows is None:
            windows = xp.stack([x[:, i:i + oh, j:j + ow, :]
                                for i in range(k) for j in range(k)], axis=1)
        return xp.reshape(windows, (self.fan_in, oh * ow * m))

    def padded(self, xp, x):
        """x (C, H, W, m) inside a border of `pad` zeros (the Array API has no pad)."""
        if not self.pad:
            return x
        c, h, w = self.shape_in
        p = self.pad
        out = xp.zeros((c, h + 2 * p, w + 2 * p, x.shape[-1]), dtype=x.dtype)
        out[:, p:p + h, p:p + w, :] = x
        return out

    def forward(self, xp, w, b, x):
        m = x.shape[-1]
        x = self.padded(xp, xp.reshape(x, self.shape_in + (m,)))
        cols = self.columns(xp, x)
        z = w @ cols
        if b is not None:
            z += b  # in place: this is the layer's largest array
        return xp.reshape(self.f(xp, z), self.shape_out + (m,)), cols

    def backward(self, xp, w, cols, delta, need_input, bias=True):
        f, oh, ow = self.shape_out
        m = delta.shape[-1]
        d = xp.reshape(delta, (f, oh * ow * m))
        grads = (nabla_w(cols, d), bias_grad(xp, d, bias))
        if not need_input:
            return grads, None
        # col2im: each kernel offset's share of dC/dx lands on its shifted
        # view.  w's columns taken offset-major (a small copy) make the GEMM
        # write each offset's share as one contiguous block, which the k*k
        # passes read faster than strided slices (benchmarks/conv_backward.py).
        (c, h, wd), k, p = self.shape_in, self.k, self.pad
        by_offset = xp.reshape(xp.permute_dims(xp.reshape(w, (-1, c, k * k)), (0, 2, 1)),
                               (-1, k * k * c))
        dcols = xp.reshape(by_offset.T @ d, (k * k, c, oh, ow, m))
        fast = loops(xp)
        dx = fast and fast.col2im(dcols, k, p, h, wd)
        if dx is not None:
            return grads, dx
        dx = xp.zeros((c, h + 2 * p, wd + 2 * p, m), dtype=delta.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, i:i + oh, j:j + ow, :] += dcols[i * k + j, ...]
        return grads, dx[:, p:p + h, p:p + wd, :] if p else dx


class MaxPool:
    """Each p x p block of a feature map replaced by its largest value.

    After a convolution the pool applies the conv's activation, to the
    p*p times smaller pooled map (the book's ConvPoolLayer does the same):
    for an increasing f, max f(z) = f(max z), so the network is the same
    function with the same gradients, and f and f' cost a quarter.  The
    pool applies f' too, in its backward (so `back` is the identity for
    the model): there jit.py's loop fuses ReLU's into the routing.
    """

    w_shape = None
    back = staticmethod(identity_back)

    def __init__(self, shape_in, p, activation=None):
        c, h, w = shape_in
        if h % p or w % p:
            raise ValueError(f"pool:{p} needs feature maps divisible by {p}, got {h}x{w}")
        self.shape_in, self.p = shape_in, p
        self.shape_out = (c, h // p, w // p)
        self.activation = activation
        self.f, self.f_back = activation_pair(activation)

    def offsets(self):
        """Index of each of the p*p positions inside a block: x[index] is a
        (C, h, w, m) strided view that keeps m contiguous, so elementwise ops
        over them run several times faster than a reduction over 6-d blocks."""
        p = self.p
        return [(slice(None), slice(i, None, p), slice(j, None, p), slice(None))
                for i in range(p) for j in range(p)]

    def forward(self, xp, w, b, x):
        x = xp.reshape(x, self.shape_in + (x.shape[-1],))
        fast, relu = loops(xp), self.activation == "relu"
        pair = fast and fast.pool_max(x, self.p, relu)
        if pair is None:
            first, *rest = self.offsets()
            top = x[first]
            for index in rest:
                top = xp.maximum(top, x[index])
        else:
            top = pair[0]
        a = pair[1] if pair is not None and relu else self.f(xp, top)
        return a, (x, top, a)

    def backward(self, xp, w, cache, delta, need_input):
        """dC/dz = f'(z) delta at each block's max, then the gradient flows
        to the inputs equal to their block's max (to each of them on a tie,
        as the book's Theano pooling does)."""
        x, top, a = cache
        delta = xp.reshape(delta, top.shape)
        fast = loops(xp)
        if fast and self.activation == "relu":  # f' inside the loop
            dx = fast.pool_back(x, top, delta, self.p, True)
            if dx is not None:
                return None, dx
        delta = self.f_back(xp, a, delta)
        dx = fast and fast.pool_back(x, top, delta, self.p, False)
        if dx is not None:
            return None, dx
        if backend.has_out(xp):
            # x as (C, h, p, w, p, m) blocks, the max and delta broadcast
            # over each block: two passes, written into one buffer, rather
            # than 2 p*p strided ones (benchmarks/RESULTS.md).
            c, h, wd = self.shape_out
            p, m = self.p, x.shape[-1]
            blocks = (c, h, p, wd, p, m)
            spread = (c, h, 1, wd, 1, m)
            dx = xp.empty(blocks, dtype=delta.dtype)
            xp.equal(xp.reshape(x, blocks), xp.reshape(top, spread), out=dx)
            xp.multiply(dx, xp.reshape(delta, spread), out=dx)
            return None, xp.reshape(dx, x.shape)
        dx = xp.zeros(x.shape, dtype=delta.dtype)
        for index in self.offsets():
            dx[index] = backend.where_zero(xp, x[index] == top, delta)
        return None, dx


EPS, MOMENTUM = 1e-5, 0.1  # PyTorch's defaults


def row_sums(xp, a):
    """Each row's sum as a (rows, 1) column, by a matrix-vector product: one
    pass on both cores, where a reduction is several on one."""
    return a @ xp.ones((a.shape[1], 1), dtype=a.dtype)


def row_dots(xp, a, b):
    """Each row of a dotted with the same row of b, (rows, 1): a stack of
    1 x k by k x 1 products, no a * b array made."""
    rows, k = a.shape
    return xp.reshape(xp.reshape(a, (rows, 1, k)) @ xp.reshape(b, (rows, k, 1)), (rows, 1))


class BatchNorm:
    """Batch normalization (Ioffe and Szegedy, 2015): each channel's weighted
    inputs z (a neuron's, or a feature map's over all its positions, which
    share one kernel) shifted and scaled to mean 0 and variance 1 over the
    mini-batch, xhat = (z - mu) / sqrt(var + EPS), then y = gamma xhat + beta
    and the activation the layer before left to it (or to the pool after).

    gamma and beta are this layer's `w` and `b`, (C, 1) each, starting at 1
    and 0, so the optimizers, files and checkpoints carry them like any
    weights and biases; L2 decays gamma, as it does every weight.

    Evaluation has no mini-batch to lean on, so it uses running estimates
    of each channel's mean and variance: the network's buffers `NAME.mean`
    and `NAME.var`, which every training forward moves a step MOMENTUM
    towards the batch's (its unbiased variance there, the biased one for
    normalizing), as PyTorch does.  They are looked up in the dict handed
    in at every forward, never kept: a restored snapshot replaces them.
    """

    def __init__(self, shape_in, activation, index):
        self.shape_in = self.shape_out = shape_in
        self.channels, self.positions = shape_in[0], 1
        for s in shape_in[1:]:
            self.positions *= s
        self.w_shape = (self.channels, 1)
        self.activation = activation
        self.f, self.back = activation_pair(activation)
        # buffers by the layer's index in the network's layers; messages count from 1
        self.mean, self.var = f"bn{index}.mean", f"bn{index}.var"
        self.where = f"bn layer {index + 1}"

    def buffer_shapes(self):
        return {self.mean: self.w_shape, self.var: self.w_shape}

    def check_batches(self, engine, m, n=None):
        """A ValueError when training with `engine` in mini-batches of m (of n
        examples) would hand this layer one number per channel, which has no
        variance (PyTorch refuses it too)."""
        where = self.where
        if engine == "per-example":
            raise ValueError(f"engine per-example backpropagates one example at a time, and "
                             f"batch normalization needs the mini-batch's statistics "
                             f"({where}): use engine batched")
        if self.positions > 1:
            return
        if m == 1:
            raise ValueError(f"mini_batch_size 1: {where} normalizes each neuron over the "
                             "mini-batch, and one example has no variance; give 2 or more")
        if n is not None and n % m == 1:
            raise ValueError(f"mini_batch_size {m} leaves the last of {n} training examples "
                             f"alone in a mini-batch, and {where} cannot normalize one "
                             "example (it has no variance); choose another mini_batch_size")

    def forward(self, xp, w, b, x, buffers, train, shift=None):
        """`shift`: the bias the layer before left out of x (Model.cancelled),
        which the running mean, used without it, must still count."""
        m = x.shape[-1]
        k = self.positions * m  # numbers per channel
        z = xp.reshape(x, (self.channels, k))
        if train:
            if k == 1:
                raise ValueError(f"{self.where} cannot normalize a mini-batch of one example: "
                                 "it has no variance")
            mu = row_sums(xp, z) / k
            zc = z - mu
            var = row_dots(xp, zc, zc) / k
            seen = mu if shift is None else mu + shift
            buffers[self.mean] = (1.0 - MOMENTUM) * buffers[self.mean] + MOMENTUM * seen
            buffers[self.var] = ((1.0 - MOMENTUM) * buffers[self.var]
                                 + MOMENTUM * (k / (k - 1)) * var)
        else:
            zc, var = z - buffers[self.mean], buffers[self.var]
        inv = 1.0 / xp.sqrt(var + EPS)
        fast = loops(xp)
        y = fast and fast.bn_out(zc, w * inv, b, self.activation)
        if y is None:
            y = zc * (w * inv)  # gamma xhat, xhat never made: backward works from zc
            y += b
            y = self.f(xp, y)
        return xp.reshape(y, self.shape_out + (m,)), (zc, inv, k if train else None)

    def backward(self, xp, w, cache, delta, need_input):
        """BP3/BP4's analogues dC/dbeta, dC/dgamma; and dC/dz through the
        batch's mean and variance, which every z of the channel moves:
        gamma / (k sigma) (k d - sum d - xhat sum d xhat).  With the running
        statistics (no k) they are constants, and dC/dz = gamma d / sigma."""
        zc, inv, k = cache
        d = xp.reshape(delta, zc.shape)
        nabla_b = row_sums(xp, d)
        nabla_w = row_dots(xp, d, zc) * inv  # sum of d xhat
        if not need_input:
            return (nabla_w, nabla_b), None
        if k is None:
            dz = d * (w * inv)
        else:  # one compiled loop, else four passes over the channel's numbers
            fast = loops(xp)
            dz = fast and fast.bn_back(zc, d, -(inv * nabla_w) / k, nabla_b / k, w * inv)
        if dz is None:
            dz = zc * (-(inv * nabla_w) / k)
            dz += d
            dz -= nabla_b / k
            dz *= w * inv
        return (nabla_w, nabla_b), xp.reshape(dz, self.shape_in + (delta.shape[-1],))
