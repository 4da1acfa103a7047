"""`digitnet train`: its flags parsed and checked once into a `Job`, then a
run of the library (runs.fit: checkpoints, metrics, signals, the final
save) whose reports it prints.  The long-run rules are runs.py's and
docs/runs.md's; here are only the command line's words for them.
"""

import dataclasses
import math
import os
import re
import signal
import sys

from . import backend, checkpoint, data, runs, training
from .checkpoint import CheckpointError
from .cliargs import check_output_path, quiet_pipe, stdout_closed
from .config import DEFAULTS as SETTINGS, FIELDS, TrainConfig, show
from .model import Architecture, Model, spec_from_sizes
from .network import Network
from .runstate import whole

# The chapter-1 values every training flag falls back to.  Flags default to
# None so that `--resume` can tell what the user gave.
# TrainConfig's own defaults (SETTINGS) are the book's; m and eta are chapter 1's.
DEFAULTS = {**SETTINGS, "sizes": [data.N_PIXELS, 30, data.N_CLASSES], "batch_size": 10,
            "eta": 3.0, "dtype": "float32", "seed": 0, "dataset": "mnist", "cost": None,
            "activation": "sigmoid", "init": "large", "dropout": 0.0, "expand": False}
ARCHITECTURE = ("layers", "cost", "activation", "init", "dropout")
# What a resumed run may change: where its results go and what it runs on.
RESUMABLE = ("epochs", "save", "metrics", "checkpoint", "device", "data_dir", "resume")
# The command line's name for each TrainConfig field.
FLAGS = {"mini_batch_size": "--batch-size", "eta_decay": "--eta-decay", "eta": "--eta",
         "lmbda": "--lmbda", "momentum": "--momentum", "patience": "--patience",
         "engine": "--engine", "augment": "--augment", "epochs": "--epochs",
         "monitor_training": "--monitor-training", "schedule": "--schedule",
         "warmup": "--warmup", "nesterov": "--nesterov", "label_smoothing": "--label-smoothing",
         "test_at_end": "--test-at-end", "optimizer": "--optimizer", "beta1": "--beta1",
         "beta2": "--beta2", "augment_strength": "--augment-strength"}
# The command's own settings a checkpoint keeps (its `extra`), and their checks.
EXTRA = {
    "epochs": (lambda v: whole(v, 1), "a whole number >= 1"),
    "dataset": (lambda v: v in data.DATASETS, "one of " + ", ".join(data.DATASETS)),
    "expand": (lambda v: isinstance(v, bool), "true or false"),
    "monitor_training": (lambda v: isinstance(v, bool), "true or false"),
    "save": (lambda v: v is None or a_path(v), "null or a path"),
    "metrics": (lambda v: v is None or a_path(v), "null or a path"),
}
KEPT = tuple(EXTRA)


@dataclasses.dataclass
class Job:
    """What `digitnet train` was asked: every training flag with the
    chapter-1 defaults filled in (`flags`), or on a resume the run's own
    settings; where it writes; the TrainConfig of a new run."""
    flags: dict
    outputs: dict           # checkpoint, save, metrics: a path or None
    resume: str = None
    device: str = "auto"
    data_dir: str = None
    layered: bool = False   # an architecture flag was given: a Model, not a Network
    config: TrainConfig = None
    relative: dict = dataclasses.field(default_factory=dict)  # output -> given relative


def a_path(value):
    return isinstance(value, str) and value != "" and "\0" not in value


def as_flags(message):
    """A TrainConfig error in the command line's words (eta_decay -> --eta-decay)."""
    return re.sub(r"\b(" + "|".join(FLAGS) + r")\b", lambda m: FLAGS[m.group(1)], message)


