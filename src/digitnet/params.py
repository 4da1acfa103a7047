"""A network's state in one place: `Store`.

A network's parameters are its layers' weights and biases, the book's
`net.weights` and `net.biases` lists, which are the store's own lists; its
buffers are named arrays a layer keeps without learning them (a batch-norm
layer's running statistics would be).  Everything that handles a network's
state whole goes through the store: the trainer's best-epoch copy and its
snapshot before each epoch (`copy`, `assign`), its divergence check
(`finite`), and model files and checkpoints (`state_dict`,
`load_state_dict`, by name: weights_0, biases_0, ..., buffer.NAME).
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
