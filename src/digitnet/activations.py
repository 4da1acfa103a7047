"""Neuron activations of the later chapters, as pure `xp` functions.

Each is a pair: the function, and `back(a, d) = d * f'(z)` written in
terms of the function's *output* a = f(z).  Backprop then needs only the
activations it already stored, never z, and never a second exp.
"""

from . import backend


def sigmoid(xp, z):
    """The sigmoid 1/(1+exp(-z)), computed without overflow.

    exp(-z) overflows for z < -88 in float32; exp(-|z|) never does, and
    e/(1+e) with e = exp(z) is the same function for z < 0.
    """
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_back(xp, a, d):
    return d * (a * (1.0 - a))


def tanh(xp, z):
    return xp.tanh(z)


def tanh_back(xp, a, d):
    return d * (1.0 - a * a)


def relu(xp, z):
    """max(0, z): the rectified linear unit of chapter 6."""
    return xp.maximum(z, 0.0)


def relu_back(xp, a, d):
    """Pass d where the unit is on; 0 at and below the kink (a subgradient)."""
    return backend.where_zero(xp, a > 0, d)


def softmax(xp, z):
    """exp(z_j) / sum_k exp(z_k) down each column; shifting by the column's
    max changes nothing mathematically and keeps exp from overflowing."""
    e = xp.exp(z - xp.max(z, axis=0, keepdims=True))
    return e / xp.sum(e, axis=0, keepdims=True)


# name -> (f(z), back(a, d) = d * f'(z) with a = f(z)).  Softmax is not
# here: it is only an output layer, differentiated through its cost.
ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_back), "tanh": (tanh, tanh_back),
               "relu": (relu, relu_back)}