def physical_memory():
    """Bytes of memory this machine has (inf where the system will not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_outputs(outputs, parser):
    """Each output writable, and no two of them one file (a checkpoint saved
    over by the model could not be resumed; metrics saved over are lost)."""
    flags = {f"--{key}": path for key, path in outputs.items()}
    for flag, path in flags.items():
        check_output_path(parser, flag, path)
    shared = runs.shared_output(flags)
    if shared:
        parser.error(f"{shared[0]} and {shared[1]} are the same file, {shared[2]}: "
                     "give each output its own path")


def parse_job(args, parser):
    """The Job the flags describe, every check argparse cannot make done
    here (parser errors, exit 2), before any data loads."""
    given = {key: getattr(args, key) for key in (*DEFAULTS, "layers")}
    job = Job(flags=given, outputs={key: getattr(args, key) for key in runs.OUTPUTS},
              resume=args.resume, device=args.device, data_dir=args.data_dir)
    check_outputs(job.outputs, parser)
    job.relative = {key: not os.path.isabs(path) for key, path in job.outputs.items()
                    if key != "checkpoint" and path}
    if job.resume:
        named = [k for k, v in given.items() if v is not None and k not in RESUMABLE]
        if named:
            parser.error(f"--{named[0].replace('_', '-')}: a resumed run keeps its own "
                         "settings; only --epochs, --save, --metrics, --checkpoint, "
                         "--device and --data-dir may be given")
        return job
    if given["layers"] is not None and given["sizes"]:
        parser.error("give --sizes or --layers, not both")
    flags = job.flags = {key: DEFAULTS[key] if given[key] is None else given[key]
                         for key in DEFAULTS} | {"layers": given["layers"]}
    sizes = flags["sizes"]
    if len(sizes) < 2:
        parser.error("--sizes needs at least an input and an output layer")
    if sizes[0] != data.N_PIXELS:
        parser.error(f"--sizes: the first layer must be {data.N_PIXELS} (28x28 pixels), "
                     f"got {sizes[0]}")
    if sizes[-1] != data.N_CLASSES:
        parser.error(f"--sizes: the last layer must be {data.N_CLASSES} (one per class), "
                     f"got {sizes[-1]}")
    job.layered = any(flags[name] != DEFAULTS.get(name) for name in ARCHITECTURE)
    try:  # every training setting checked once, by TrainConfig, before any data loads
        # each field's flag is its name, but for m's --batch-size
        job.config = TrainConfig(**{key: flags[FLAGS[key].lstrip("-").replace("-", "_")]
                                    for key in FIELDS})
    except ValueError as exc:
        parser.error(as_flags(str(exc)))
    if job.layered:
        check_architecture(job, parser)
    return job


def check_architecture(job, parser):
    """--layers and its companions parsed, no weights drawn: mistakes show
    before data loads, and a network too large for memory too."""
    layers = job.flags["layers"]
    if layers is not None and not layers.strip():
        parser.error("--layers: empty; give a spec such as fc:100,softmax:10")
    checks = [("--layers: ", dict(layers=layers))] if layers else []
    for flag, options in checks + [("", model_options(job.flags))]:
        try:
            arch = Architecture.parse(**options)
        except ValueError as exc:
            parser.error(f"{flag}{exc}")
        numbers = sum(math.prod(w) + b[0] for w, b in arch.param_shapes())
        if numbers * (4 if job.flags["dtype"] == "float32" else 8) > physical_memory():
            parser.error(f"the network is too large to fit in memory ({numbers:,} "
                         "weights and biases)")
        if arch.n_out != data.N_CLASSES:
            parser.error(f"--layers: the output layer must have {data.N_CLASSES} "
                         "neurons (one per class)")
    try:  # what its layers refuse of the settings (bn: the per-example engine, m = 1)
        arch.check_training(job.config)
    except ValueError as exc:
        parser.error(as_flags(str(exc)))


def model_options(flags):
    """Model arguments from the flags, a missing flag keeping its chapter-1 value."""
    return dict(layers=flags["layers"] or spec_from_sizes(flags["sizes"]), cost=flags["cost"],
                activation=flags["activation"], init=flags["init"], dropout=flags["dropout"])


def new_run(job, xp, classes):
    """The network the flags describe, and its run: a chapter-1 Network
    unless an architecture flag was given."""
    f = job.flags
    if job.layered:
        net = Model(**model_options(f), seed=f["seed"], device=xp, dtype=f["dtype"])
    else:
        net = Network(f["sizes"], seed=f["seed"], device=xp, dtype=f["dtype"])
    if data.dataset_of(classes) != "mnist":
        net.classes = list(classes)
    return training.Run(net, job.config)


def check_extra(path, extra):
    """A CheckpointError, one line per bad field, when the command's own
    settings in a checkpoint are not what `train` wrote."""
    bad = [f"{path}: state: extra.{key} must be {what}, got {show(extra[key])}"
           for key, (ok, what) in EXTRA.items() if key in extra and not ok(extra[key])]
    if bad:
        raise CheckpointError(*bad)


def resumed_run(job, parser, xp):
    """The run in --resume's file, with the command's settings it kept (the
    defaults for a checkpoint written from Python, which keeps none).  An
    output path kept relative is relative to the checkpoint's folder."""
    run, kept = checkpoint.load_run(job.resume, device=xp)
    check_extra(job.resume, kept)
    settings = {}
    for key in KEPT:
        value = job.flags.get(key) if key not in runs.OUTPUTS else job.outputs[key]
        if value is None:
            # a run saved from Python kept no command line: its config says
            value = kept.get(key, getattr(run.config, key, DEFAULTS.get(key)))
            if key in runs.OUTPUTS and value is not None:
                job.relative[key] = not os.path.isabs(value)
                value = runs.restored(value, job.resume)
        settings[key] = value
    job.outputs.update((key, settings.pop(key)) for key in list(settings) if key in runs.OUTPUTS)
    job.flags = settings
    if job.outputs["checkpoint"] is None:
        job.outputs["checkpoint"] = job.resume
    check_outputs(job.outputs, parser)
    if job.flags["epochs"] <= run.epoch:
        parser.error(f"--epochs: the run in {job.resume} has already trained "
                     f"{run.epoch} epochs; give a larger total")
    if run.ended in ("patience", "schedule"):
        parser.error(f"--resume: the run in {job.resume} already stopped early "
                     f"(after epoch {run.epoch}, by its {run.ended})")
    run.ended = None
    run.config = dataclasses.replace(run.config, epochs=job.flags["epochs"],
                                     monitor_training=job.flags["monitor_training"])
    return run


