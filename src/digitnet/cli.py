"""The `digitnet` command: train networks, evaluate them, and show what they do.

The parser, evaluate and download live here; train's checks and reports in
cli_runs.py (a run's safety itself is the library's: runs.py); predict,
plot, perceptron and info in cli_show.py, the shared flags and checks in
cliargs.py.

Every user mistake ends in one line on stderr (`digitnet: error: ...`) and a
non-zero exit (2 for bad arguments, 1 for bad files or data), never a
traceback.  A training run stopped by Ctrl-C or SIGTERM finishes its
mini-batch, keeps what its finished epochs earned, and exits 130 or 143; a
checkpoint or metrics file that cannot be written costs no training (exit 1
at the end).  The long-run rules are runs.py's and docs/runs.md's.
"""

import signal
import sys

from . import backend, checkpoint, cli_runs, cli_serve, cli_show, data, download
from .activations import ACTIVATIONS
from .cli_runs import DEFAULTS
from .cliargs import (DATA_DIR_HELP, Parser, add_data_args, add_device_arg, dataset_for,
                      fraction, int_at_least, load_network, non_negative_float,
                      positive_float, quiet_pipe, stdout_closed, strength)
from .config import ENGINES, OPTIMIZERS, SCHEDULES
from .costs import COSTS
from .ensemble import Ensemble
from .model import INITS


def build_parser():
    parser = Parser(prog="digitnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", parser_class=Parser)  # none: the list

    t = sub.add_parser("train", help="train a network and report its accuracy per epoch")

    def flag(*names, group=t, **kw):
        key = names[0].lstrip("-").replace("-", "_")
        shown = DEFAULTS.get(key)
        if shown is not None and shown is not False:
            shown = " ".join(map(str, shown)) if isinstance(shown, list) else shown
            kw["help"] = (kw.get("help", "") + f" (default: {shown})").strip()
        group.add_argument(*names, default=None, **kw)

    flag("--sizes", type=int_at_least(1), nargs="+", help="neurons per layer, input first")
    flag("--epochs", type=int_at_least(1), help="epochs in all (with --resume: the new total)")
    flag("--batch-size", type=int_at_least(1), help="mini_batch_size m")
    flag("--eta", type=positive_float, help="learning rate")
    flag("--engine", choices=ENGINES)
    add_device_arg(t)
    flag("--dtype", choices=backend.DTYPES)
    flag("--seed", type=int_at_least(0), help="fixes the initial weights, order and dropout")
    t.add_argument("--data-dir", help=DATA_DIR_HELP)
    flag("--dataset", choices=data.DATASETS)
    t.add_argument("--save", metavar="PATH", help="write the trained network (.npz)")
    t.add_argument("--metrics", metavar="PATH", help="write config and per-epoch results (JSON)")
    t.add_argument("--checkpoint", metavar="PATH",
                   help="after every epoch, write everything needed to --resume the run")
    t.add_argument("--resume", metavar="PATH",
                   help="go on with a --checkpoint file's run and settings (only --epochs, "
                        "--save, --metrics, --checkpoint, --device, --data-dir may be given)")
    arch = t.add_argument_group(
        "architecture (chapters 3 and 6)", "any of these trains a layered Model instead of the "
        "chapter-1 Network; a flag left out keeps its chapter-1 meaning")
    flag("--layers", group=arch, metavar="SPEC",
         help="e.g. conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10")
    flag("--cost", group=arch, choices=list(COSTS),
         help="(default: quadratic; log-likelihood for a softmax output)")
    flag("--activation", group=arch, choices=list(ACTIVATIONS), help="hidden layers' neurons")
    flag("--init", group=arch, choices=INITS,
         help="large: N(0,1) weights and biases; scaled: N(0,1/n_in) weights, zero biases")
    flag("--dropout", group=arch, type=fraction,
         help="drop each input of the hidden fully connected layers with this probability")
    opt = t.add_argument_group("training (chapter 3), for any network")
    flag("--lmbda", group=opt, type=non_negative_float, help="L2 regularization")
    flag("--momentum", group=opt, type=fraction, help="momentum coefficient mu")
    flag("--expand", group=opt, action="store_true",
         help="add one-pixel shifts of each training image (5x the data)")
    flag("--patience", group=opt, type=int_at_least(1), metavar="N",
         help="stop after N epochs without a better validation accuracy")
    flag("--eta-decay", group=opt, type=positive_float, metavar="FACTOR",
         help="with --patience: halve eta instead, and stop once it has fallen by FACTOR")
    flag("--monitor-training", group=opt, action="store_true",
         help="also measure cost and accuracy on the training data each epoch")
    flag("--augment", group=opt, action="store_true",
         help="distort every mini-batch afresh: rotation, scale, shear, shift, elastic "
              "distortion, stroke thickness and blur (reads more people's handwriting)")
    flag("--augment-strength", group=opt, type=strength, metavar="S",
         help="with --augment: scale every distortion's range, up to 2 (0.6: closer to "
              "MNIST's own test set)")
    fast = t.add_argument_group("beyond the book (schedules, docs/cli.md)")
    flag("--schedule", group=fast, choices=SCHEDULES,
         help="eta over the run: constant (halved by --eta-decay), or set at every "
              "mini-batch: one-cycle (rise, then a linear fall to 0) or cosine")
    flag("--warmup", group=fast, type=fraction, metavar="FRACTION",
         help="one-cycle and cosine: the fraction of the run's steps over which eta "
              "rises from eta/25 to --eta")
    flag("--nesterov", group=fast, action="store_true", help="Nesterov's momentum")
    flag("--label-smoothing", group=fast, type=fraction, metavar="EPS",
         help="train towards (1-EPS) on the label and EPS/10 spread over all classes")
    flag("--test-at-end", group=fast, action="store_true",
         help="measure the test set once, at the best validation epoch, not every epoch")
    flag("--optimizer", group=fast, choices=OPTIMIZERS,
         help="sgd (the book's, with --momentum) or adam (AdamW: --lmbda decays the weights "
              "apart from the gradient)")
    flag("--beta1", group=fast, type=fraction, help="adam's average of the gradients")
    flag("--beta2", group=fast, type=fraction, help="adam's average of their squares")

    e = sub.add_parser("evaluate", help="test accuracy of a saved network, or of several and "
                                        "of their average (an ensemble)")
    e.add_argument("model", nargs="+", help="one or more model files (.npz)")
    add_device_arg(e)
    add_data_args(e)

    d = sub.add_parser("download", help="download and verify the dataset files")
    d.add_argument("--data-dir", help=DATA_DIR_HELP)
    d.add_argument("--dataset", choices=data.DATASETS + ("all",), default="mnist")

    cli_show.add_commands(sub)
    cli_serve.add_commands(sub)
    return parser


