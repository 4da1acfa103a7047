"""The `digitnet` command: train networks, evaluate them, and show what they do.

train, evaluate and download live here; predict, plot, perceptron and info
in cli_show.py, the shared flags and checks in cliargs.py.

Every user mistake ends in one line on stderr (`digitnet: error: ...`) and a
non-zero exit (2 for bad arguments, 1 for bad files or data), never a
traceback.  A training run stopped by Ctrl-C or SIGTERM finishes its
mini-batch, keeps what its finished epochs earned, and exits 130 or 143; a
checkpoint or metrics file that cannot be written costs no training (exit 1
at the end).  The long-run rules are cli_runs.py's and docs/runs.md's.
"""

import dataclasses
import json
import math
import os
import re
import signal
import sys

from . import (backend, checkpoint, cli_runs, cli_serve, cli_show, data, download, signals,
               training)
from .activations import ACTIVATIONS
from .cliargs import (DATA_DIR_HELP, Parser, add_data_args, add_device_arg, dataset_for,
                      fraction, int_at_least, load_network, non_negative_float,
                      positive_float, quiet_pipe, stdout_closed)
from .costs import COSTS
from .config import DEFAULTS as SETTINGS, ENGINES, FIELDS, SCHEDULES, TrainConfig
from .ensemble import Ensemble
from .files import write_atomic
from .model import INITS, Architecture, Model, spec_from_sizes
from .network import Network

# The chapter-1 values every training flag falls back to.  Flags default to
# None so that `--resume` can tell what the user gave.
# TrainConfig's own defaults (SETTINGS) are the book's; m and eta are chapter 1's.
DEFAULTS = {**SETTINGS, "sizes": [data.N_PIXELS, 30, data.N_CLASSES], "batch_size": 10,
            "eta": 3.0, "dtype": "float32", "seed": 0, "dataset": "mnist", "cost": None,
            "activation": "sigmoid", "init": "large", "dropout": 0.0, "expand": False}
ARCHITECTURE = ("layers", "cost", "activation", "init", "dropout")
# What a resumed run may change: where its results go and what it runs on.
RESUMABLE = ("epochs", "save", "metrics", "checkpoint", "device", "data_dir", "resume")


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


def check_train_args(args, parser):
    """Parser errors (exit 2) for what argparse cannot see, before any data loads."""
    cli_runs.check_outputs(args, parser)
    args.relative = {key: not os.path.isabs(getattr(args, key)) for key in ("save", "metrics")
                     if getattr(args, key)}
    if args.resume:
        given = [k for k, v in vars(args).items() if k in DEFAULTS or k == "layers"
                 if v is not None and k not in RESUMABLE]
        if given:
            parser.error(f"--{given[0].replace('_', '-')}: a resumed run keeps its own "
                         "settings; only --epochs, --save, --metrics, --checkpoint, "
                         "--device and --data-dir may be given")
        return
    if args.layers is not None and args.sizes:
        parser.error("give --sizes or --layers, not both")
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    sizes = args.sizes
    if len(sizes) < 2:
        parser.error("--sizes needs at least an input and an output layer")
    if sizes[0] != data.N_PIXELS:
        parser.error(f"--sizes: the first layer must be {data.N_PIXELS} (28x28 pixels), "
                     f"got {sizes[0]}")
    if sizes[-1] != data.N_CLASSES:
        parser.error(f"--sizes: the last layer must be {data.N_CLASSES} (one per class), "
                     f"got {sizes[-1]}")
    args.model = any(getattr(args, name) != DEFAULTS.get(name) for name in ARCHITECTURE)
    try:  # every training setting checked once, by TrainConfig, before any data loads
        # each field's flag is its name, but for m's --batch-size
        args.config = TrainConfig(**{key: getattr(args, FLAGS[key].lstrip("-").replace("-", "_"))
                                     for key in FIELDS})
    except ValueError as exc:
        parser.error(as_flags(str(exc)))
    if args.model:
        if args.layers is not None and not args.layers.strip():
            parser.error("--layers: empty; give a spec such as fc:100,softmax:10")
        checks = [("--layers: ", dict(layers=args.layers))] if args.layers else []
        for flag, options in checks + [("", model_options(args))]:
            try:  # parsed and checked, no weights drawn: mistakes show before data loads
                arch = Architecture.parse(**options)
            except ValueError as exc:
                parser.error(f"{flag}{exc}")
            n_out = arch.n_out
            numbers = sum(math.prod(w) + b[0] for w, b in arch.param_shapes())
            if numbers * (4 if args.dtype == "float32" else 8) > physical_memory():
                parser.error(f"the network is too large to fit in memory ({numbers:,} "
                             "weights and biases)")
            if n_out != data.N_CLASSES:
                parser.error(f"--layers: the output layer must have {data.N_CLASSES} "
                             "neurons (one per class)")