def cmd_train(args, parser):
    job = parse_job(args, parser)
    # a missing GPU fails before any data loads; an unusable CuPy under auto says so
    xp = backend.namespace(job.device, notice=lambda line: print(line, file=sys.stderr))
    try:
        with runs.held({"resume": job.resume, "checkpoint": job.outputs["checkpoint"]}) as held:
            run = resumed_run(job, parser, xp) if job.resume else None
            held.hold(job.outputs)  # no other run reads or writes them until we end
            runs.check_new_checkpoint(job.outputs["checkpoint"], job.resume)
            return train_on_data(job, parser, run, xp)
    except runs.RunError as exc:
        parser.error(f"--{exc.flag}: {exc}")


def train_on_data(job, parser, run, xp):
    training_set, validation, test = data.load_dataset(job.flags["dataset"], job.data_dir)
    run = run or new_run(job, xp, test.classes)
    if job.flags["expand"]:
        training_set = data.expand(training_set)
        # validation is a view into the training set's 188 MB of floats:
        # a copy of it (31 MB) lets them go
        validation = data.Dataset(validation.rows.copy().T, validation.labels, validation.classes)
    if run.config.mini_batch_size > len(training_set):
        parser.error(f"--batch-size: {run.config.mini_batch_size} is larger than "
                     f"the {len(training_set)} training examples")
    try:
        run.net.check_training(run.config, len(training_set))
    except ValueError as exc:
        parser.error(as_flags(str(exc)))
    return train(job, run, training_set, validation, test)


def train(job, run, training_set, validation, test):
    net, s, out, f = run.net, run.config, job.outputs, job.flags
    about = {"command": "train", "dataset": f["dataset"], "model": net.describe(),
             "network": net.config(), "epochs": f["epochs"], **s.to_json(),
             "device": backend.describe(net.xp), "seed": net.seed, "expand": f["expand"],
             "monitor_training": f["monitor_training"], "n_train": len(training_set),
             "n_test": len(test)}
    # A path given relative is kept relative to the checkpoint's folder, so a
    # copied checkpoint writes beside itself; an absolute one stays absolute.
    paths = {**f, **out}
    kept = {key: runs.stored(paths[key], out["checkpoint"], job.relative[key])
            if key in job.relative else paths[key] for key in KEPT}
    files = runs.Files(**out, extra=kept, about=about,
                       say=lambda line: print(line, flush=True))
    print(f"{'resuming' if job.resume else 'training'} {about['model']} on {f['dataset']} "
          f"({len(training_set)} examples), m={s.mini_batch_size}, eta={run.eta:g}"
          f"{'' if s.schedule == 'constant' else f' ({s.schedule})'}, "
          f"{s.engine} engine, {about['device']} {net.dtype_name}" +
          (f", from epoch {run.epoch}" if job.resume else ""), flush=True)
    if job.resume:
        print("writing " + ", ".join(f"{what} to {os.path.abspath(out[key])}"
                                     for key, what in runs.OUTPUTS.items() if out[key]),
              flush=True)
    warned = []

    def on_epoch(record, run):
        try:
            print(epoch_line(record, f["epochs"]), flush=True)
        except BrokenPipeError:  # `| head` has had enough: train on, quietly
            if not stdout_closed():
                raise
            quiet_pipe()
        if not warned and training.not_learning(run.history, net.n_out):
            warned.append(1)
            print(f"digitnet: warning: epoch {record['epoch']} ended near chance accuracy and "
                  f"the cost is not falling: the network is not learning; eta {run.eta:g} "
                  "may be too large", file=sys.stderr, flush=True)

    try:  # only now: while data loads, Ctrl-C and SIGTERM act at once
        stopped = runs.fit(run, training_set, files, validation_data=validation, test_data=test,
                           progress=progress_bar(f["epochs"]), on_epoch=on_epoch, finish=False)
    except training.Diverged as exc:
        print(f"digitnet: error: {exc}; try a smaller --eta", file=sys.stderr)
        return finish(files, run, 1, "before it diverged")
    if run.ended == "interrupted":
        name = "SIGTERM" if stopped == signal.SIGTERM else "Ctrl-C"
        print(f"digitnet: {name}: stopped during epoch {run.epoch + 1}; keeping the "
              f"{run.epoch} finished epochs", file=sys.stderr, flush=True)
        return finish(files, run, 143 if stopped == signal.SIGTERM else 130, "when stopped")
    best = training.best_epoch(run.history)
    print(f"best validation accuracy {100 * best['validation_accuracy']:.2f}% at epoch "
          f"{best['epoch']}: test accuracy {100 * best['test_accuracy']:.2f}% "
          f"({run.history[-1]['elapsed']:.0f}s in all)")
    return finish(files, run, 0)


def finish(files, run, code, when=""):
    """The final save, then the exit status: 1, with one line naming each
    output not up to date, when a write failed and was not made good later."""
    failed = files.finish(run, when)
    if failed:
        print(f"digitnet: error: {failed}", file=sys.stderr, flush=True)
        return 1
    return code


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
