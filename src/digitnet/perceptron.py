"""The chapter's perceptrons: the step rule, NAND, an adder made of NANDs,
and sigmoid neurons that become perceptrons as their weights grow.

Plain Python on purpose: these are the chapter's pencil-and-paper examples.
"""

import math


def perceptron(x, w, b):
    """Output 1 if w . x + b > 0, else 0 (the book's rule with b = -threshold)."""
    return 1 if sum(wj * xj for wj, xj in zip(w, x)) + b > 0 else 0


def sigmoid_neuron(x, w, b, scale=1.0):
    """sigma(c (w . x + b)): as c grows it tends to the perceptron's output,
    except exactly on the boundary w . x + b = 0, where it stays 1/2."""
    z = scale * (sum(wj * xj for wj, xj in zip(w, x)) + b)
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


NAND_W, NAND_B = (-2, -2), 3


def nand(x1, x2, neuron=perceptron, **kw):
    return neuron((x1, x2), NAND_W, NAND_B, **kw)


def adder(x1, x2, neuron=perceptron, **kw):
    """(sum, carry) of two bits, built only from NAND gates as in the chapter."""
    def g(a, b):
        return nand(a, b, neuron, **kw)

    n1 = g(x1, x2)
    s = g(g(x1, n1), g(x2, n1))
    carry = g(n1, n1)
    return s, carry


def cheese_festival(weather, partner, transit, threshold=5):
    """Go to the festival? Weights 6 (weather), 2 (partner goes), 2 (transit)."""
    return perceptron((weather, partner, transit), (6, 2, 2), -threshold)