# The command line's name for each TrainConfig field.
FLAGS = {"mini_batch_size": "--batch-size", "eta_decay": "--eta-decay", "eta": "--eta",
         "lmbda": "--lmbda", "momentum": "--momentum", "patience": "--patience",
         "engine": "--engine", "augment": "--augment", "epochs": "--epochs",
         "monitor_training": "--monitor-training", "schedule": "--schedule",
         "warmup": "--warmup", "nesterov": "--nesterov", "label_smoothing": "--label-smoothing",
         "test_at_end": "--test-at-end"}


def as_flags(message):
    """A TrainConfig error in the command line's words (eta_decay -> --eta-decay)."""
    return re.sub(r"\b(" + "|".join(FLAGS) + r")\b", lambda m: FLAGS[m.group(1)], message)


def physical_memory():
    """Bytes of memory this machine has (inf where the system will not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return math.inf


def model_options(args):
    """Model arguments from the flags, a missing flag keeping its chapter-1 value."""
    return dict(layers=args.layers or spec_from_sizes(args.sizes), cost=args.cost,
                activation=args.activation, init=args.init, dropout=args.dropout)


def new_run(args, xp, classes):
    """The network the flags describe, and its run: a chapter-1 Network
    unless an architecture flag was given."""
    if args.model:
        net = Model(**model_options(args), seed=args.seed, device=xp, dtype=args.dtype)
    else:
        net = Network(args.sizes, seed=args.seed, device=xp, dtype=args.dtype)
    if data.dataset_of(classes) != "mnist":
        net.classes = list(classes)
    return training.Run(net, args.config)


# The command's own settings a checkpoint keeps, beside the run's.
KEPT = ("epochs", "dataset", "expand", "monitor_training", "save", "metrics")


def resumed_run(args, parser, xp):
    """The run in --resume's file, with the command's settings it kept (the
    defaults for a checkpoint written from Python, which keeps none).  An
    output path kept relative is relative to the checkpoint's folder."""
    run, kept = checkpoint.load_run(args.resume, device=xp)
    cli_runs.check_extra(args.resume, kept)
    for key in KEPT:
        if getattr(args, key, None) is None:
            # a run saved from Python kept no command line: its config says
            value = kept.get(key, getattr(run.config, key, DEFAULTS.get(key)))
            if key in ("save", "metrics") and value is not None:
                args.relative[key] = not os.path.isabs(value)
                value = cli_runs.restored(value, args.resume)
            setattr(args, key, value)
    if args.checkpoint is None:
        args.checkpoint = args.resume
    cli_runs.check_outputs(args, parser)
    if args.epochs <= run.epoch:
        parser.error(f"--epochs: the run in {args.resume} has already trained "
                     f"{run.epoch} epochs; give a larger total")
    if run.ended in ("patience", "schedule"):
        parser.error(f"--resume: the run in {args.resume} already stopped early "
                     f"(after epoch {run.epoch}, by its {run.ended})")
    run.ended = None
    run.config = dataclasses.replace(run.config, epochs=args.epochs,
                                     monitor_training=args.monitor_training)
    return run


def cmd_train(args, parser):
    check_train_args(args, parser)
    # a missing GPU fails before any data loads; an unusable CuPy under auto says so
    xp = backend.namespace(args.device, notice=lambda line: print(line, file=sys.stderr))
    with cli_runs.held() as files:  # no other run reads or writes them until we end
        files.hold(parser, {"resume": args.resume, "checkpoint": args.checkpoint})
        run = resumed_run(args, parser, xp) if args.resume else None
        files.hold(parser, {key: getattr(args, key) for key in cli_runs.OUTPUTS})
        cli_runs.check_new_checkpoint(args, parser)
        return train_on_data(args, parser, run, xp)


def train_on_data(args, parser, run, xp):
    training_set, validation, test = data.load_dataset(args.dataset, args.data_dir)
    run = run or new_run(args, xp, test.classes)
    if args.expand:
        training_set = data.expand(training_set)
    if run.config.mini_batch_size > len(training_set):
        parser.error(f"--batch-size: {run.config.mini_batch_size} is larger than "
                     f"the {len(training_set)} training examples")
    return train(args, run, training_set, validation, test)


