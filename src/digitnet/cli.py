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

from . import backend, checkpoint, data, download
from .activations import ACTIVATIONS
from .checkpoint import CheckpointError, write_atomic
from .costs import COSTS
from .fit import best_epoch
from .model import INITS, Model, spec_from_sizes
from .network import Network
from .training import ENGINES


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    t.add_argument("--sizes", type=int_at_least(1), nargs="+",
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
    later = t.add_argument_group(
        "later chapters", "any of these trains a layered Model instead of the chapter-1 "
        "Network; a flag left out keeps its chapter-1 meaning")
    later.add_argument("--layers", metavar="SPEC",
                       help="e.g. conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10")
    later.add_argument("--cost", choices=list(COSTS),
                       help="default quadratic; log-likelihood for a softmax output")
    later.add_argument("--activation", choices=list(ACTIVATIONS),
                       help="hidden layers' activation (default sigmoid)")
    later.add_argument("--init", choices=INITS,
                       help="large: N(0,1) weights and biases (default); scaled: "
                            "N(0,1/n_in) weights, zero biases")
    later.add_argument("--lmbda", type=non_negative_float, help="L2 regularization (default 0)")
    later.add_argument("--momentum", type=fraction, help="momentum coefficient mu (default 0)")
    later.add_argument("--dropout", type=fraction,
                       help="drop each input of the hidden fully connected layers with this "
                            "probability while training (default 0)")
    later.add_argument("--expand", action="store_true",
                       help="add one-pixel shifts of each training image (5x the data)")
    later.add_argument("--patience", type=int_at_least(1), metavar="N",
                       help="stop after N epochs without a better validation accuracy")
    later.add_argument("--eta-decay", type=positive_float, metavar="FACTOR",
                       help="with --patience: halve eta instead, and stop once it has "
                            "fallen by FACTOR (e.g. 128)")
    later.add_argument("--monitor-training", action="store_true",
                       help="also measure cost and accuracy on the training data each epoch")

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


LATER = ("layers", "cost", "activation", "init", "lmbda", "momentum", "dropout",
         "expand", "patience", "eta_decay", "monitor_training")


def check_train_args(args, parser):
    """Parser errors (exit 2) for combinations argparse cannot see."""
    if args.layers and args.sizes:
        parser.error("give --sizes or --layers, not both")
    sizes = args.sizes or [784, 30, 10]
    if len(sizes) < 2:
        parser.error("--sizes needs at least an input and an output layer")
    if sizes[0] != 784:
        parser.error(f"--sizes: the first layer must be 784 (28x28 pixels), got {sizes[0]}")
    if sizes[-1] != 10:
        parser.error(f"--sizes: the last layer must be 10 (one per class), got {sizes[-1]}")
    args.sizes = sizes
    # `is not`, not `in`: --lmbda 0 is a choice (0 == False), and still a Model
    args.later = any(getattr(args, name) is not None and getattr(args, name) is not False
                     for name in LATER)
    if args.later and args.engine != "batched":
        parser.error("--engine per-example runs only the chapter-1 network")
    if args.eta_decay is not None and (args.patience is None or args.eta_decay <= 1):
        parser.error("--eta-decay needs --patience and a factor above 1")
    if args.later:
        # Throwaway CPU models: spec, then cost/activation/dropout mistakes
        # are argument errors, found before any data loads.
        checks = [("--layers: ", dict(layers=args.layers))] if args.layers else []
        for flag, options in checks + [("", model_options(args))]:
            try:
                n_out = Model(**options, device="cpu").n_out
            except ValueError as exc:
                parser.error(f"{flag}{exc}")
            except MemoryError:
                parser.error("the network is too large to fit in memory")
            if n_out != 10:
                parser.error("--layers: the output layer must have 10 neurons (one per class)")
    check_output_path(parser, "--save", args.save)
    check_output_path(parser, "--metrics", args.metrics)


def model_options(args):
    """Model arguments from the flags, a missing flag keeping its chapter-1 value."""
    spec = args.layers or spec_from_sizes(args.sizes)
    softmax = spec.replace(" ", "").split(",")[-1].startswith("softmax")
    return dict(layers=spec, cost=args.cost or ("log-likelihood" if softmax else "quadratic"),
                activation=args.activation or "sigmoid", init=args.init or "large",
                dropout=args.dropout or 0.0)


def build_model(args, xp, classes):
    """The network the flags describe: the chapter-1 Network unless a
    later-chapter flag was given, each missing flag keeping its chapter-1 value."""
    if not args.later:
        net = Network(args.sizes, seed=args.seed, device=xp, dtype=args.dtype)
    else:
        net = Model(**model_options(args), seed=args.seed, device=xp, dtype=args.dtype)
    if classes != data.CLASSES["mnist"]:
        net.classes = list(classes)
    return net


def describe_net(net):
    if isinstance(net, Network):
        return str(net.sizes)
    return f"{net.spec} ({net.activation}, {net.cost_name}, {net.init} init)"


def cmd_train(args, parser):
    check_train_args(args, parser)
    xp = backend.namespace(args.device)  # a missing GPU fails before any data loads
    training, validation, test = data.load_dataset(args.dataset, args.data_dir)
    net = build_model(args, xp, test.classes)
    if args.expand:
        training = data.expand(training)
    config = {"command": "train", "dataset": args.dataset, "model": describe_net(net),
              "epochs": args.epochs, "mini_batch_size": args.batch_size, "eta": args.eta,
              "engine": args.engine, "device": backend.describe(net.xp),
              "dtype": args.dtype, "seed": args.seed, "n_train": len(training),
              "n_test": len(test)}
    if isinstance(net, Network):
        config["sizes"] = net.sizes
    else:
        config.update(layers=net.spec, cost=net.cost_name, activation=net.activation,
                      init=net.init, dropout=net.dropout, lmbda=args.lmbda or 0.0,
                      momentum=args.momentum or 0.0, expand=args.expand,
                      patience=args.patience, eta_decay=args.eta_decay)
    print(f"training {config['model']} on {args.dataset} ({len(training)} examples), "
          f"m={args.batch_size}, eta={args.eta}, {args.engine} engine, "
          f"{config['device']} {args.dtype}", flush=True)
    history = []

    def on_epoch(record):
        history.append(record)
        print(epoch_line(record, args.epochs), flush=True)
        if args.metrics:  # rewritten each epoch, so an interrupted run keeps its curve
            write_json(args.metrics, {"config": config, "epochs": history})

    common = dict(test_data=test, progress=progress_bar(args.epochs), on_epoch=on_epoch)
    if isinstance(net, Network):
        net.sgd(training, args.epochs, args.batch_size, args.eta, engine=args.engine, **common)
    else:
        net.sgd(training, args.epochs, args.batch_size, args.eta, lmbda=args.lmbda or 0.0,
                momentum=args.momentum or 0.0, validation_data=validation,
                monitor_training=args.monitor_training, patience=args.patience,
                eta_decay=args.eta_decay, **common)
    best = best_epoch(history)
    if best and "validation_accuracy" in best:
        print(f"best validation accuracy {100 * best['validation_accuracy']:.2f}% at epoch "
              f"{best['epoch']}: test accuracy {100 * best['accuracy']:.2f}% "
              f"({history[-1]['elapsed']:.0f}s in all)")
    elif best:
        print(f"best test accuracy {100 * best['accuracy']:.2f}% at epoch {best['epoch']}")
    if args.save:
        net.save(args.save)
        print(f"saved {args.save}" + (f" (the weights of epoch {best['epoch']})"
                                      if best and "validation_accuracy" in best else ""))
    return 0


def epoch_line(record, epochs):
    line = (f"epoch {record['epoch']}/{epochs}  test {record['correct']}/{record['total']} "
            f"({100 * record['accuracy']:.2f}%)")
    if "validation_accuracy" in record:
        line += f"  validation {100 * record['validation_accuracy']:.2f}%"
    if "training_accuracy" in record:
        line += f"  training {100 * record['training_accuracy']:.2f}%"
    if "test_cost" in record:
        line += f"  cost {record['test_cost']:.4f}"
    return line + f"  {record['seconds']:.2f}s"


def write_json(path, obj):
    write_atomic(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def load_network(path, device):
    """A saved Network or Model that reads 28x28 pictures into 10 classes."""
    net = checkpoint.load(path, device=device)
    if net.n_in != 784 or net.n_out != 10:
        raise CheckpointError(f"{path}: {describe_net(net)} does not fit 28x28 "
                              "images in 10 classes")
    return net


def cmd_evaluate(args, parser):
    net = load_network(args.model, args.device)
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
    except MemoryError:
        print("digitnet: error: out of memory (a smaller network, --batch-size or dataset?)",
              file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        # DataError, CheckpointError, BackendError, DownloadError and file
        # system errors are the user's to fix: one line, no traceback.
        print(f"digitnet: error: {exc}", file=sys.stderr)
        return 1
