"""A network's state in one place: `Store`.

A network's parameters are its layers' weights and biases, the book's
`net.weights` and `net.biases` lists, which are the store's own lists; its
buffers are named arrays a layer keeps without learning them (a batch-norm
layer's running statistics would be).  Everything that handles a network's
state whole goes through the store: the trainer's best-epoch copy and its
snapshot before each epoch (`copy`, `assign`), its divergence check
(`finite`), and model files and checkpoints (`state_dict`,
`load_state_dict`, by name: weights_0, biases_0, ..., buffer.NAME).

The fast path (batched.py) trains each fully connected layer's weights and
bias as one [w | b] matrix: `blocks` makes the store's arrays views of such
matrices, so that it trains the network's own arrays, with nothing copied
in or out.  An optimizer keeps its buffers the same way (optimizers.py).
"""

from . import backend


class Store:
    """Parameters (`weights`, `biases`: one array each per layer that has
    them) and `buffers` ({name: array}) of one network, on its backend `xp`."""

    def __init__(self, xp, weights=None, biases=None, buffers=None):
        self.xp = xp
        self.weights = [] if weights is None else list(weights)
        self.biases = [] if biases is None else list(biases)
        self.buffers = {} if buffers is None else dict(buffers)
        self.held = None  # the last blocks() call's blocks

    def blocks(self, key, make):
        """Each layer's [w | b], whose parts the lists now hold (see blocks)."""
        self.held = blocks(self.weights, self.biases, self.held, key, make)
        return self.held[1]

    def named(self):
        """{name: array} of every parameter and buffer, in a fixed order."""
        arrays = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"weights_{i}"], arrays[f"biases_{i}"] = w, b
        arrays.update((f"buffer.{name}", a) for name, a in self.buffers.items())
        return arrays

    def copy(self):
        """A store of copies: what the state is now, whatever training does next."""
        copy = lambda arrays: [backend.copy(self.xp, a) for a in arrays]  # noqa: E731
        return Store(self.xp, copy(self.weights), copy(self.biases),
                     dict(zip(self.buffers, copy(self.buffers.values()))))

    def view(self):
        """A store of the same arrays (no copy): the state as it is, kept aside
        while others are assigned in."""
        return Store(self.xp, self.weights, self.biases, self.buffers)

    def assign(self, other):
        """Take `other`'s arrays (not copies) into this store's own lists,
        which the network holds."""
        self.weights[:], self.biases[:] = other.weights, other.biases
        self.buffers.update(other.buffers)

    def finite(self):
        """True when every parameter and buffer is a finite number."""
        xp = self.xp
        return all(bool(xp.all(xp.isfinite(a))) for a in self.named().values())

    def state_dict(self, prefix=""):
        """{prefix + name: host array}, as files keep them."""
        return {prefix + name: backend.to_numpy(a) for name, a in self.named().items()}

    def load_state_dict(self, state, asarray, prefix=""):
        """Each array from {prefix + name: array}, converted by asarray (the
        network's backend and dtype); a ValueError naming the first missing
        one, or one whose shape is not the store's."""
        loaded = {}
        for name, now in self.named().items():
            key = prefix + name
            if key not in state:
                raise ValueError(f"{key} is missing")
            if tuple(state[key].shape) != tuple(now.shape):
                raise ValueError(f"{key} has shape {tuple(state[key].shape)}, "
                                 f"expected {tuple(now.shape)}")
            loaded[name] = asarray(state[key])
        n = len(self.weights)
        self.weights[:] = [loaded[f"weights_{i}"] for i in range(n)]
        self.biases[:] = [loaded[f"biases_{i}"] for i in range(n)]
        self.buffers.update((name, loaded[f"buffer.{name}"]) for name in self.buffers)


def blocks(weights, biases, held, key, make):
    """(key, [block], [(w, b)]): one [w | b] matrix per layer, made by
    make(rows, cols) in the layout `key` names, whose parts w and b the
    lists `weights` and `biases` now hold, their values copied in once.

    `held` is the last call's result, kept while the lists still hold its
    views in that layout; a list entry assigned since (a restored best
    epoch, a loaded file) is copied into new blocks.
    """
    if held is not None and held[0] == key and len(held[2]) == len(weights) and all(
            w is hw and b is hb for (hw, hb), w, b in zip(held[2], weights, biases)):
        return held
    made = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        block = make(w.shape[0], w.shape[1] + 1)
        block[:, :-1], block[:, -1:] = w, b
        weights[i], biases[i] = block[:, :-1], block[:, -1:]
        made.append(block)
    return key, made, list(zip(weights, biases))
