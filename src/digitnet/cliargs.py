"""What every `digitnet` command shares: the one-line argument errors,
argument types, the data and device flags, output-path checks, and loading
a saved network that reads 28x28 pictures into 10 classes, and a standard
output whose reader has gone."""

import argparse
import os
import select
import sys

from . import backend, checkpoint, data, files
from .ensemble import Ensemble


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exit status 2,
    with the prefix every other error has: `digitnet: error: `."""

    def error(self, message):
        self.exit(2, f"digitnet: error: {message}\n")


def number_in(accept, what):
    """An argparse type: a float for which accept(value) holds (NaN never
    does), else a one-line error that says what was expected."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


positive_float = number_in(lambda v: 0 < v < float("inf"), "a positive number")
non_negative_float = number_in(lambda v: 0 <= v < float("inf"), "a number >= 0")
fraction = number_in(lambda v: 0 <= v < 1, "in [0, 1)")
percentage = number_in(lambda v: 0 <= v <= 100, "a percentage in [0, 100]")
strength = number_in(lambda v: 0 < v <= 2, "in (0, 2]")


def int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


DATA_DIR_HELP = ("data folder (default: $DIGITNET_DATA, else the checkout's data/ when it has "
                 "the files, else the per-user cache; `digitnet info` says which)")


def add_data_args(p):
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--dataset", choices=data.DATASETS,
                   help="(default: the one the model was trained on; else mnist)")


def dataset_for(net, asked):
    """The dataset a saved network reads (from its class names), or a
    DataError when --dataset asks for another: its accuracy there would be
    a silent wrong answer."""
    own = data.dataset_of(net.classes)
    if asked and own and asked != own:
        raise data.DataError(f"the model's classes are {own}'s, not {asked}'s "
                             "(leave out --dataset)")
    return asked or own or "mnist"


def add_device_arg(p):
    p.add_argument("--device", choices=backend.DEVICES, default="auto",
                   help="auto (the default): CuPy when a CUDA device is usable, else NumPy")


def check_output_path(parser, flag, path):
    """Fail before the work, not after it, when a result could not be written."""
    why = files.problem(path) if path is not None else None
    if why:
        parser.error(f"{flag}: cannot write {path}: {why}")


def load_network(path, device):
    """A saved Network or Model that reads 28x28 pictures into 10 classes,
    refused before its parameters are read when it does not."""
    def fits(n_in, n_out):
        if n_in != data.N_PIXELS or n_out != data.N_CLASSES:
            raise ValueError(f"a network of {n_in} inputs and {n_out} outputs does not fit "
                             "28x28 images in 10 classes")
    return checkpoint.load(path, device=device, fits=fits)


def load_networks(paths, device):
    """The network in one file, or the Ensemble (their outputs averaged) of
    the networks in several; a DataError when they cannot be averaged."""
    nets = [load_network(path, device) for path in paths]
    if len(nets) == 1:
        return nets[0]
    try:
        return Ensemble(nets)
    except ValueError as exc:
        raise data.DataError(f"{', '.join(map(str, paths))}: {exc}") from None


def stdout_closed():
    """True when standard output is a pipe whose reader has gone (`| head`)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file: captured, or closed
        return False


def quiet_pipe():
    """Standard output to /dev/null, so the exit's flush says nothing either."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass
