"""Costs of chapters 1 and 3, each a class with a value and an output
error delta^L, as in the book's network2.py.

`fn(xp, a, y)` sums the cost over the columns of a (n_out, m) batch (the
caller divides by n); `delta(xp, a, y, back)` is dC/dz of the output layer,
where `back(a, d) = d * f'(z)` is the output activation's derivative.  The
point of cross-entropy and log-likelihood is that f'(z) cancels from their
delta, so a saturated output neuron still learns fast.
"""

TINY = 1e-30  # keeps log(0) finite when an output saturates, as the book's nan_to_num


def _log(xp, a):
    return xp.log(xp.maximum(a, TINY))


class QuadraticCost:
    """C = 1/2 ||y - a||^2: chapter 1's cost, for sigmoid outputs."""

    output = "sigmoid"

    @staticmethod
    def fn(xp, a, y):
        d = a - y
        return 0.5 * float(xp.sum(d * d))

    @staticmethod
    def delta(xp, a, y, back):
        return back(xp, a, a - y)


class CrossEntropyCost:
    """-sum [y ln a + (1-y) ln(1-a)]: for sigmoid outputs (chapter 3)."""

    output = "sigmoid"

    @staticmethod
    def fn(xp, a, y):
        return -float(xp.sum(y * _log(xp, a) + (1.0 - y) * _log(xp, 1.0 - a)))

    @staticmethod
    def delta(xp, a, y, back):
        """a - y: sigma'(z) cancels."""
        return a - y


class LogLikelihoodCost:
    """-ln a_y: for softmax outputs, whose columns sum to 1 (chapter 3)."""

    output = "softmax"

    @staticmethod
    def fn(xp, a, y):
        return -float(xp.sum(y * _log(xp, a)))

    delta = CrossEntropyCost.delta  # a - y: softmax's derivative cancels too


# The costs by the names the command line and files use.
COSTS = {"quadratic": QuadraticCost, "cross-entropy": CrossEntropyCost,
         "log-likelihood": LogLikelihoodCost}
