"""The `digitnet` commands that show rather than train: predict, plot,
perceptron, info.  Kept apart from cli.py, which owns train/evaluate/download;
the same rules hold: a user's mistake is one line and a non-zero exit.
"""

import json
import sys

from . import data
from .cliargs import (DATA_DIR_HELP, Parser, add_data_args, add_device_arg, check_output_path, dataset_for,
                      int_at_least, load_network, load_networks, percentage)


def add_commands(sub):
    """Add predict, plot, perceptron and info to the `digitnet` subparsers."""
    p = sub.add_parser("predict", help="predict the digit in your own pictures (PNG, JPEG)")
    p.add_argument("model", help="a saved network (.npz)")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="picture files (PNG, JPEG, ...); - reads one from standard input")
    p.add_argument("--ensemble", action="append", default=[], metavar="MODEL",
                   help="also this model (repeatable): the outputs are the models' average")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    p.add_argument("--dataset", choices=data.DATASETS, default="mnist",
                   help="class names and preprocessing, when the model does not say")
    add_device_arg(p)
    p.set_defaults(run=cmd_predict)

    plot = sub.add_parser("plot", help="draw a picture as a PNG file (needs digitnet[plot])")
    kinds = plot.add_subparsers(dest="picture", required=True, parser_class=Parser)

    c = kinds.add_parser("curves", help="accuracy and cost per epoch from metrics files")
    c.add_argument("runs", nargs="+", metavar="RUN.json", help="written by train --metrics")
    c.add_argument("--labels", nargs="+", help="one legend label per run")
    _out(c, cmd_curves)

    t = kinds.add_parser("time", help="test accuracy against wall seconds from metrics files")
    t.add_argument("runs", nargs="+", metavar="RUN.json", help="written by train --metrics")
    t.add_argument("--labels", nargs="+", help="one legend label per run")
    t.add_argument("--target", type=percentage, metavar="PERCENT",
                   help="draw a level line at this accuracy, e.g. 99.5")
    _out(t, cmd_time)

    for name, helptext, run in (
            ("errors", "a grid of misclassified test examples", cmd_errors),
            ("confusion", "the confusion matrix on the test set", cmd_confusion)):
        e = kinds.add_parser(name, help=helptext)
        e.add_argument("model")
        add_data_args(e)
        add_device_arg(e)
        if name == "errors":
            e.add_argument("--count", type=int_at_least(1), default=40, help="examples shown")
        _out(e, run)

    w = kinds.add_parser("weights", help="each hidden neuron's input weights as a 28x28 picture")
    w.add_argument("model")
    _out(w, cmd_weights)

    s = kinds.add_parser("samples", help="a grid of the dataset's first training examples")
    add_data_args(s)
    s.add_argument("--count", type=int_at_least(1), default=40)
    _out(s, cmd_samples)

    q = sub.add_parser("perceptron", help="the chapter's perceptrons: NAND, an adder, sigmoid limits")
    q.set_defaults(run=cmd_perceptron)

    i = sub.add_parser("info", help="versions, BLAS, GPU, data folder and dataset files")
    i.add_argument("--data-dir", help=DATA_DIR_HELP)
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=cmd_info)


def _out(p, run):
    p.add_argument("--out", required=True, metavar="FILE.png",
                   help="the picture to write: .png, .svg or .pdf, as its suffix says")
    p.set_defaults(run=run)


def check_picture(parser, path):
    """--out writable and named for a format matplotlib writes, before any work."""
    from .plots import picture_format
    try:
        picture_format(path)
    except ValueError as exc:
        parser.error(f"--out: {exc}")
    check_output_path(parser, "--out", path)


def cmd_predict(args, parser):
    from . import imaging
    from .extras import require
    if args.images.count("-") > 1:
        parser.error("- (standard input) can be given only once")
    require("PIL", "image", "digitnet predict")  # before loading anything
    net = load_networks([args.model, *args.ensemble], args.device)
    stdin = imaging.Piped(getattr(sys.stdin, "buffer", None), "<stdin>")
    sources = [stdin if name == "-" else name for name in args.images]
    results = imaging.predict(net, sources, dataset=args.dataset or "mnist")
    softmax = net.output == "softmax"
    failed = [r for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    for r in results:
        if "error" in r:
            print(f"digitnet: error: {r['error']}", file=sys.stderr)
        elif "note" in r:
            print(f"digitnet: note: {r['path']}: {r['note']}", file=sys.stderr)
    if args.json:
        print(json.dumps(ok, indent=1))
    else:
        what = "probabilities" if softmax else "outputs"
        for r in ok:
            name = r["label"] if r["label"] == str(r["digit"]) else f"{r['label']} ({r['digit']})"
            values = " ".join(f"{v:.3f}" for v in r["outputs"])
            print(f"{r['path']}: {name}  {what} [{values}]")
    return 1 if failed else 0


def _test_set(args, net):
    _, _, test = data.load_dataset(dataset_for(net, args.dataset), args.data_dir)
    return test


def _metrics_plot(args, parser, draw, **options):
    """plot curves and plot time: check --out and --labels, then draw."""
    check_picture(parser, args.out)
    if args.labels and len(args.labels) != len(args.runs):
        parser.error(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
    draw(args.runs, labels=args.labels, path=args.out, **options)
    return _wrote(args.out)


def cmd_curves(args, parser):
    from . import plots
    return _metrics_plot(args, parser, plots.learning_curves)


def cmd_time(args, parser):
    from . import plots
    return _metrics_plot(args, parser, plots.time_to_accuracy, target=args.target)


def cmd_errors(args, parser):
    from . import plots
    check_picture(parser, args.out)
    plots.figure(1, 1)  # a missing matplotlib fails before the model and data load
    net = load_network(args.model, args.device)
    test = _test_set(args, net)
    plots.misclassified(net, test, n=args.count, path=args.out)
    return _wrote(args.out)


def cmd_confusion(args, parser):
    from . import plots
    check_picture(parser, args.out)
    plots.figure(1, 1)
    net = load_network(args.model, args.device)
    plots.confusion_matrix(net, _test_set(args, net), path=args.out)
    return _wrote(args.out)


def cmd_weights(args, parser):
    from . import plots
    check_picture(parser, args.out)
    plots.figure(1, 1)
    plots.hidden_weights(load_network(args.model, "cpu"), path=args.out)
    return _wrote(args.out)


def cmd_samples(args, parser):
    from . import plots
    check_picture(parser, args.out)
    plots.figure(1, 1)
    training, _, _ = data.load_dataset(args.dataset or "mnist", args.data_dir)
    plots.samples(training, n=args.count, path=args.out)
    return _wrote(args.out)


def _wrote(path):
    print(f"wrote {path}")
    return 0


def cmd_perceptron(args, parser):
    from .perceptron import report
    print("\n".join(report()))
    return 0


def cmd_info(args, parser):
    from .info import format_info, info
    d = info(args.data_dir)
    print(json.dumps(d, indent=1) if args.json else "\n".join(format_info(d)))
    return 0
