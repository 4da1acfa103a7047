"""digitnet: from-scratch neural networks for handwritten digits.

    >>> import digitnet
    >>> training, validation, test = digitnet.load_mnist()
    >>> net = digitnet.Network([784, 30, 10])
    >>> history = net.sgd(training, 30, 10, 3.0, test_data=test)

The later chapters: `digitnet.Model` (layers, costs, regularization,
convolutions; see model.py and fit.py) and `digitnet.expand` (the
one-pixel-shift expansion of a training set).
"""

from .data import Dataset, expand, load_dataset, load_mnist
from .model import Model
from .network import Network


def predict(net, paths, dataset="mnist"):
    """Predictions for picture files (see imaging.predict; needs digitnet[image])."""
    from .imaging import predict
    return predict(net, paths, dataset=dataset)



__version__ = "0.1.0"
__all__ = ["Network", "Model", "Dataset", "expand", "load_mnist", "load_dataset", "predict",
           "__version__"]
# Pictures: digitnet.plots (needs digitnet[plot]); the chapter's perceptrons:
# digitnet.perceptron; the installation: digitnet.info.
