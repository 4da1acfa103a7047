"""Several trained networks as one: their outputs averaged.

Chapter 6's best result is an ensemble, five conv nets voting; averaging
the networks' outputs (rather than counting votes) lets a confident member
outweigh two unsure ones.  An `Ensemble` is a `Classifier` (base.py), so
`evaluate`, `outputs` and `digitnet evaluate a.npz b.npz ...` work with it as
with any network; it has no parameters of its own and is not trained: its
members are.
"""

from . import backend
from .base import Classifier, one_or_many
from .data import dataset_of

# What members must share, each as the message shows it.
SHARED = (("inputs", lambda n: n.n_in, str),
          ("outputs", lambda n: n.n_out, str),
          ("class names", lambda n: n.classes, lambda c: _classes(c)),
          ("output layer", lambda n: n.output, str),
          ("cost", lambda n: n.cost_name, str),
          ("device", lambda n: n.xp, backend.describe))


def _classes(classes):
    known = dataset_of(classes)
    names = {"mnist": "MNIST's digits", "fashion-mnist": "Fashion-MNIST's classes"}
    return names[known] if known else ", ".join(map(str, classes))


class Ensemble(Classifier):
    """The average of `members`' outputs: networks with the same inputs,
    outputs, class names, output layer and cost, on one device."""

    def __init__(self, members):
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one network")
        first = members[0]
        for i, other in enumerate(members[1:], 2):
            for what, get, show in SHARED:
                if get(other) != get(first):
                    raise ValueError(f"the networks of an ensemble must have the same {what}: "
                                     f"network {i} has {show(get(other))}, network 1 "
                                     f"{show(get(first))}")
        self.members = members
        self.xp, self.dtype, self.dtype_name = first.xp, first.dtype, first.dtype_name
        self.classes, self.output, self.cost_name = first.classes, first.output, first.cost_name
        self.seed, self.dropout = None, 0.0
        self.weights, self.biases = [], []  # its members hold the parameters

    @property
    def n_in(self):
        return self.members[0].n_in

    @property
    def n_out(self):
        return self.members[0].n_out

    @property
    def eval_chunk(self):
        return min(m.eval_chunk for m in self.members)

    def config(self):
        return {"kind": "ensemble", "members": [m.config() for m in self.members]}

    def describe(self):
        return f"ensemble of {len(self.members)}: " + "; ".join(m.describe() for m in self.members)

    @one_or_many
    def feedforward(self, x):
        """The members' outputs for the (n_in, m) x, averaged."""
        total = self.members[0].feedforward(x)
        for member in self.members[1:]:
            total = total + member.feedforward(x)
        return total / len(self.members)

    def backprop(self, x, y, masks=None):
        raise ValueError("an ensemble is not trained: train its networks, then average them")

    def cost(self, x, y):
        raise ValueError("an ensemble has no cost of its own; evaluate it instead")

    def sgd(self, *args, **kwargs):
        raise ValueError("an ensemble is not trained: train its networks, then average them")

    def save(self, path):
        raise ValueError("an ensemble is not one file: save its networks, and list them")
