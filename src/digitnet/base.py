"""The one model interface, in code: `Classifier`, which the chapter-1
`Network` (network.py) and the later chapters' `Model` (model.py) derive
from, and through which the trainer, engines, checkpoints, commands, serve
and plots use either.

Each network has

    xp, dtype, dtype_name   the array module and the float type
    seed, rng               the seed and the NumPy generator behind the
                            initial weights, the shuffles and dropout masks
    weights, biases         the parameters: plain lists, weights[i] (n_out, n_in)
                            and biases[i] (n_out, 1) for the i-th layer that has any,
                            which are the lists of its `store` (params.py), the one
                            home of its state
    n_in, n_out, classes    input and output sizes; class names or None (digits)
    cost_name, output, dropout   its cost, its output layer, its dropout p

and implements feedforward(x), backprop(x, y, masks=None), cost(x, y),
config(), describe(), and for files from_config, param_shapes and n_in_of
(and buffer_shapes, where it keeps buffers).
The rest is shared here: one-example input, save and load, and the book's
`sgd` and `evaluate`, which hand over to the trainer (imported when
called: a network does not need the trainer to exist).
"""

import functools
from typing import NamedTuple

import numpy as np

from . import backend, modelfile
from .params import Store


class DenseSpec(NamedTuple):
    """A chain of fully connected layers, as the batched engine's fast path
    (batched.py) trains it: what a network says of itself, never re-parsed
    from its layer string."""
    sizes: list         # neurons per layer, input first
    activation: str     # the hidden layers' f
    output: str         # "sigmoid" or "softmax"
    cost: str           # a costs.COSTS name
    dropout: float      # p for the inputs of the layers after a hidden one


def one_or_many(feedforward):
    """Let `feedforward` take one example as a (n_in,) vector, answering
    (n_out,), as well as a (n_in, m) matrix; any other shape is one clear
    ValueError (a (784,) vector broadcast against (30, 784) weights would
    otherwise give a silently wrong (10, 30) answer)."""
    @functools.wraps(feedforward)
    def wrapper(self, x):
        if not hasattr(x, "shape"):  # a list of numbers
            x = self.asarray(x)
        shape = x.shape
        one = len(shape) == 1
        if len(shape) not in (1, 2) or shape[0] != self.n_in:
            raise ValueError(f"feedforward takes ({self.n_in},) for one example or "
                             f"({self.n_in}, m) for m of them, got shape {tuple(shape)}")
        out = feedforward(self, self.xp.reshape(self.asarray(x), (self.n_in, 1)) if one else x)
        return self.xp.reshape(out, (self.n_out,)) if one else out
    return wrapper


class Classifier:
    """What every network is to the rest of digitnet (see the module's doc)."""

    kind = None  # the file format's name for this class: "network" or "model"

    @property
    def store(self):
        """The network's state (params.py); made on first use."""
        if "_store" not in self.__dict__:
            self._store = Store(self.__dict__.get("xp"))
        return self._store

    @property
    def weights(self):
        return self.store.weights

    @weights.setter
    def weights(self, arrays):
        self.store.weights = list(arrays)

    @property
    def biases(self):
        return self.store.biases

    @biases.setter
    def biases(self, arrays):
        self.store.biases = list(arrays)

    def asarray(self, a):
        """`a` (host or device) as an array of this network's backend and dtype."""
        return self.xp.asarray(a, dtype=self.dtype)

    def dropout_masks(self, m):
        """Fresh dropout masks for a mini-batch of m, or None without dropout."""
        return None

    @staticmethod
    def buffer_shapes(config):
        """{name: shape} of the buffers (store.buffers) a config() declares:
        none, unless a class says otherwise (Model's bn layers)."""
        return {}

    def check_training(self, config, n=None):
        """A ValueError when this network cannot be trained by the
        TrainConfig `config` on n examples (Model: batch normalization's
        limits); nothing to say by default."""

    def dense_spec(self):
        """This network as a DenseSpec when it is a chain of fully connected
        layers (the fast path can train it), else None."""
        return None

    @property
    def eval_chunk(self):
        """Examples per evaluation chunk (training.measure): dense nets like
        big ones."""
        return 1000

    def chunks(self, n, chunk=None):
        """(start, stop) of each evaluation chunk of n examples: every
        chunked prediction (the trainer's measure, outputs) goes by these.
        Stops stay in range: the Array API leaves out-of-range ones undefined."""
        chunk = chunk or self.eval_chunk
        return [(k, min(k + chunk, n)) for k in range(0, n, chunk)]

    def outputs(self, images):
        """The outputs for the (n_in, n) images as a host (n, n_out) array,
        computed in chunks on the network's device (serve's test set, the
        plots' predictions)."""
        parts = [backend.to_numpy(self.feedforward(images[:, k:end])).T
                 for k, end in self.chunks(images.shape[1])]
        return np.concatenate(parts) if parts else np.zeros((0, self.n_out))

    # Files: documented .npz, never pickles (modelfile.py).

    def save(self, path):
        """Write this network to `path`, atomically (network2.py's `save`)."""
        modelfile.save(self, path)

    @classmethod
    def load(cls, path, device="auto"):
        """The network of this class saved in `path`; a file of the other
        class is one clear error (digitnet.load reads either)."""
        return modelfile.load(path, {cls.kind: cls}, device)

    # The trainer's entry points, in the book's words.

    def sgd(self, training_data, epochs, mini_batch_size, eta, test_data=None, **options):
        """Mini-batch SGD; returns one record per epoch and, as the book
        does, prints `Epoch 0: 9129 / 10000` after each (`verbose=False`:
        nothing).  See training.sgd, which also takes the later chapters'
        L2, momentum and early stopping."""
        from . import training
        return training.sgd(self, training_data, epochs, mini_batch_size, eta,
                            test_data=test_data, **options)

    def evaluate(self, data):
        """Number of examples in `data` whose argmax output is the label."""
        from . import training
        return training.evaluate(self, data)
