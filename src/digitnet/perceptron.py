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


def report(scales=(1, 2, 5, 10, 25)):
    """The chapter's examples worked through, as lines of text (`digitnet perceptron`)."""
    bits = ((0, 0), (0, 1), (1, 0), (1, 1))
    lines = ["A perceptron outputs 1 if w . x + b > 0, else 0 (b = -threshold).", "",
             f"NAND: weights {NAND_W}, bias {NAND_B}",
             "  x1 x2 | w.x+b | out"]
    for a, b in bits:
        lines.append(f"   {a}  {b} | {NAND_W[0] * a + NAND_W[1] * b + NAND_B:>5} |  {nand(a, b)}")
    lines += ["", "Two-bit adder built only from NAND perceptrons:", "  x1 x2 | sum carry"]
    for a, b in bits:
        s, c = adder(a, b)
        lines.append(f"   {a}  {b} |  {s}    {c}")
    lines += ["", "The same adder of sigmoid neurons, weights and bias scaled by c:",
              f"     c | {'sum for 00, 01, 10, 11':<23} | {'carry for 00, 01, 10, 11':<24} | max error"]
    for c in scales:
        outs = [adder(a, b, sigmoid_neuron, scale=c) for a, b in bits]
        err = max(abs(o - p) for (a, b), out in zip(bits, outs)
                  for o, p in zip(out, adder(a, b)))
        s = " ".join(f"{o[0]:.3f}" for o in outs)
        k = " ".join(f"{o[1]:.3f}" for o in outs)
        lines.append(f"  {c:>4} | {s} | {k:<24} | {err:.2e}")
    lines += ["", "Cheese festival: weights 6 (weather), 2 (partner), 2 (transit)",
              "  weather partner transit | threshold 5 | threshold 3"]
    for x in ((1, 0, 0), (0, 1, 1), (0, 1, 0), (0, 0, 0)):
        lines.append(f"     {x[0]}       {x[1]}       {x[2]}    |      {cheese_festival(*x)}      "
                     f"|      {cheese_festival(*x, threshold=3)}")
    return lines
