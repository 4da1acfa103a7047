"""digitnet: from-scratch neural networks for handwritten digits.

    >>> import digitnet
    >>> training, validation, test = digitnet.load_mnist()
    >>> net = digitnet.Network([784, 30, 10])
    >>> history = net.sgd(training, 30, 10, 3.0, test_data=test)
    >>> net.save("net.npz"); net = digitnet.Network.load("net.npz")
    >>> digitnet.predict(net, ["my-digit.png"])   # pictures: needs digitnet[image]

The later chapters: `digitnet.Model` (layers, costs, regularization,
convolutions; see model.py), the same trainer for both (training.py:
L2, momentum, early stopping, checkpoints of runs) and `digitnet.expand`
(the one-pixel-shift expansion of a training set).

The names below are imported on first use, so that `import digitnet` (and
so the `digitnet` command's first moments) does not wait for NumPy: a
Ctrl-C there is then the command's to handle (__main__.py).
"""

import importlib

__version__ = "0.1.0"
# name -> the module that defines it
_HOMES = {"Network": "network", "Model": "model", "Dataset": "data", "expand": "data",
          "load_mnist": "data", "load_dataset": "data", "save": "checkpoint",
          "load": "checkpoint", "Classifier": "base", "predict": "imaging",
          "Ensemble": "ensemble"}
__all__ = ["Network", "Model", "Classifier", "Ensemble", "Dataset", "expand", "load_mnist", "load_dataset",
           "save", "load", "predict", "__version__"]


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
# Predictions for picture files: digitnet.predict, which is digitnet.imaging.predict
# (needs digitnet[image]); pictures: digitnet.plots (needs digitnet[plot]); the chapter's perceptrons:
# digitnet.perceptron; the installation: digitnet.info.
