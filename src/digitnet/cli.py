"""The `digitnet` command: train networks, evaluate them, and show what they do.

train, evaluate and download live here; predict, plot, perceptron and info
in cli_show.py.

Every user mistake ends in one line on stderr and a non-zero exit (2 for bad
arguments, 1 for bad files or data), never a traceback.
"""

import argparse
import json
import sys
from pathlib import Path

from . import backend, data, download
from .checkpoint import CheckpointError, write_atomic
from .network import Network
from .training import ENGINES


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


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


def add_data_args(p):
    p.add_argument("--data-dir", help="data folder (default: $DIGITNET_DATA, else ./data)")
    p.add_argument("--dataset", choices=data.DATASETS, default="mnist")


def add_device_arg(p):
    p.add_argument("--device", choices=backend.DEVICES, default="auto",
                   help="auto: CuPy when a CUDA device is usable, else NumPy")


def build_parser():
    parser = Parser(prog="digitnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a network and report test accuracy per epoch")
    t.add_argument("--sizes", type=int_at_least(1), nargs="+", default=[784, 30, 10],
                   help="neurons per layer, input first (default: 784 30 10)")
    t.add_argument("--epochs", type=int_at_least(0), default=30)
    t.add_argument("--batch-size", type=int_at_least(1), default=10, help="mini_batch_size m")
    t.add_argument("--eta", type=positive_float, default=3.0, help="learning rate")
    t.add_argument("--engine", choices=list(ENGINES), default="batched")
    add_device_arg(t)
    t.add_argument("--dtype", choices=backend.DTYPES, default="float32")
    t.add_argument("--seed", type=int, default=0)
    add_data_args(t)
    t.add_argument("--save", metavar="PATH", help="write the trained network (.npz)")
    t.add_argument("--metrics", metavar="PATH", help="write config and per-epoch results (JSON)")

    e = sub.add_parser("evaluate", help="test accuracy of a saved network")
    e.add_argument("model")
    add_device_arg(e)
    add_data_args(e)

    d = sub.add_parser("download", help="download and verify the dataset files")
    d.add_argument("--data-dir", help="data folder (default: $DIGITNET_DATA, else ./data)")
    d.add_argument("--dataset", choices=data.DATASETS + ("all",), default="mnist")

    from . import cli_show  # predict, plot, perceptron, info: they import this module
    cli_show.add_commands(sub)
    return parser


def check_output_path(parser, flag, path):
    """Fail before training, not after it, when a result could not be written."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        parser.error(f"{flag}: folder {Path(path).parent} does not exist")


def progress_bar(epochs):
    """A tqdm wrapper for the mini-batch loop; silent when not on a terminal."""
    from tqdm import tqdm

    def wrap(batches, epoch):
        return tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                    leave=False, disable=None, mininterval=0.5)
    return wrap


def cmd_train(args, parser):
    sizes = args.sizes
    if len(sizes) < 2:
        parser.error("--sizes needs at least an input and an output layer")
    if sizes[0] != 784:
        parser.error(f"--sizes: the first layer must be 784 (28x28 pixels), got {sizes[0]}")
    if sizes[-1] != 10:
        parser.error(f"--sizes: the last layer must be 10 (one per class), got {sizes[-1]}")
    check_output_path(parser, "--save", args.save)
    check_output_path(parser, "--metrics", args.metrics)

    xp = backend.namespace(args.device)  # a missing GPU fails before any data loads
    training, _, test = data.load_dataset(args.dataset, args.data_dir)
    net = Network(sizes, seed=args.seed, device=xp, dtype=args.dtype)
    config = {"command": "train", "dataset": args.dataset, "sizes": sizes,
              "epochs": args.epochs, "mini_batch_size": args.batch_size, "eta": args.eta,
              "engine": args.engine, "device": backend.describe(net.xp),
              "dtype": args.dtype, "seed": args.seed, "n_train": len(training),
              "n_test": len(test)}
    print(f"training {sizes} on {args.dataset} ({len(training)} examples), "
          f"m={args.batch_size}, eta={args.eta}, {args.engine} engine, "
          f"{config['device']} {args.dtype}", flush=True)
    history = []

    def on_epoch(record):
        history.append(record)
        print(f"epoch {record['epoch']}/{args.epochs}  test {record['correct']}/"
              f"{record['total']} ({100 * record['accuracy']:.2f}%)  "
              f"{record['seconds']:.2f}s", flush=True)
        if args.metrics:  # rewritten each epoch, so an interrupted run keeps its curve
            write_json(args.metrics, {"config": config, "epochs": history})

    net.sgd(training, args.epochs, args.batch_size, args.eta, test_data=test,
            engine=args.engine, progress=progress_bar(args.epochs), on_epoch=on_epoch)
    if history:
        best = max(history, key=lambda r: r["accuracy"])
        print(f"best test accuracy {100 * best['accuracy']:.2f}% at epoch {best['epoch']}")
    if args.save:
        net.save(args.save)
        print(f"saved {args.save}")
    return 0


def write_json(path, obj):
    write_atomic(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def cmd_evaluate(args, parser):
    net = Network.load(args.model, device=args.device)
    if net.sizes[0] != 784 or net.sizes[-1] != 10:
        raise CheckpointError(f"{args.model}: sizes {net.sizes} do not fit 28x28 images in 10 classes")
    _, _, test = data.load_dataset(args.dataset, args.data_dir)
    correct = net.evaluate(test)
    print(f"{args.model}: test {correct}/{len(test)} ({100 * correct / len(test):.2f}%) "
          f"on {args.dataset}")
    return 0


def cmd_download(args, parser):
    names = data.DATASETS if args.dataset == "all" else (args.dataset,)
    for name in names:
        directory = data.data_root(args.data_dir) / name
        download.ensure(name, directory)
        status = download.verified(name, directory)
        bad = [f for f, ok in status.items() if not ok]
        if bad:
            raise data.DataError(f"{directory}: {', '.join(bad)} do not match the published SHA-256")
        print(f"{name}: {len(status)} files verified in {directory}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "download": cmd_download}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run = COMMANDS.get(args.command) or args.run  # cli_show's commands carry `run`
        return run(args, parser)
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as exc:
        # DataError, CheckpointError, BackendError, DownloadError and file
        # system errors are the user's to fix: one line, no traceback.
        print(f"digitnet: error: {exc}", file=sys.stderr)
        return 1