def train(args, run, training_set, validation, test):
    net, s = run.net, run.config
    config = {"command": "train", "dataset": args.dataset, "model": net.describe(),
              "network": net.config(), "epochs": args.epochs, **s.to_json(),
              "device": backend.describe(net.xp), "seed": net.seed, "expand": args.expand,
              "monitor_training": args.monitor_training, "n_train": len(training_set),
              "n_test": len(test)}
    # A path given relative is kept relative to the checkpoint's folder, so a
    # copied checkpoint writes beside itself; an absolute one stays absolute.
    kept = {key: cli_runs.stored(getattr(args, key), args.checkpoint, args.relative[key])
            if key in args.relative else getattr(args, key) for key in KEPT}
    print(f"{'resuming' if args.resume else 'training'} {config['model']} on {args.dataset} "
          f"({len(training_set)} examples), m={s.mini_batch_size}, eta={run.eta:g}"
          f"{'' if s.schedule == 'constant' else f' ({s.schedule})'}, "
          f"{s.engine} engine, {config['device']} {net.dtype_name}" +
          (f", from epoch {run.epoch}" if args.resume else ""), flush=True)
    if args.resume:
        print("writing " + ", ".join(f"{what} to {os.path.abspath(getattr(args, key))}"
                                     for key, what in cli_runs.OUTPUTS.items()
                                     if getattr(args, key)), flush=True)
    warned, writes = [], cli_runs.Writes()

    def write_outputs(run):
        if args.checkpoint:  # first: the epoch is safe even if the metrics fail
            writes.attempt("checkpoint", args.checkpoint,
                           lambda: checkpoint.save_run(run, args.checkpoint, kept), run.epoch)
        if args.metrics:  # rewritten each epoch, so a stopped run keeps its curve
            writes.attempt("metrics", args.metrics, lambda: write_json(
                args.metrics, {"config": config, "epochs": run.history}), run.epoch)

    def on_epoch(record, run):
        try:
            print(epoch_line(record, args.epochs), flush=True)
        except BrokenPipeError:  # `| head` has had enough: train on, quietly
            if not stdout_closed():
                raise
            quiet_pipe()
        write_outputs(run)
        if not warned and training.not_learning(run.history, net.n_out):
            warned.append(1)
            print(f"digitnet: warning: epoch {record['epoch']} ended near chance accuracy and "
                  f"the cost is not falling: the network is not learning; eta {run.eta:g} "
                  "may be too large", file=sys.stderr, flush=True)

    stop = cli_runs.Stop()
    try:  # only now: while data loads, Ctrl-C and SIGTERM act at once
        with signals.caught(stop.catch):
            training.fit(run, training_set, validation_data=validation, test_data=test,
                         progress=progress_bar(args.epochs), on_epoch=on_epoch, stop=stop)
    except training.Diverged as exc:
        print(f"digitnet: error: {exc}; try a smaller --eta", file=sys.stderr)
        return cli_runs.finish(args, run, writes, 1, "before it diverged")
    if run.ended == "interrupted":
        name = "SIGTERM" if stop.signal == signal.SIGTERM else "Ctrl-C"
        print(f"digitnet: {name}: stopped during epoch {run.epoch + 1}; keeping the "
              f"{run.epoch} finished epochs", file=sys.stderr, flush=True)
        code = 143 if stop.signal == signal.SIGTERM else 130
        return cli_runs.finish(args, run, writes, code, "when stopped")
    if s.test_at_end:  # the best epoch's record has its test figures only now
        write_outputs(run)
    best = training.best_epoch(run.history)
    print(f"best validation accuracy {100 * best['validation_accuracy']:.2f}% at epoch "
          f"{best['epoch']}: test accuracy {100 * best['test_accuracy']:.2f}% "
          f"({run.history[-1]['elapsed']:.0f}s in all)")
    return cli_runs.finish(args, run, writes, 0)


def epoch_line(record, epochs):
    """One line per epoch; with --test-at-end the test set is not measured
    yet, and the validation set stands in."""
    line = f"epoch {record['epoch']}/{epochs}"
    if "test_accuracy" in record:
        line += (f"  test {record['test_correct']}/{record['test_total']} "
                 f"({100 * record['test_accuracy']:.2f}%)")
    if "validation_accuracy" in record:
        line += f"  validation {100 * record['validation_accuracy']:.2f}%"
    if "training_accuracy" in record:
        line += f"  training {100 * record['training_accuracy']:.2f}%"
    cost = record.get("test_cost", record.get("validation_cost"))
    return line + f"  cost {cost:.4f}  {record['seconds']:.2f}s"


def progress_bar(epochs):
    """A tqdm wrapper for the mini-batch loop; silent when not on a terminal."""
    from tqdm import tqdm

    def wrap(batches, epoch):
        return tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                    leave=False, disable=None, mininterval=0.5)
    return wrap


def finite_json(obj):
    """`obj` with NaN and infinities as None, so the file is standard JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def write_json(path, obj):
    text = json.dumps(finite_json(obj), indent=1, allow_nan=False) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


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


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "download": cmd_download}


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
