"""SGD for `Model`: L2 regularization, momentum, dropout, monitoring like the
book's network2, early stopping and the halving learning-rate schedule.

The update with momentum mu and L2 parameter lmbda over n training examples,

    v -> mu v - (eta/m) nabla_w - (eta lmbda / n) w,      w -> w + v,

is the book's weight decay w -> (1 - eta lmbda/n) w - (eta/m) nabla_w when
mu = 0.  Biases are not decayed.
"""

import time


from . import backend, training
from .costs import COSTS
from .layers import Conv
from .network import one_hot


def to_device(model, data):
    """(rows (n, n_in), labels) on the model's device (training.to_device),
    refusing an empty set, whose accuracy and cost would divide by zero."""
    if not len(data.labels):
        raise ValueError("a dataset passed to training is empty")
    return training.to_device(model, data)


def measure(model, rows, labels, chunk=None):
    """(summed cost without L2, number correct) over device data, chunked.

    Conv layers' im2col matrices grow by ~50,000 numbers per example; in
    chunks of 50 they stay in cache (measured on the LeNet-style net: 40 us
    per image at 50, 230 us at 1000).  Dense layers like big chunks.
    """
    xp = model.xp
    chunk = chunk or (50 if any(isinstance(layer, Conv) for layer in model.layers) else 1000)
    eye = xp.eye(model.n_out, dtype=model.dtype)
    fn = COSTS[model.cost_name][0]
    cost, correct, n = 0.0, 0, rows.shape[0]
    for k in range(0, n, chunk):
        end = min(k + chunk, n)
        out = model.feedforward(rows[k:end, :].T)
        cost += fn(xp, out, one_hot(xp, labels[k:end], eye))
        correct += int(xp.count_nonzero(xp.argmax(out, axis=0) == labels[k:end]))
    return cost, correct


def evaluate(model, data):
    return measure(model, *to_device(model, data))[1]


def l2_term(model, lmbda, n):
    """lmbda/2n sum w^2, the regularization part of the cost."""
    xp = model.xp
    return 0.5 * lmbda / n * sum(float(xp.sum(w * w)) for w in model.weights)


def whole(value, low):
    """True for a whole number >= low (not inf, NaN or 2.5)."""
    try:
        return int(value) == value and value >= low
    except (TypeError, ValueError, OverflowError):
        return False


def check_options(epochs, mini_batch_size, eta, lmbda, momentum, patience, eta_decay,
                  validation_data):
    if not whole(epochs, 0):
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs}")
    if not whole(mini_batch_size, 1):
        raise ValueError(f"mini_batch_size must be a whole number >= 1, got {mini_batch_size}")
    if not 0 < eta < float("inf"):
        raise ValueError(f"eta must be a positive number, got {eta}")
    if not 0 <= lmbda < float("inf"):
        raise ValueError(f"lmbda must be a number >= 0, got {lmbda}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if patience is not None and not whole(patience, 1):
        raise ValueError(f"patience must be a whole number >= 1, got {patience}")
    if eta_decay is not None and not (eta_decay > 1 and patience is not None):
        raise ValueError("eta_decay needs patience, and must be > 1 (e.g. 128)")
    if patience is not None and validation_data is None:
        raise ValueError("early stopping watches validation accuracy: give validation data")


def step(model, x, y, eta, lmbda, n, momentum, velocities):
    """One SGD step on the mini-batch (x, y), in place."""
    m = x.shape[-1]
    masks = model.dropout_masks(m) if model.dropout else None
    grads = model.backprop(x, y, masks)
    k, decay = eta / m, eta * lmbda / n
    for layer, (nabla_w, nabla_b), (vw, vb) in zip(
            model.params, [g for g in grads if g is not None], velocities):
        if momentum:
            vw *= momentum
            vw -= (k * nabla_w + decay * layer.w) if decay else k * nabla_w
            vb *= momentum
            vb -= k * nabla_b
            layer.w += vw
            layer.b += vb
        else:
            if decay:
                layer.w *= 1.0 - decay
            layer.w -= k * nabla_w
            layer.b -= k * nabla_b


def sgd(model, training_data, epochs, mini_batch_size, eta, lmbda=0.0, momentum=0.0,
        validation_data=None, test_data=None, monitor_training=False, patience=None,
        eta_decay=None, progress=None, on_epoch=None):
    """Train `model`; return one record per epoch.

    Each record has the epoch, its training seconds, the wall seconds since
    the start (evaluation included), eta, and cost and accuracy on each
    dataset given: `correct`/`total`/`accuracy`/`test_cost` for the test
    set, `validation_*`, and `training_*` with `monitor_training`.  Costs
    include the L2 term.  With `patience`, training stops after that many
    epochs without a better validation accuracy; with `eta_decay` too, eta
    is halved each time instead, and training stops once it has fallen by
    that factor.  With validation data, the model ends with the weights of
    its best validation epoch.
    """
    check_options(epochs, mini_batch_size, eta, lmbda, momentum, patience, eta_decay,
                  validation_data)
    xp = model.xp
    rows, labels = to_device(model, training_data)
    sets = {name: to_device(model, d) for name, d in
            (("test", test_data), ("validation", validation_data)) if d is not None}
    if monitor_training:
        sets["training"] = (rows, labels)
    n, m, eta0 = rows.shape[0], int(mini_batch_size), float(eta)
    eye = xp.eye(model.n_out, dtype=model.dtype)
    params = model.params
    velocities = [(xp.zeros_like(p.w), xp.zeros_like(p.b)) for p in params] if momentum else [
        (None, None)] * len(params)
    history, best, since, start = [], None, 0, time.perf_counter()
    for j in range(int(epochs)):
        began = time.perf_counter()
        order = xp.asarray(model.rng.permutation(n))
        batches = range(0, n, m)
        if progress is not None:
            batches = progress(batches, j)
        with backend.quiet_overflow(xp):
            for k in batches:
                idx = order[k:min(k + m, n)]
                x = xp.take(rows, idx, axis=0).T
                step(model, x, one_hot(xp, xp.take(labels, idx), eye), eta, lmbda, n,
                     momentum, velocities)
        backend.synchronize(xp)
        record = {"epoch": j + 1, "seconds": time.perf_counter() - began, "eta": eta}
        penalty = l2_term(model, lmbda, n)
        for name, (r, lab) in sets.items():
            cost, correct = measure(model, r, lab)
            total = r.shape[0]
            prefix = "" if name == "test" else f"{name}_"
            record.update({f"{prefix}correct": correct, f"{prefix}total": total,
                           f"{prefix}accuracy": correct / total,
                           f"{name}_cost": cost / total + penalty})
        record["elapsed"] = time.perf_counter() - start
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if "validation" in sets:
            if best is None or record["validation_accuracy"] > best[0]["validation_accuracy"]:
                best = (record, [(backend.copy(xp, p.w), backend.copy(xp, p.b)) for p in params])
                since = 0
            else:
                since += 1
            if patience is not None and since >= patience:
                if eta_decay is None or eta / 2 <= eta0 / eta_decay:
                    break
                eta, since = eta / 2, 0
    if best is not None:
        for p, (w, b) in zip(params, best[1]):
            p.w, p.b = w, b
    return history


def best_epoch(history):
    """The record to report: best validation accuracy if measured, else best test."""
    key = "validation_accuracy" if history and "validation_accuracy" in history[0] else "accuracy"
    return max(history, key=lambda r: r.get(key, 0.0)) if history else None
