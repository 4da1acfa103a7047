"""digitnet: from-scratch neural networks for handwritten digits.

    >>> import digitnet
    >>> training, validation, test = digitnet.load_mnist()
    >>> net = digitnet.Network([784, 30, 10])
    >>> history = net.sgd(training, 30, 10, 3.0, test_data=test)
    >>> digitnet.save(net, "net.npz"); net = digitnet.load("net.npz")

The later chapters: `digitnet.Model` (layers, costs, regularization,
convolutions; see model.py), the same trainer for both (training.py:
L2, momentum, early stopping, checkpoints of runs) and `digitnet.expand`
(the one-pixel-shift expansion of a training set).
"""

from .checkpoint import load, save
from .data import Dataset, expand, load_dataset, load_mnist
from .model import Model
from .network import Network

__version__ = "0.1.0"
__all__ = ["Network", "Model", "Dataset", "expand", "load_mnist", "load_dataset", "save",
           "load", "__version__"]
# Predictions for picture files: digitnet.imaging.predict (needs digitnet[image]);
# pictures: digitnet.plots (needs digitnet[plot]); the chapter's perceptrons:
# digitnet.perceptron; the installation: digitnet.info.
