"""Optional dependencies, imported only by the commands that need them.

`import digitnet` must work with NumPy alone; a missing extra is a one-line
error that says which extra to install, raised when it is first needed.
"""

import importlib


class MissingExtra(RuntimeError):
    """An optional library is not installed."""


def require(module, extra, what):
    """`module`, imported, or a MissingExtra naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install 'digitnet[{extra}]'") from None
