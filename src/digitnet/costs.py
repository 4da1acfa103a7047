"""Costs of chapters 1 and 3, each a value and an output error delta^L.

`fn(xp, a, y)` sums the cost over the columns of a (n_out, m) batch (the
caller divides by n); `delta(xp, a, y, back)` is dC/dz of the output layer,
where `back(a, d) = d * f'(z)` is the output activation's derivative.  The
point of cross-entropy and log-likelihood is that f'(z) cancels from their
delta, so a saturated output neuron still learns fast.
"""

TINY = 1e-30  # keeps log(0) finite when an output saturates, as the book's nan_to_num


def _log(xp, a):
    return xp.log(xp.maximum(a, TINY))


def quadratic_fn(xp, a, y):
    d = a - y
    return 0.5 * float(xp.sum(d * d))


def quadratic_delta(xp, a, y, back):
    return back(xp, a, a - y)


def cross_entropy_fn(xp, a, y):
    """-sum [y ln a + (1-y) ln(1-a)]: for sigmoid outputs."""
    return -float(xp.sum(y * _log(xp, a) + (1.0 - y) * _log(xp, 1.0 - a)))


def log_likelihood_fn(xp, a, y):
    """-ln a_y: for softmax outputs, whose columns sum to 1."""
    return -float(xp.sum(y * _log(xp, a)))


def output_error(xp, a, y, back):
    """a - y: sigmoid with cross-entropy, or softmax with log-likelihood."""
    return a - y


# name -> (fn, delta, the output activation it goes with)
COSTS = {"quadratic": (quadratic_fn, quadratic_delta, "sigmoid"),
         "cross-entropy": (cross_entropy_fn, output_error, "sigmoid"),
         "log-likelihood": (log_likelihood_fn, output_error, "softmax")}