def cmd_evaluate(args, parser):
    """Each model's test accuracy, on the dataset it was trained on; with
    several, their ensemble's too (the average of their outputs), or a
    notice of why they cannot be averaged, the models' own lines kept."""
    nets = [load_network(path, args.device) for path in args.model]
    named, unmixable = list(zip(args.model, nets)), None
    if len(nets) > 1:
        try:
            named.append((f"ensemble of {len(nets)}", Ensemble(nets)))
        except ValueError as exc:
            unmixable = exc
    tests = {}
    for name, net in named:
        dataset = dataset_for(net, args.dataset)
        if dataset not in tests:
            tests[dataset] = data.load_dataset(dataset, args.data_dir)[2]
        test = tests[dataset]
        correct = net.evaluate(test)
        print(f"{name}: test {correct}/{len(test)} ({100 * correct / len(test):.2f}%) "
              f"on {dataset}", flush=True)
    if unmixable:
        print(f"digitnet: notice: no ensemble line: {unmixable}", file=sys.stderr)
    return 0


def cmd_download(args, parser):
    names = data.DATASETS if args.dataset == "all" else (args.dataset,)
    for name in names:
        directory, why = data.place(name, args.data_dir)
        download.ensure(name, directory, replace_bad=True, why=why)
        print(f"{name}: {len(download.FILES)} files verified in {directory}")
    return 0


COMMANDS = {"train": cli_runs.cmd_train, "evaluate": cmd_evaluate, "download": cmd_download}


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # a bare `digitnet`: what it can do
            parser.print_help()
            return 0
        run = COMMANDS.get(args.command) or args.run  # cli_show's commands carry `run`
        code = run(args, parser)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as exc:
        if not stdout_closed():
            return fail(exc)
        quiet_pipe()  # `digitnet info --json | head`: the reader had enough
        return 128 + signal.SIGPIPE
    except MemoryError:
        print("digitnet: error: out of memory (a smaller network, --batch-size or dataset?)",
              file=sys.stderr)
        return 1
    except checkpoint.CheckpointError as exc:  # one line per problem found in the file
        for line in exc.lines:
            print(f"digitnet: error: {line}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        return fail(exc)


def fail(exc):
    """DataError, BackendError, DownloadError and file system errors are the
    user's to fix: one line, no traceback, exit 1."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        message = f"{exc.filename}: {exc.strerror.lower()}"  # not "[Errno 36] ...: 'name'"
    else:
        message = str(exc).splitlines()[0] if str(exc) else repr(exc)
    print(f"digitnet: error: {message}", file=sys.stderr)
    return 1
