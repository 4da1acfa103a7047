"""Networks of the later chapters: a stack of layers with a cost.

`Model("conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10")` reads a
layer spec; `Model("fc:100,fc:10", cost="cross-entropy")` is chapter 3's
`[784, 100, 10]`.  Hidden layers use `activation`; the output layer is
sigmoid (`fc:N`) or softmax (`softmax:N`); `bn` after a conv or hidden
fc layer normalizes it over the mini-batch (layers.BatchNorm).  The
chapter-1 `Network` stays separate on purpose: it is the book's code, and
this class is the toolbox.
Both are `Classifier`s (base.py), so one trainer, one checkpoint format
and every command work with either; with its defaults,
`Model("fc:30,fc:10", seed=s)` is `Network([784, 30, 10], seed=s)`: the
same starting weights, and the same weights after training.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from . import backend
from .activations import ACTIVATIONS
from .base import Classifier, DenseSpec, one_or_many
from .costs import COSTS
from .layers import BatchNorm, Conv, FullyConnected, MaxPool

INITS = ("large", "scaled")
INPUT_SHAPE = (1, 28, 28)


class LayerSpec(NamedTuple):
    """One item of a layer spec, parsed: ("conv", (20, 5)) is conv:20x5x5,
    ("conv", (32, 3, 1)) conv:32x3x3p1 (zero padding of 1 around each map),
    ("bn", ()) bn."""
    kind: str       # "conv", "pool", "fc", "softmax" or "bn"
    numbers: tuple  # (filters, kernel side[, padding]) for conv, () for bn, else (n,)

    def __str__(self):
        n = self.numbers
        if self.kind == "bn":
            return "bn"
        if self.kind != "conv":
            return f"{self.kind}:{n[0]}"
        return f"conv:{n[0]}x{n[1]}x{n[1]}" + (f"p{n[2]}" if len(n) > 2 and n[2] else "")


def parse_layers(spec):
    """[LayerSpec] from "conv:20x5x5,pool:2,fc:100,softmax:10", or a
    ValueError that names the bad item."""
    items = []
    for item in str(spec).replace(" ", "").split(","):
        kind, _, arg = item.partition(":")
        if kind == "bn":
            if item != "bn":
                raise ValueError(f"layer {item!r}: expected bn, which takes no numbers")
            items.append(LayerSpec("bn", ()))
            continue
        arg, padded, pad = arg.partition("p") if kind == "conv" else (arg, "", "")
        try:
            numbers = tuple(int(n) for n in arg.split("x"))
            padding = (int(pad),) if padded else ()
        except ValueError:
            numbers = padding = ()
        shapes = {"conv": (3,), "pool": (1,), "fc": (1,), "softmax": (1,)}
        if kind not in shapes:
            raise ValueError(f"layer {item!r}: unknown kind {kind!r} "
                             "(conv, pool, fc, softmax, bn)")
        if (len(numbers) not in shapes[kind] or min(numbers, default=0) < 1
                or padded and not padding):
            form = {"conv": "conv:FILTERSxKxK or conv:FILTERSxKxKpPAD",
                    "pool": "pool:P"}.get(kind, f"{kind}:N")
            raise ValueError(f"layer {item!r}: expected {form} with positive whole numbers")
        if kind == "conv" and numbers[1] != numbers[2]:
            raise ValueError(f"layer {item!r}: kernels are square, got {numbers[1]}x{numbers[2]}")
        if padding and not 0 <= padding[0] < numbers[1]:
            raise ValueError(f"layer {item!r}: the padding must be 0 to {numbers[1] - 1} "
                             f"(p{(numbers[1] - 1) // 2} keeps a {numbers[1]}x{numbers[1]} "
                             "layer's maps their size), got p" + pad)
        items.append(LayerSpec(kind, numbers[:2] + (padding if padding != (0,) else ())))
    check_bn(items)
    if not items or items[-1][0] not in ("fc", "softmax"):
        raise ValueError(f"layers {spec!r}: the last layer must be fc:N or softmax:N")
    if any(kind == "softmax" for kind, _ in items[:-1]):
        raise ValueError(f"layers {spec!r}: softmax can only be the output layer")
    return items


def check_bn(items):
    """Each bn right after a conv or hidden fc layer, whose weighted inputs
    it normalizes, or a ValueError naming it."""
    for i, (kind, _) in enumerate(items):
        before = items[i - 1].kind if i else "the input"
        if kind == "bn" and before not in ("conv", "fc"):
            raise ValueError(f"layer {i + 1} 'bn': batch normalization must follow a conv or "
                             f"fc layer, not {'a ' * bool(i)}{before}")
        if kind == "bn" and i == len(items) - 1:
            raise ValueError(f"layer {i + 1} 'bn': the last layer must be fc:N or softmax:N; "
                             "bn goes after a hidden layer")


def check_shape(shape):
    """The input shape as a tuple of positive ints, or a ValueError."""
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be a tuple of whole numbers, got {shape!r}") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be positive sizes, got {shape}")
    return shape


def spec_from_sizes(sizes):
    """The dense spec of a `sizes` list: [784, 100, 10] -> "fc:100,fc:10"."""
    return ",".join(f"fc:{int(n)}" for n in sizes[1:])


def build_layers(items, activation, input_shape):
    """The layer objects of a parsed spec; they hold no parameters, so this
    is cheap even for a spec that claims a billion neurons."""
    shape, layers = input_shape, []
    for i, (kind, n) in enumerate(items):
        if kind in ("conv", "pool") and len(shape) != 3:
            raise ValueError(f"{kind} layer {i + 1} needs image input, but gets {shape}")
        after = items[i + 1][0] if i + 1 < len(items) else None
        # a pool after a conv or bn applies its activation (see MaxPool); a bn
        # after a conv or fc layer does (it normalizes z, before f)
        mine = None if after in ("pool", "bn") else activation
        if kind == "conv":
            layer = Conv(shape, n[0], n[1], mine, n[2] if len(n) > 2 else 0)
        elif kind == "bn":
            layer = BatchNorm(shape, mine, i)
        elif kind == "pool":
            left_f = isinstance(layers[-1], (Conv, BatchNorm)) if layers else False
            layer = MaxPool(shape, n[0], activation if left_f else None)
        else:
            out = "softmax" if kind == "softmax" else (
                "sigmoid" if i == len(items) - 1 else mine)
            layer = FullyConnected(shape, n[0], out)
        layers.append(layer)
        shape = layer.shape_out
    return layers


def dropped_layers(layers):
    """Indices of the layers whose inputs dropout thins: fully connected
    layers fed by a hidden layer (never the raw or pooled pixels)."""
    return [i for i, layer in enumerate(layers)
            if isinstance(layer, FullyConnected)
            and any(prev.w_shape is not None for prev in layers[:i])]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A Model's layers and options, parsed and checked once, before any
    weight exists: what `Model(...)`, a file and the command line describe.
    Cheap even for a spec that claims a billion neurons."""

    layers: tuple       # LayerSpecs
    cost: str
    activation: str
    init: str
    dropout: float
    input_shape: tuple

    @classmethod
    def parse(cls, layers, cost=None, activation="sigmoid", init="large", dropout=0.0,
              input_shape=INPUT_SHAPE):
        """The architecture these options describe, or a ValueError saying why
        there is none.  Left out, the cost is the output's natural one:
        quadratic for sigmoid, log-likelihood for softmax."""
        items = tuple(parse_layers(layers))
        output = "softmax" if items[-1].kind == "softmax" else "sigmoid"
        cost = cost or ("log-likelihood" if output == "softmax" else "quadratic")
        if cost not in COSTS:
            raise ValueError(f"unknown cost {cost!r}: choose from {', '.join(COSTS)}")
        if COSTS[cost].output != output:
            raise ValueError(f"the {cost} cost needs a {COSTS[cost].output} output layer "
                             f"({'softmax:N' if output == 'sigmoid' else 'fc:N'}), not {output}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: choose from {', '.join(INITS)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: choose from "
                             f"{', '.join(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        arch = cls(items, cost, activation, init, dropout, check_shape(input_shape))
        if dropout and not dropped_layers(arch.build()):
            raise ValueError("dropout thins the inputs of fully connected layers after a "
                             "hidden layer, and this network has none")
        return arch

    @classmethod
    def of(cls, config):
        """The architecture of a Model's config() (a file's)."""
        return cls.parse(config["layers"], config["cost"], config["activation"],
                         config["init"], config["dropout"], config["input_shape"])

    @property
    def spec(self):
        return ",".join(map(str, self.layers))

    @property
    def output(self):
        return "softmax" if self.layers[-1].kind == "softmax" else "sigmoid"

    @property
    def n_out(self):
        return self.layers[-1].numbers[0]

    def build(self):
        """The layer objects (layers.py), which hold no parameters."""
        return build_layers(self.layers, self.activation, self.input_shape)

    def param_shapes(self):
        """[(w shape, b shape)] of the layers that have weights."""
        return [(layer.w_shape, (layer.w_shape[0], 1)) for layer in self.build()
                if layer.w_shape is not None]

    def check_training(self, config, n=None):
        """A ValueError when a bn layer could not normalize what training by
        the TrainConfig `config` on n examples would hand it."""
        for layer in self.build():
            if isinstance(layer, BatchNorm):
                layer.check_batches(config.engine, config.mini_batch_size, n)

    def buffer_shapes(self):
        """{name: shape} of the bn layers' running statistics, in layer order."""
        return {name: shape for layer in self.build() if isinstance(layer, BatchNorm)
                for name, shape in layer.buffer_shapes().items()}


class Model(Classifier):
    """A feedforward network of conv, pool and fully connected layers.

    `cost`: "quadratic", "cross-entropy" (sigmoid outputs) or
    "log-likelihood" (softmax outputs).  Left out, each option keeps its
    chapter-1 meaning, as on the command line: sigmoid neurons, the
    quadratic cost (log-likelihood for a softmax output) and the book's
    N(0, 1) `init="large"`.  `init="scaled"` is chapter 3's N(0, 1/n_in)
    weights, with biases at 0 rather than the book's N(0, 1): a ReLU layer
    fed by units offset by N(0, 1) takes steps so large that its units die
    in the first mini-batches (measured: a conv net stuck at 11%).
    `dropout` is the probability of dropping each input of the fully
    connected layers that follow a hidden layer, during training only.
    """

    kind = "model"

    def __init__(self, layers, cost=None, activation="sigmoid", init="large", dropout=0.0,
                 seed=0, device="auto", dtype="float32", input_shape=INPUT_SHAPE, classes=None):
        arch = self.architecture = Architecture.parse(layers, cost, activation, init, dropout,
                                                      input_shape)
        self.spec, self.output = arch.spec, arch.output
        self.cost_name, self.activation, self.init, self.dropout = (
            arch.cost, arch.activation, arch.init, arch.dropout)
        self.xp = backend.namespace(device)
        self.dtype = backend.dtype_of(self.xp, dtype)
        self.dtype_name = str(dtype)
        self.seed, self.classes = seed, classes
        self.rng = np.random.default_rng(seed)
        self.input_shape = arch.input_shape
        self.layers = arch.build()
        # param[i]: the index into weights/biases of layer i, or None (pooling)
        self.param = []
        for layer in self.layers:
            self.param.append(None if layer.w_shape is None else
                              sum(p is not None for p in self.param))
        # Layers whose bias a bn layer right after cancels while training: it
        # subtracts the batch mean, b with it, so dC/db is 0 and adding b and
        # summing delta for it (6% of the speed net's step) are left out.
        # Evaluation still adds b, and the bn layer's running mean counts it.
        self.cancelled = frozenset(i for i, layer in enumerate(self.layers[1:])
                                   if isinstance(layer, BatchNorm))
        # Layer by layer, weights then biases, as Network draws them; a bn
        # layer draws nothing (gamma 1, beta 0), so the others' draws stay put.
        self.weights, self.biases = [], []
        for layer in self.layers:
            if isinstance(layer, BatchNorm):
                self.weights.append(self.asarray(np.ones(layer.w_shape)))
                self.biases.append(self.asarray(np.zeros(layer.w_shape)))
                start = {layer.mean: np.zeros(layer.w_shape), layer.var: np.ones(layer.w_shape)}
                self.store.buffers.update((k, self.asarray(v)) for k, v in start.items())
            elif layer.w_shape is not None:
                scale = 1.0 if init == "large" else 1.0 / np.sqrt(layer.fan_in)
                self.weights.append(self.asarray(self.rng.standard_normal(layer.w_shape) * scale))
                b = self.rng.standard_normal((layer.w_shape[0], 1))
                self.biases.append(self.asarray(b if init == "large" else 0.0 * b))

    @property
    def n_in(self):
        return int(np.prod(self.input_shape))

    @property
    def n_out(self):
        return self.layers[-1].shape_out[0]

    @property
    def eval_chunk(self):
        """Conv layers' im2col matrices grow by ~50,000 numbers per example,
        and in chunks of 50 they stay in cache, several times faster per
        image than chunks of 1000 (benchmarks/RESULTS.md)."""
        return 50 if any(isinstance(layer, Conv) for layer in self.layers) else 1000

    @classmethod
    def from_config(cls, config, device="auto"):
        """A fresh model of a config() (a file's; its parameters are then replaced)."""
        return cls(config["layers"], cost=config["cost"], activation=config["activation"],
                   init=config["init"], dropout=config["dropout"], device=device,
                   dtype=config["dtype"], input_shape=config["input_shape"])

    @staticmethod
    def param_shapes(config):
        """[(w shape, b shape)] a config() declares, without any array."""
        return Architecture.of(config).param_shapes()

    @staticmethod
    def buffer_shapes(config):
        """{name: shape} of the buffers a config() declares, without any array:
        bn{i}.mean and bn{i}.var, (C, 1), for the bn layer at index i."""
        return Architecture.of(config).buffer_shapes()

    @staticmethod
    def n_in_of(config):
        return int(np.prod(check_shape(config["input_shape"])))

    def config(self):
        return {"kind": "model", "layers": self.spec, "cost": self.cost_name,
                "activation": self.activation, "init": self.init, "dropout": self.dropout,
                "input_shape": list(self.input_shape), "dtype": self.dtype_name}

    def describe(self):
        return f"{self.spec} ({self.activation}, {self.cost_name}, {self.init} init)"

    def dense_spec(self):
        if not all(isinstance(layer, FullyConnected) for layer in self.layers):
            return None
        sizes = [self.n_in] + [layer.w_shape[0] for layer in self.layers]
        return DenseSpec(sizes, self.activation, self.output, self.cost_name,
                         float(self.dropout))

    def wb(self, i):
        """(w, b) of layer i, or (None, None) for a layer without parameters."""
        p = self.param[i]
        return (None, None) if p is None else (self.weights[p], self.biases[p])

    def check_training(self, config, n=None):
        self.architecture.check_training(config, n)

    def dropped(self):
        """Indices of the layers whose inputs dropout thins (dropped_layers)."""
        return dropped_layers(self.layers) if self.dropout else []

    def dropout_masks(self, m):
        """Fresh masks for one mini-batch: 0 for a dropped input, 1/(1-p) for
        a kept one, so the expected input is unchanged and inference needs
        no rescaling (inverted dropout)."""
        p, dropped = self.dropout, self.dropped()
        # One draw for every layer, (m, sum of their inputs), moved to the
        # device once; each layer's mask is a block of its columns,
        # transposed.  The fast path (batched.py) draws the same numbers
        # into its by-rows buffers.
        ends = np.cumsum([0] + [self.layers[i].n_in for i in dropped])
        kept = self.asarray(self.rng.random((m, int(ends[-1])), dtype=np.float32) >= p) / (1.0 - p)
        return {i: kept[:, int(a):int(b)].T for i, a, b in zip(dropped, ends[:-1], ends[1:])}

    def forward(self, x, masks=None, train=False):
        """All layers' (output, cache) for the (n_in, m) batch x.  `train`:
        bn layers normalize by the batch's statistics and move their running
        ones, which they use otherwise."""
        xp = self.xp
        a, trace = x, []
        for i, layer in enumerate(self.layers):
            if masks and i in masks:
                a = xp.reshape(a, (layer.n_in, a.shape[-1])) * masks[i]
            w, b = self.wb(i)
            if isinstance(layer, BatchNorm):  # its buffers afresh: snapshots replace them
                shift = self.wb(i - 1)[1] if train and i - 1 in self.cancelled else None
                out, cache = layer.forward(xp, w, b, a, self.store.buffers, train, shift)
            else:
                out, cache = layer.forward(xp, w, None if train and i in self.cancelled else b, a)
            trace.append((out, cache))
            a = out
        return trace

    @one_or_many
    def feedforward(self, x):
        """Output (n_out, m) for input x of shape (n_in, m); no dropout."""
        return self.forward(self.asarray(x))[-1][0]

    def backprop(self, x, y, masks=None):
        """Gradient of the cost, (nabla_b, nabla_w), summed over columns, in
        the order of `biases` and `weights` (as Network.backprop).

        BP1 comes from the cost, BP2 from each layer's backward and the
        previous layer's activation derivative, BP3/BP4 from the layers.
        """
        xp = self.xp
        x, y = self.asarray(x), self.asarray(y)
        trace = self.forward(x, masks, train=True)
        delta = COSTS[self.cost_name].delta(xp, trace[-1][0], y, self.layers[-1].back)
        nabla_b, nabla_w = [None] * len(self.biases), [None] * len(self.weights)
        for i in range(len(self.layers) - 1, -1, -1):
            bias = {"bias": False} if i in self.cancelled else {}
            grads, d_in = self.layers[i].backward(xp, self.wb(i)[0], trace[i][1], delta,
                                                  need_input=i > 0, **bias)
            if grads is not None:
                nabla_w[self.param[i]], nabla_b[self.param[i]] = grads
            if i > 0:
                if masks and i in masks:
                    d_in = xp.reshape(d_in, masks[i].shape) * masks[i]
                prev = self.layers[i - 1]
                a_prev = trace[i - 1][0]
                delta = prev.back(xp, a_prev, xp.reshape(d_in, a_prev.shape))
        return nabla_b, nabla_w

    def cost(self, x, y):
        """The cost averaged over the columns of the (n_in, m) batch, no L2 term."""
        out = self.feedforward(x)
        return COSTS[self.cost_name].fn(self.xp, out, self.asarray(y)) / out.shape[-1]
