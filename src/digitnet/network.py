"""The network of chapter 1: sigmoid neurons, quadratic cost, backpropagation.

Names follow the book: `sizes`, `weights[l]` of shape (sizes[l+1], sizes[l]),
`biases[l]` of shape (sizes[l+1], 1), `nabla_b`, `nabla_w`, `delta`.  The one
change is that an input `x` is a matrix with one column per example, so the
same equations handle one example (m = 1) or a whole mini-batch as GEMMs.

`Network` is a `Classifier` (base.py), the one interface that the
trainer, checkpoints, plots and commands use, as is the later chapters'
`Model` (model.py): saving, loading, `sgd` and `evaluate` come from there.
"""

import numpy as np

from . import backend
from .activations import sigmoid
from .base import Classifier, DenseSpec, one_or_many


def check_sizes(sizes):
    """`sizes` as a list of positive ints, or a ValueError saying why not."""
    try:
        sizes = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"sizes must be a list of integers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output layer, got {sizes}")
    if min(sizes) < 1:
        raise ValueError(f"every layer needs at least one neuron, got {sizes}")
    return sizes


class Network(Classifier):
    """A feedforward network of sigmoid neurons trained on the quadratic cost.

    `device` is "auto", "cpu", "gpu" or an array module; `dtype` "float32" or
    "float64".  Weights, biases and the shuffle order come from one NumPy
    generator seeded by `seed`, so a seed means the same run on any backend.
    """

    kind = "network"
    # the interface's description of a network (base.py): the book's choices
    cost_name, output, dropout = "quadratic", "sigmoid", 0.0

    def __init__(self, sizes, seed=0, device="auto", dtype="float32"):
        self.sizes = check_sizes(sizes)
        self.num_layers = len(self.sizes)
        self.xp = backend.namespace(device)
        self.dtype = backend.dtype_of(self.xp, dtype)
        self.dtype_name = str(dtype)
        self.seed = seed
        self.classes = None  # class names, where they are not the digits 0-9
        self.rng = np.random.default_rng(seed)
        # N(0, 1) as in the book, drawn layer by layer (weights, then biases)
        # in float64: a Model of the same layers and seed starts from the same
        # numbers, and float32 and float64 networks differ only by rounding.
        self.weights, self.biases = [], []
        for x, y in zip(self.sizes[:-1], self.sizes[1:]):
            self.weights.append(self.asarray(self.rng.standard_normal((y, x))))
            self.biases.append(self.asarray(self.rng.standard_normal((y, 1))))

    @property
    def n_in(self):
        return self.sizes[0]

    @property
    def n_out(self):
        return self.sizes[-1]

    def config(self):
        return {"kind": "network", "sizes": list(self.sizes), "dtype": self.dtype_name}

    @classmethod
    def from_config(cls, config, device="auto"):
        """A fresh network of a config() (a file's; its parameters are then replaced)."""
        return cls(config["sizes"], device=device, dtype=config["dtype"])

    @staticmethod
    def param_shapes(config):
        """[(w shape, b shape)] a config() declares, without any array."""
        sizes = config["sizes"]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes {sizes} are not a network's")
        return [((y, x), (y, 1)) for x, y in zip(sizes[:-1], sizes[1:])]

    @staticmethod
    def n_in_of(config):
        return int(config["sizes"][0])

    def describe(self):
        return str(self.sizes)

    def dense_spec(self):
        return DenseSpec(list(self.sizes), "sigmoid", "sigmoid", "quadratic", 0.0)

    @one_or_many
    def feedforward(self, a):
        """Output for input `a` of shape (sizes[0], m): a' = sigma(w a + b)."""
        xp = self.xp
        a = self.asarray(a)
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(xp, w @ a + b)
        return a

    def backprop(self, x, y, masks=None):
        """Gradient of the quadratic cost, (nabla_b, nabla_w), summed over columns.

        The four equations of backpropagation (BP1-BP4) on a (n, m) matrix:
        each delta is a (n_l, m) matrix, so nabla_w = delta a^T sums the m
        examples' outer products in one GEMM.  (`masks` is the interface's
        dropout; the book's network has none.)
        """
        if masks:
            raise ValueError("the chapter-1 Network has no dropout: masks must be None")
        xp = self.xp
        activation = x = self.asarray(x)
        y = self.asarray(y)
        activations = [x]
        for b, w in zip(self.biases, self.weights):
            z = w @ activation + b
            activation = sigmoid(xp, z)
            activations.append(activation)
        nabla_b = [None] * len(self.biases)
        nabla_w = [None] * len(self.weights)
        # BP1 with the quadratic cost: dC/da = a - y; sigma'(z) = a (1 - a),
        # which reuses the activation instead of a second exp.
        a = activations[-1]
        delta = (a - y) * (a * (1.0 - a))
        for l in range(1, self.num_layers):
            nabla_b[-l] = xp.sum(delta, axis=1, keepdims=True)   # BP3
            nabla_w[-l] = delta @ activations[-l - 1].T           # BP4
            if l < self.num_layers - 1:
                a = activations[-l - 1]
                delta = (self.weights[-l].T @ delta) * (a * (1.0 - a))  # BP2
        return nabla_b, nabla_w

    def cost(self, x, y):
        """Quadratic cost C = 1/2n sum ||y(x) - a||^2 over the n columns."""
        d = self.feedforward(x) - self.asarray(y)
        return float(self.xp.sum(d * d)) / (2 * d.shape[1])
