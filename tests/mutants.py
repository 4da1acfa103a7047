"""Mutation testing, by hand: plant one realistic bug at a time in the core,
run the tests, and list the bugs they let through.

    DIGITNET_DATA=../shared/data python tests/mutants.py            # all
    DIGITNET_DATA=../shared/data python tests/mutants.py l2 shuffle # by name

Each mutant is a (name, file, old text, new text) edit that must apply
exactly once; the file is restored afterwards, whatever happens.  A mutant
is first run against the test files that run its source file's code (with
-x: a caught mutant costs seconds), and only when those pass against the
whole suite.  Which test files run which source file is not typed here: it
is traced, once, by running the suite with tests/tracing.py, and kept in
.mutants-trace/ until a source or test file changes.  A mutant is "caught"
when either run fails; one caught only by the whole suite is flagged.  Not
part of CI (it runs the tests once or twice per mutant); run it before
changing the core, and record the score, the time and every survivor, with
why it is equivalent, in benchmarks/RESULTS.md.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "digitnet"
# The whole suite, fast unit tests first, for mutants the targeted run missed.
FIRST = ["test_network.py", "test_model.py", "test_training.py", "test_kernels.py", "test_checkpoint.py",
         "test_data.py", "test_download.py", "test_mnist.py"]
ORDER = [f"tests/{name}" for name in FIRST] + sorted(
    f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if p.name not in FIRST)

# The test files that run each source file's code, derived from one traced
# run of the suite (tests/tracing.py), kept until a source or test file
# changes: a mutant there runs these first.
TRACE = ROOT / ".mutants-trace"


def sources_key():
    digest = hashlib.sha256()
    for path in sorted([*SRC.glob("*.py"), *(ROOT / "tests").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def derived_tests_for():
    """{source file: test files whose tests ran its code}."""
    sys.path.insert(0, str(ROOT / "tests"))
    import tracing
    key, stamp = sources_key(), TRACE / "key"
    if not stamp.is_file() or stamp.read_text() != key:
        shutil.rmtree(TRACE, ignore_errors=True)
        env = dict(os.environ, DIGITNET_TRACE=str(TRACE),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "tests"),
                                                            os.environ.get("PYTHONPATH")])))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-p", "tracing", "-n", "2", *ORDER], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        # A test that fails under the tracer's slowness (a signal sent on
        # time) still ran its code: only a run that could not test is fatal.
        if done.returncode not in (0, 1) or not any(TRACE.glob("trace-gw*.json")):
            sys.exit("the traced run of the suite failed\n" + done.stdout[-3000:])
        stamp.write_text(key)
        print(f"traced which tests run which source files ({time.perf_counter() - start:.0f} s; "
              f"{done.stdout.strip().splitlines()[-1].strip('= ')})", flush=True)
    return tracing.tests_for(TRACE)


MUTANTS = [
    # the issue-12 list: each once passed the whole suite or was caught by luck
    ("l2-skipped-with-momentum", "optimizers.py", "                if decay:\n                    vw -= decay * w\n",
     ""),
    ("best-not-restored", "training.py", "        if self.best is not None:\n            if self.last",
     "        if False:\n            if self.last"),
    ("no-shuffle", "training.py", "order = xp.asarray(net.rng.permutation(n))",
     "order = xp.asarray(net.rng.permutation(n)); order = xp.arange(n)"),
    ("label-check-off-by-one", "training.py", "labels.max() >= net.n_out", "labels.max() > net.n_out"),
    ("l2-cost-doubled", "training.py", "return 0.5 * lmbda / n * sum(", "return lmbda / n * sum("),
    ("eval-skips-chunk-end", "base.py", "return [(k, min(k + chunk, n)) for k", "return [(k, min(k + chunk, n) - 1) for k"),
    ("verified-without-hash", "download.py", "(sha256(path) == SHA256[dataset][name])", "True"),
    ("fast-path-eta-10x", "engines.py", "ks = {size: fast.scalar(eta / size)", "ks = {size: fast.scalar(10 * eta / size)"),
    ("bp1-sign", "network.py", "delta = (a - y) * (a * (1.0 - a))", "delta = (y - a) * (a * (1.0 - a))"),
    ("bp2-no-sigma-prime", "network.py", "delta = (self.weights[-l].T @ delta) * (a * (1.0 - a))  # BP2",
     "delta = (self.weights[-l].T @ delta)  # BP2"),
    ("l2-over-m", "optimizers.py", "        return eta * self.config.lmbda / n\n", "        return eta * self.config.lmbda / 10\n"),
    # more of the same kind, across the core
    ("momentum-biases-skip", "optimizers.py", "                vb -= k * nb\n", "                vb -= 0 * nb\n"),
    ("decay-biases", "optimizers.py", "            if decay:\n                w *= 1.0 - decay\n            w -= k * nw\n",
     "            if decay:\n                w *= 1.0 - decay\n                b *= 1.0 - decay\n            w -= k * nw\n"),
    ("fast-bp2-no-sigma-prime", "kernels.py",
     "        xp.subtract(a, one, out=t)\n        xp.multiply(t, a, out=t)\n        xp.multiply(delta, t, out=delta)\n",
     "        xp.negative(delta, out=delta)\n"),
    ("fast-hidden-delta-no-f-prime", "kernels.py",
     "            xp.subtract(one, t, out=t)\n        xp.multiply(delta, t, out=delta)\n",
     "            xp.subtract(one, t, out=t)\n"),
    ("fast-negated-update-subtracts", "kernels.py", "        xp.add(wb, nabla, out=wb)", "        xp.subtract(wb, nabla, out=wb)"),
    ("fast-sigmoid-of-negated-sign", "kernels.py", "        xp.exp(z, out=z)\n        xp.add(z, one, out=z)\n        xp.reciprocal(z, out=a)\n\n    @staticmethod\n    def sigmoid_delta_negated",
     "        xp.negative(z, out=z)\n        xp.exp(z, out=z)\n        xp.add(z, one, out=z)\n        xp.reciprocal(z, out=a)\n\n    @staticmethod\n    def sigmoid_delta_negated"),
    ("fast-bias-not-folded", "params.py", "        block[:, :-1], block[:, -1:] = w, b\n", "        block[:, :-1], block[:, -1:] = w, 0\n"),
    ("relu-back-at-kink", "activations.py", "where_zero(xp, a > 0, d)", "where_zero(xp, a >= 0, d)"),
    ("fast-relu-back-at-kink", "kernels.py", "xp.greater(a, zero, out=t)", "xp.greater_equal(a, zero, out=t)"),
    ("fast-velocities-not-kept", "batched.py", '        self.vel = (optimizer.blocks(("velocity_w", "velocity_b"), self.by_rows, self.matrix)',
     "        self.vel = ([xp.zeros_like(wb) for wb in self.wb]"),
    ("fast-l2-skipped-with-momentum", "kernels.py", "            xp.subtract(v_w, nabla_w, out=v_w)\n", ""),
    ("fast-dropout-mask-not-in-backprop", "kernels.py", "            xp.multiply(delta, mask, out=delta)\n", "            pass\n"),
    ("fast-dropout-not-inverted", "kernels.py", "            xp.divide(mask, keep, out=mask)\n", ""),
    ("fast-softmax-no-shift-back", "kernels.py", "        xp.divide(z, column, out=a)", "        xp.multiply(z, 1.0, out=a)"),
    ("pool-forward-first-view-only", "layers.py", "            top = xp.maximum(top, x[index])", "            top = top"),
    ("tanh-back", "activations.py", "return d * (1.0 - a * a)", "return d * (1.0 - a)"),
    ("softmax-no-shift", "activations.py", "e = xp.exp(z - xp.max(z, axis=0, keepdims=True))", "e = xp.exp(z)"),
    ("cross-entropy-sign", "costs.py", "return -float(xp.sum(y * _log(xp, a) + (1.0 - y) * _log(xp, 1.0 - a)))",
     "return float(xp.sum(y * _log(xp, a) + (1.0 - y) * _log(xp, 1.0 - a)))"),
    ("quadratic-delta-no-sigma-prime", "costs.py", "return back(xp, a, a - y)", "return a - y"),
    ("conv-col2im-wrong-offset", "layers.py", "dx[:, i:i + oh, j:j + ow, :] += dcols[i * k + j, ...]",
     "dx[:, j:j + oh, i:i + ow, :] += dcols[i * k + j, ...]"),
    ("conv-col2im-channel-major", "layers.py", "dcols = xp.reshape(by_offset.T @ d, (k * k, c, oh, ow, m))",
     "dcols = xp.reshape(w.T @ d, (k * k, c, oh, ow, m))"),
    ("pool-gradient-everywhere", "layers.py",
     "xp.equal(xp.reshape(x, blocks), xp.reshape(top, spread), out=dx)",
     "xp.greater_equal(xp.reshape(x, blocks), xp.reshape(x, blocks), out=dx)"),
    ("strict-pool-gradient-everywhere", "layers.py",
     "dx[index] = backend.where_zero(xp, x[index] == top, delta)", "dx[index] = delta"),
    ("im2col-window-strides-swapped", "backend.py", "(s[0], s[1], s[2], s[1], s[2], s[3])",
     "(s[0], s[2], s[1], s[1], s[2], s[3])"),
    ("dropout-not-inverted", "model.py", ">= p) / (1.0 - p)", ">= p) * 1.0"),
    ("dropout-mask-not-in-backprop", "model.py", "                    d_in = xp.reshape(d_in, masks[i].shape) * masks[i]\n",
     "                    d_in = xp.reshape(d_in, masks[i].shape)\n"),
    ("scaled-init-not-scaled", "model.py", "scale = 1.0 if init == \"large\" else 1.0 / np.sqrt(layer.fan_in)", "scale = 1.0"),
    ("patience-off-by-one", "training.py", "run.since >= c.patience", "run.since > c.patience"),
    ("schedule-never-halves", "training.py", "run.eta, run.since = run.eta / 2, 0", "run.since = 0"),
    ('best-by-last', 'training.py', 'record["validation_accuracy"] > best.record["validation_accuracy"]',
     'True'),
    ("interrupt-keeps-partial-epoch", "training.py", "            run.restore(before)\n            run.ended = \"interrupted\"",
     "            run.ended = \"interrupted\""),
    ("divergence-unchecked", "training.py", "if not finite(net) or not all(map(math.isfinite, costs)):", "if False:"),
    ('checkpoint-no-velocities', 'optimizers.py', 'return {f"{name}_{i}": backend.to_numpy(a) for name',
     'return {f"{name}_{i}": 0 * backend.to_numpy(a) for name'),
    ('checkpoint-no-rng', 'training.py', '        net.rng.bit_generator.state = state["rng"]\n',
     ''),
    ("checkpoint-nan-accepted", "modelfile.py", "        if not np.all(np.isfinite(a)):", "        if False:"),
    ("idx-labels-unchecked", "data.py", "    if labels.size and labels.max() >= len(classes):", "    if False:"),
    ("expand-wrong-shift", "data.py", "out[:, 1, :-1, :] = images[:, 1:, :]   # up", "out[:, 1, 1:, :] = images[:, :-1, :]   # up"),
    ("augment-bilinear-weights-swapped", "augment.py", "for dr, wr in ((0, 1 - fr), (1, fr)):",
     "for dr, wr in ((0, fr), (1, 1 - fr)):"),
    ("augment-thicken-sign", "augment.py", "x = x + grow * (dilated - x) - shrink * (x - eroded)",
     "x = x + grow * (dilated - x) + shrink * (x - eroded)"),
    ('augment-not-in-checkpoint', 'training.py', '"settings": self.config.to_json(),',
     '"settings": {**self.config.to_json(), "augment": False},'),
    ("augment-strength-ignored", "engines.py", "augment.draw(net.rng, x.shape[1], config.augment_strength)",
     "augment.draw(net.rng, x.shape[1])"),
    ("augment-strength-skips-ranges", "augment.py", "tuple(x * strength for x in v) if isinstance(v, tuple)",
     "v if isinstance(v, tuple)"),
    ("augment-strength-without-augment-accepted", "config.py", 'if s["augment_strength"] != 1 and not s["augment"]:',
     'if s["augment_strength"] != 1 and not s["augment"] and False:'),
    ("augment-strength-unbounded", "config.py", '"augment_strength": (lambda v: number(v) and 0 < v <= 2,',
     '"augment_strength": (lambda v: number(v) and 0 < v,'),
    ("augment-never-applied", "engines.py", "        if config.augment:\n            params = augment.draw(", "        if False:\n            params = augment.draw("),
    ("augment-shift-ignored", "augment.py", 'return (as_x(a), as_x(params["shift"]),',
     'return (as_x(a), 0 * as_x(params["shift"]),'),
    ("bytes-scaled-wrong", "backend.py", "f = xp.astype(x, xp.float32) / 255.0", "f = xp.astype(x, xp.float32) / 256.0"),
    ("fast-path-bytes-unscaled", "kernels.py", "xp.divide(raw, two55, out=x)", "xp.divide(raw, 1, out=x)"),
    ("expand-never-bytes", "data.py", "images = images if as_u8 is None else as_u8", "images = images"),
    ("split-off-by-one", "data.py", "return train[:N_TRAIN], train[N_TRAIN:], test", "return train[:N_TRAIN], train[N_TRAIN - 1:], test"),
    # issue 16: the second audit's families
    ("patience-not-reset-after-halving", "training.py", "run.eta, run.since = run.eta / 2, 0",
     "run.eta = run.eta / 2"),
    ("patience-not-reset-at-best", "training.py", "        run.since = 0\n        return\n", "        return\n"),
    ("use-best-twice-loses-last", "training.py", "            if self.last is None:\n", "            if True:\n"),
    ("divergence-from-weights-only", "training.py",
     "if not finite(net) or not all(map(math.isfinite, costs)):", "if not finite(net):"),
    ('resume-eta-reset', 'training.py', 'self.epoch, self.eta, self.since = state["epoch"], float(state["eta"]),',
     'self.epoch, self.eta, self.since = state["epoch"], self.config.eta,'),
    ('resume-patience-reset', 'training.py', 'float(state["eta"]), state["since"]',
     'float(state["eta"]), 0'),
    ('resume-best-from-last', 'training.py', 'best.load_state_dict(arrays, net.asarray, prefix="best_")',
     'best.load_state_dict(arrays, net.asarray)'),
    ('resume-stopped-run-trains-on', 'training.py', 'self.ended, self.history = state["ended"],',
     'self.ended, self.history = None,'),
    ("resume-expand-forgotten", "cli_runs.py", '    "expand": (lambda v: isinstance(v, bool), "true or false"),\n', ""),
    ("fast-chapter-1-momentum-negated", "batched.py", "and not self.dropout and not momentum and self.decay is None",
     "and not self.dropout and self.decay is None"),
    ("numpy-softmax-kernel-no-shift", "kernels.py",
     "        xp.max(z, axis=0, keepdims=True, out=column)\n        xp.subtract(z, column, out=z)\n        xp.exp(z, out=z)\n",
     "        xp.exp(z, out=z)\n"),
    ("augment-elastic-columns-reuse-rows", "augment.py",
     'field @ as_x(params["elastic"][0]), field @ as_x(params["elastic"][1]))',
     'field @ as_x(params["elastic"][0]), field @ as_x(params["elastic"][0]))'),
    ("augment-rotation-one-sided", "augment.py", 'u(-s["rotate"], s["rotate"])', 'u(0, s["rotate"])'),
    ("ink-faint-rule-inverted", "ink.py", "faint=not noisy", "faint=noisy"),
    ("ink-blank-ignores-noise-floor", "ink.py", "if top < max(MIN_CONTRAST, 2 * floor):", "if top < MIN_CONTRAST:"),
    ("save-after-divergence-not-best", "runs.py", "        run.use_best()\n        if self.attempt(\"save\"",
     "        if self.attempt(\"save\""),
    ("download-sweep-by-prefix", "download.py", "TEMP_NAME.fullmatch(path.name)", "TEMP_NAME.match(path.name)"),
    # issue 16: more of our own, where no mutant went before
    ("augment-shear-one-sided", "augment.py", 'u(-s["shear"], s["shear"])', 'u(0, s["shear"])'),
    ("augment-scale-only-shrinks", "augment.py", '"scale": 1 + u(-s["scale"], s["scale"])',
     '"scale": 1 - u(0, s["scale"])'),
    ("augment-aspect-ignored", "augment.py", 'sy, sx = params["scale"], params["scale"] * params["aspect"]',
     'sy, sx = params["scale"], params["scale"]'),
    ("augment-shift-one-axis-for-both", "augment.py", 'as_x(params["shift"]), as_x(r0)',
     'as_x(params["shift"][[0, 0]]), as_x(r0)'),
    ("augment-always-blurred", "augment.py", "(rng.random(m) < 0.5)", "(rng.random(m) < 1.0)"),
    ("augment-never-thinner", "augment.py", '"thicken": (-0.4, 1.0),', '"thicken": (0.0, 1.0),'),
    ("augment-elastic-grid-one-draw", "augment.py", 'u(-s["elastic"], s["elastic"], (2, GRID * GRID, m))',
     'np.broadcast_to(u(-s["elastic"], s["elastic"], (2, 1, m)), (2, GRID * GRID, m))'),
    ("ink-strong-threshold-high", "ink.py", "STRONG = 0.2\n", "STRONG = 0.6\n"),
    ("ink-near-too-small", "ink.py", "NEAR = 0.5\n", "NEAR = 0.05\n"),
    ("ink-min-step-ignored", "ink.py", "floor = max(sigma * math.sqrt(2 * math.log(max(x.size, 2))), MIN_STEP)",
     "floor = sigma * math.sqrt(2 * math.log(max(x.size, 2)))"),
    ('checkpoint-seed-not-kept', 'training.py', '"seed": self.net.seed,',
     '"seed": 0,'),
    ('checkpoint-history-last-only', 'training.py', '"history": self.history,',
     '"history": self.history[-1:],'),
    ("checkpoint-classes-dropped", "modelfile.py", "    net.classes, net.seed = classes, seed\n", "    net.classes, net.seed = None, seed\n"),
    # issue 17: the one interface and the one config
    ("model-file-seed-not-kept", "modelfile.py", '[str(c) for c in net.classes], "seed": seed}', '[str(c) for c in net.classes], "seed": None}'),
    ("one-example-not-reshaped", "base.py", "        one = len(shape) == 1\n", "        one = False\n"),
    ("one-example-shape-unchecked", "base.py", "if len(shape) not in (1, 2) or shape[0] != self.n_in:", "if len(shape) > 3:"),
    ("load-accepts-the-other-kind", "base.py", "return modelfile.load(path, {cls.kind: cls}, device)",
     "return modelfile.load(path, {k: c for k, c in [(cls.kind, cls)] + list(__import__('digitnet.checkpoint', fromlist=['KINDS']).KINDS.items())}, device)"),
    ("config-momentum-range-open", "config.py", "\"momentum\": (lambda v: number(v) and 0 <= v < 1,",
     "\"momentum\": (lambda v: number(v) and 0 <= v <= 1,"),
    ("config-eta-decay-without-patience", "config.py",
     "    if s[\"eta_decay\"] is not None and s[\"patience\"] is None:", "    if False:"),
    ("config-unknown-setting-accepted", "config.py", "    if unknown:\n", "    if False:\n"),
    ("serve-headers-outside-the-deadline", "serve.py", "        self.reads.deadline = time.monotonic() + TIMEOUT",
     "        self.reads.deadline = time.monotonic() + 1e9"),
    ("serve-host-unchecked", "serve.py", "        if name not in self.server.hosts:", "        if False:"),
    ("serve-model-path-shown", "serve.py", '"name": Path(self.name).name', '"name": str(self.name)'),
    ("serve-json-nesting-unlimited", "bodies.py", "    if nesting(body) > MAX_NESTING:", "    if False:"),
    ("imaging-side-unlimited", "imaging.py", "    if max(width, height) > MAX_SIDE:", "    if False:"),
    ("imaging-megapixels-unlimited", "imaging.py", "    if width * height > MAX_PIXELS:", "    if False:"),
    ("not-learning-threshold-low", "training.py", 'last[f"{name}_accuracy"] > 1.5 / n_out',
     'last[f"{name}_accuracy"] > 0.5 / n_out'),
    ("not-learning-ignores-the-cost", "training.py", 'return last[f"{name}_cost"] >= 0.99 * before[f"{name}_cost"]',
     "return True"),
    ("signals-never-caught", "signals.py", "    previous = {s: signal.signal(s, handler) for s in STOPPING}",
     "    previous = {s: signal.getsignal(s) for s in STOPPING}"),
    ("fit-ignores-the-configs-epochs", "training.py", "epochs = run.config.epochs if epochs is None else epochs",
     "epochs = 1 if epochs is None else epochs"),
    ("monitor-training-ignored", "training.py", 'if run.config.monitor_training else {}', "if False else {}"),
    ("resume-keeps-the-old-epochs", "cli_runs.py", 'run.config = dataclasses.replace(run.config, epochs=job.flags["epochs"],',
     "run.config = dataclasses.replace(run.config, epochs=run.config.epochs,"),
    ("ensemble-first-member-only", "ensemble.py", "            total = total + member.feedforward(x)\n",
     "            total = total\n"),
    ("ensemble-members-unchecked", "ensemble.py", "                if get(other) != get(first):", "                if False:"),
    ("evaluate-no-ensemble-line", "cli.py", '            named.append((f"ensemble of {len(nets)}", Ensemble(nets)))',
     "            Ensemble(nets)"),
    ("predict-ignores-the-ensemble", "cli_show.py", "    net = load_networks([args.model, *args.ensemble], args.device)",
     "    net = load_networks([args.model], args.device)"),
    ("serve-first-model-only", "cli_serve.py", "    net = load_networks(args.model, args.device)",
     "    net = load_networks(args.model[:1], args.device)"),
    ("download-sweeps-live-files", "download.py", "time.time() - path.stat().st_mtime > STALE_SECONDS",
     "time.time() - path.stat().st_mtime > -1"),
    # issue 20's levers
    ("warmup-from-zero", "schedules.py", "START = 1 / 25", "START = 0.0"),
    ("one-cycle-off-by-one-step", "schedules.py", "p = (step - rise) / (total - rise)",
     "p = (step + 1 - rise) / (total - rise)"),
    ("cosine-is-linear", "schedules.py", "        return 0.5 * (1 + math.cos(math.pi * p))",
     "        return 1 - p"),
    ("schedule-restarts-each-epoch", "schedules.py", "total, first = epochs * per_pass, epoch * per_pass",
     "total, first = epochs * per_pass, 0"),
    ("schedule-over-config-epochs", "training.py",
     "schedules.for_pass(run.config, run.epoch, epochs or run.config.epochs, n,",
     "schedules.for_pass(run.config, run.epoch, run.config.epochs, n,"),
    ("eta-not-restored-on-stop", "training.py",
     "state, buffers, scalars, rng_state, self.eta = snapshot",
     "state, buffers, scalars, rng_state, _ = snapshot"),
    ("nesterov-is-momentum", "optimizers.py", "                    w += mu * vw\n                    w -= g\n",
     "                    w += vw\n"),
    ("nesterov-bias-plain", "optimizers.py", "                    b += mu * vb\n                    b -= g\n",
     "                    b += vb\n"),
    ("nesterov-no-decay", "optimizers.py", "                    if decay:\n                        g += decay * w\n", ""),
    ("smoothing-not-normalized", "engines.py", "y = y * (1.0 - smoothing) + smoothing / eye.shape[0]",
     "y = y + smoothing / eye.shape[0]"),
    ("smoothing-ignored", "engines.py", "y = targets(xp, xp.take(labels, idx), eye, config.label_smoothing)",
     "y = targets(xp, xp.take(labels, idx), eye, 0.0)"),
    ("fast-path-takes-no-augmentation", "engines.py",
     "spec is not None and not config.augment:", "spec is not None:"),
    ("test-at-end-wrong-epoch", "training.py", "        if record[\"epoch\"] == best[\"epoch\"]:",
     "        if record is run.history[-1]:"),
    ("test-at-end-before-best", "training.py",
     "    run.use_best()\n    if test is not None:\n        test_at_end(run, test, n, started)",
     "    if test is not None:\n        test_at_end(run, test, n, started)\n    run.use_best()"),
    ("nesterov-without-momentum-allowed", "config.py", "    if s[\"nesterov\"] and not s[\"momentum\"]:",
     "    if False:"),
    ("plot-time-drops-last", "plots.py", "for r in run[\"epochs\"] if isinstance", "for r in run[\"epochs\"][:-1] if isinstance"),
    # issue 24: files users already hold
    ("seed-null-run-refused", "runstate.py", 'check("seed", lambda v: v is None or whole(v),',
     'check("seed", lambda v: whole(v),'),
    ("seed-zero-not-saved", "modelfile.py", "    seed = net.seed if isinstance(net.seed, int) and not isinstance(net.seed, bool) else None",
     "    seed = net.seed if net.seed else None"),
    ("levers-required-of-old-checkpoints", "config.py", '"schedule", "warmup", "nesterov",\n',
     '"schedule", "warmup",\n'),
    ("model-file-seed-required", "modelfile.py", '    if "seed" in arrays:\n        seed = arrays.small("seed")',
     '    if True:\n        seed = arrays.small("seed")'),
    # issue 24: per-step schedules at their edges
    ("schedule-passes-floor", "schedules.py", "per_pass = -(-n // config.mini_batch_size)",
     "per_pass = n // config.mini_batch_size"),
    ("schedule-last-rate-floor", "training.py", "run.eta = scheduled(-(-n // m) - 1)",
     "run.eta = scheduled(n // m - 1)"),
    ("resumed-rate-jumps", "schedules.py", "first >= total or eta(-1) == reached:", "first >= total or True:"),
    ("resumed-fall-ends-a-step-early", "schedules.py", "stride = (1 - start) / (total - first + 1)",
     "stride = (1 - start) / (total - first)"),
    ("resumed-cosine-falls-as-a-line", "schedules.py", '    if schedule == "one-cycle":\n        return 1 - f',
     '    if True:\n        return 1 - f'),
    ("resumed-warm-up-stretched", "schedules.py", "reached is None or first < config.warmup * total or",
     "reached is None or"),
    ("test-at-end-history-not-updated", "training.py",
     '        if record["epoch"] == best["epoch"]:\n            record.update(fields)',
     '        if record["epoch"] == best["epoch"]:\n            pass'),
    ("test-at-end-best-not-updated", "training.py", "        run.best.record.update(fields)", "        pass"),
    # issue 24: one field of a multi-field check
    ("ensemble-classes-unchecked", "ensemble.py",
     '          ("class names", lambda n: n.classes, lambda c: _classes(c)),\n', ""),
    ("evaluate-pair-no-ensemble", "cli.py", "    if len(nets) > 1:\n        try:", "    if len(nets) > 2:\n        try:"),
    ("config-momentum-negative-accepted", "config.py", '"momentum": (lambda v: number(v) and 0 <= v < 1,',
     '"momentum": (lambda v: number(v) and v < 1,'),
    ("config-warmup-with-constant-accepted", "config.py", '    if s["warmup"] and s["schedule"] == "constant":',
     "    if False:"),
    ("runstate-accuracy-above-one", "runstate.py", 'if key.endswith("_accuracy") and not 0 <= value <= 1:',
     'if key.endswith("_accuracy") and not 0 <= value:'),
    ("runstate-since-above-epoch", "runstate.py", '    if not found and state["since"] > state["epoch"]:',
     "    if False:"),
    ("runstate-eta-above-start", "runstate.py", '        if not found and state["eta"] > settings["eta"]:',
     "        if False:"),
    ("runstate-history-length-unchecked", "runstate.py", 'if history and epoch and len(state["history"]) != state["epoch"]:',
     "if False:"),
    ("modelfile-classes-count-unchecked", "modelfile.py",
     "        if classes is not None and len(classes) != n_out:", "        if False:"),
    ("modelfile-float-seed-accepted", "modelfile.py", 'if seed.ndim or seed.dtype.kind not in "iu":',
     "if seed.ndim:"),
    ("modelfile-version-array-accepted", "modelfile.py", "if (version is None or version.ndim or version.dtype",
     "if (version is None or version.dtype"),
    ("serve-pixel-above-255-accepted", "bodies.py", "    if not 0 <= value <= 255:", "    if not 0 <= value:"),
    ("serve-nesting-off-by-one", "bodies.py", "    if nesting(body) > MAX_NESTING:", "    if nesting(body) >= MAX_NESTING:"),
    ("picture-height-limit-unchecked", "imaging.py", "    if max(width, height) > MAX_SIDE:", "    if width > MAX_SIDE:"),
    # issue 24: shapes the command line never makes
    ("pool-back-height-width-swapped", "layers.py", "            c, h, wd = self.shape_out\n",
     "            c, wd, h = self.shape_out\n"),
    ("conv-back-height-width-swapped", "layers.py", "        f, oh, ow = self.shape_out\n        m = delta.shape[-1]",
     "        f, ow, oh = self.shape_out\n        m = delta.shape[-1]"),
    ("strict-conv-windows-swapped", "layers.py", "windows = xp.stack([x[:, i:i + oh, j:j + ow, :]",
     "windows = xp.stack([x[:, i:i + ow, j:j + oh, :]"),
    ("pool-forward-height-width-swapped", "layers.py", "self.shape_out = (c, h // p, w // p)",
     "self.shape_out = (c, w // p, h // p)"),
    # issue 24: edges of pictures
    ("augment-last-row-outside", "augment.py", "inside = (rr >= 0) & (rr < side)", "inside = (rr >= 0) & (rr < side - 1)"),
    ("augment-last-column-clipped", "augment.py", "xp.clip(cc, 0, side - 1)) * m", "xp.clip(cc, 0, side - 2)) * m"),
    ("ink-noise-from-the-noisiest-edge", "ink.py", "    return min(told[1:]) if len(told) > 1 else 0.0",
     "    return max(told[1:]) if len(told) > 1 else 0.0"),
    ("ink-a-few-steps-tell", "ink.py", "if steps.size >= max(4, len(e) // 4):", "if steps.size >= 1:"),
    # issue 24: our own, in the code the last round added
    ("smoothing-over-one-class-more", "engines.py", "smoothing / eye.shape[0]", "smoothing / (eye.shape[0] + 1)"),
    ("warmup-a-step-ahead", "schedules.py", "return START + (1 - START) * step / rise",
     "return START + (1 - START) * (step + 1) / rise"),
    ("cosine-quarter-wave", "schedules.py", "return 0.5 * (1 + math.cos(math.pi * p))",
     "return 0.5 * (1 + math.cos(math.pi * p / 2))"),
    ("ensemble-average-of-two", "ensemble.py", "return total / len(self.members)", "return total / 2"),
    ("ensemble-cost-unchecked", "ensemble.py", '          ("cost", lambda n: n.cost_name, str),\n', ""),
    ("config-eta-decay-with-schedule-accepted", "config.py",
     '    if s["eta_decay"] is not None and s["schedule"] != "constant":', "    if False:"),
    ("runstate-best-outside-history-accepted", "runstate.py", "elif best is not None and best not in validated:",
     "elif False:"),
    ("runstate-negative-elapsed-accepted", "runstate.py", 'key in ("seconds", "elapsed") and value < 0',
     'key == "seconds" and value < 0'),
    ("modelfile-dtype-unchecked", "modelfile.py", '    if config["dtype"] not in backend.DTYPES:', "    if False:"),
    ("serve-pixel-negative-accepted", "bodies.py", "    if not 0 <= value <= 255:", "    if not value <= 255:"),

    # issue 25 (the data folder, no run lost, the book's lines, one-line errors) and
    # issue 26's parts (runs.py, optimizers.py, the fast path's levers and Adam)
    ('place-env-ignored', 'data.py', '    if os.environ.get("DIGITNET_DATA"):', '    if False:'),
    ('place-checkout-without-its-files', 'data.py', '    if CHECKOUT is not None and has_files(CHECKOUT / name):', '    if CHECKOUT is not None:'),
    ('has-files-any-one', 'data.py', '    return all((Path(directory) / f).is_file() for f in download.FILES)', '    return any((Path(directory) / f).is_file() for f in download.FILES)'),
    ('download-error-without-why', 'download.py', "{f' ({why})' if why else ''}", ''),
    ('lock-file-removed-under-us-trusted', 'files.py', '            if os.fstat(fd).st_ino == os.stat(lock).st_ino:', '            if True:'),
    ('lock-never-taken', 'files.py', '            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)', '            pass'),
    ('lock-file-left-behind', 'files.py', '        with contextlib.suppress(OSError):\n            os.unlink(lock)', '        with contextlib.suppress(OSError):\n            pass'),
    ('long-name-kept-whole', 'files.py', '    if len(name.encode()) <= LONGEST:', '    if True:'),
    ('name-limit-unchecked', 'files.py', '    if len(path.name.encode()) > longest:', '    if False:'),
    ('new-run-overwrites-checkpoint', 'runs.py', '    if path is None or not os.path.lexists(path) or (resume and same_file(path, resume)):', '    if True:'),
    ('resumed-run-refuses-its-own-checkpoint', 'runs.py', '(resume and same_file(path, resume))', '(False)'),
    ('second-path-of-a-run-not-locked', 'runs.py', '            if path is None or any(same_file(path, p) for p in self.paths):', '            if path is None or self.paths:'),
    ('fit-signals-not-caught', 'runs.py', '        with signals.caught(stop.catch):', '        with contextlib.nullcontext():'),
    ('fit-test-at-end-not-rewritten', 'runs.py', "        files.after_epoch(run)  # the best epoch's record has its test figures only now", '        pass'),
    ('fit-failed-writes-silent', 'runs.py', '        if failed:\n            raise OSError(failed)', ''),
    ('fit-diverged-not-saved', 'runs.py', '            files.finish(run, "before it diverged")', '            pass'),
    ('sgd-silent', 'training.py', '        if verbose:\n            print(book_line(record), flush=True)', '        if False:\n            print(book_line(record), flush=True)'),
    ('book-epochs-from-1', 'training.py', '        return f"Epoch {record[\'epoch\'] - 1}: {record[\'test_correct\']}', '        return f"Epoch {record[\'epoch\']}: {record[\'test_correct\']}'),
    ('ensemble-shows-first-values-twice', 'ensemble.py', 'network {i} has {show(get(other))}', 'network {i} has {show(get(first))}'),
    ('evaluate-refuses-unlike-models', 'cli.py', '            unmixable = exc', '            raise exc'),
    ('oserror-raw-errno', 'cli.py', '    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:', '    if False:'),
    ('plot-always-png', 'plots.py', 'fig.savefig(f, format=kind, dpi=DPI)', 'fig.savefig(f, format="png", dpi=DPI)'),
    ('plot-nan-drawn', 'plots.py', '    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)', '    return isinstance(value, (int, float)) and not isinstance(value, bool)'),
    ('plot-deep-json-traceback', 'plots.py', '    except RecursionError:', '    except ZeroDivisionError:'),
    ('plot-any-suffix', 'plots.py', '    if suffix not in FORMATS:', '    if False:'),
    ('adam-no-first-bias-correction', 'optimizers.py', '        return -(eta / (1 - c.beta1 ** self.t)),', '        return -eta,'),
    ('adam-lerp-one-form', 'optimizers.py', '                if weight < 0.5:', '                if True:'),
    ('adam-steps-not-kept', 'optimizers.py', '        return {"adam_steps": self.t}', '        return {}'),
    ('adam-second-moment-undecayed', 'optimizers.py', '                ve *= b2\n', ''),
    ('adam-decay-on-biases-too', 'optimizers.py', '            if decay:\n                w *= 1.0 - decay\n            for p, nabla', '            if decay:\n                w *= 1.0 - decay\n                self.net.biases[i] *= 1.0 - decay\n            for p, nabla'),
    ('adam-decay-rounded-as-sgd', 'optimizers.py', '        return eta * (self.config.lmbda / n)', '        return eta * self.config.lmbda / n'),
    ('run-config-not-the-optimizers', 'training.py', '            self.optimizer.config = config', '            pass'),
    ('snapshot-leaves-optimizer', 'training.py', '        self.optimizer.set_buffers(buffers, scalars)', '        pass'),
    ('checkpoint-without-optimizer-arrays', 'checkpoint.py', '        shapes = {name: a.shape for name, a in run.optimizer.state_dict().items()}', '        shapes = {}'),
    ('adam-steps-unchecked', 'runstate.py', '    if not found and state["settings"].get("optimizer") == "adam":', '    if False:'),
    ('adam-with-momentum-accepted', 'config.py', '    if s["optimizer"] == "adam" and s["momentum"]:', '    if False:'),
    ('beta2-without-adam-accepted', 'config.py', '    if s["optimizer"] == "sgd" and (s["beta1"], s["beta2"]) != (0.9, 0.999):', '    if s["optimizer"] == "sgd" and s["beta1"] != 0.9:'),
    ('fast-smoothing-ignored', 'batched.py', '            eye = eye * (1.0 - smoothing) + smoothing / sizes[-1]', '            pass'),
    ('fast-decay-not-per-step', 'engines.py', '                fast.set_decay(optimizer.decay(eta_now, n))', '                pass'),
    ('fast-nesterov-is-momentum', 'kernels.py', '            xp.multiply(v, mu, out=scratch)', '            xp.multiply(v, 1.0, out=scratch)'),
    ('fast-trains-copies', 'params.py', '        weights[i], biases[i] = block[:, :-1], block[:, -1:]\n', ''),
    ('fast-restore-not-trained', 'params.py', 'w is hw and b is hb for', 'True for'),
    ('fast-blocks-any-layout', 'params.py', 'held[0] == key and', ''),
    ('fast-pass-cut-short-negated', 'training.py', '    finally:\n        end()\n', '    except BaseException:\n        raise\n    end()\n'),
    ('fast-negated-after-pass', 'batched.py', "own signs back.\"\"\"\n        self.begin()", "own signs back.\"\"\"\n"),
    ('fast-adam-summed-gradient', 'engines.py', "        means = {size: fast.scalar(1.0 / size) for size in {m, n % m or m}}", "        means = {size: fast.scalar(1.0) for size in {m, n % m or m}}"),
    ('fast-adam-other-lerp-weight', 'batched.py', '            self.weight = self.scalar(weight if self.low else 1 - weight)', '            self.weight = self.scalar(weight)'),
    ('fast-adam-negated', 'batched.py', '                        and adam is None)', '                        )'),
    ('job-kept-path-absolute', 'cli_runs.py', '                job.relative[key] = not os.path.isabs(value)', '                job.relative[key] = False'),
    # the compiled update (jit.py): bias decayed, layout ignored, rounding reordered
    ("jit-bias-decayed", "jit.py", "    return cols if last_row else cols - 1", "    return cols"),
    ("jit-layout-ignored", "jit.py", "        return tuple(a.T for a in arrays), True",
     "        return tuple(a.T for a in arrays), False"),
    ("jit-rounding-reordered", "jit.py", "            s = (v[i, j] * mu - nabla[i, j]) - wb[i, j] * decay",
     "            s = v[i, j] * mu - (nabla[i, j] + wb[i, j] * decay)"),
    ("jit-nesterov-lookahead-lost", "jit.py", "            wb[i, j] = (wb[i, j] + s * mu) - g",
     "            wb[i, j] = (wb[i, j] + s) - g"),
    # a read-only install with no writable cache: the fallback lost
    ("jit-uncached-fallback-lost", "jit.py",
     "        return numba.njit(**options)(fn)", "        raise"),
    # jit.py's conv, pooling and bn loops (issue 28)
    ("jit-col2im-offsets-reversed", "jit.py", "                for i in range(k):\n                    yy = y + p - i",
     "                for i in range(k - 1, -1, -1):\n                    yy = y + p - i"),
    ("jit-col2im-padding-ignored", "jit.py", "yy = y + p - i", "yy = y - i"),
    ("jit-pool-max-first-of-equals", "jit.py", "t[n] = a if a > b or a != a else b",
     "t[n] = a if a >= b or a != a else b"),
    ("jit-pool-back-sign-of-zero", "jit.py", "out[n] = (1.0 if v[n] == t[n] else 0.0) * d[n]",
     "out[n] = d[n] if v[n] == t[n] else 0.0"),
    ("jit-pool-relu-back-at-zero", "jit.py", "e[n] = (1.0 if t[n] > 0.0 else 0.0) * d[n]",
     "e[n] = (1.0 if t[n] >= 0.0 else 0.0) * d[n]"),
    ("jit-pool-relu-nan-lost", "jit.py", "o[n] = a if a > 0.0 or a != a else 0.0",
     "o[n] = a if a > 0.0 else 0.0"),
    ("pool-relu-loop-without-derivative", "layers.py", "dx = fast.pool_back(x, top, delta, self.p, True)",
     "dx = fast.pool_back(x, top, delta, self.p, False)"),
    ("pool-derivative-skipped", "layers.py", "        delta = self.f_back(xp, a, delta)\n", ""),
    ("jit-bn-relu-python-max", "jit.py", "(v if v > 0.0 or v != v else 0.0) if relu",
     "max(v, 0.0) if relu"),
    ("jit-bn-back-regrouped", "jit.py", "((zc[c, n] * ac + d[c, n]) - bc) * sc",
     "(zc[c, n] * ac + (d[c, n] - bc)) * sc"),
    ("jit-bn-sigmoid-taken", "jit.py", 'if activation not in (None, "relu")',
     'if activation not in (None, "relu", "sigmoid", "tanh")'),
    # jit_augment.py's distortion loops (issue 27's recipes' speed)
    ("jit-augment-weight-widened", "jit_augment.py", "wr = fr if dr_ else one - fr",
     "wr = fr if dr_ else 1 - fr"),
    ("jit-augment-corners-swapped", "jit_augment.py", "wc = fc if dc_ else one - fc",
     "wc = one - fc if dc_ else fc"),
    ("jit-augment-shift-sign", "jit_augment.py", "ru, cu = r0[q, 0] - shift[0, e], c0[q, 0] - shift[1, e]",
     "ru, cu = r0[q, 0] + shift[0, e], c0[q, 0] - shift[1, e]"),
    ("jit-augment-coordinates-regrouped", "jit_augment.py",
     "row = ((a[0, e] * ru + a[1, e] * cu) + c) + dr[q, e]",
     "row = (a[0, e] * ru + a[1, e] * cu) + (c + dr[q, e])"),
    ("jit-augment-dilation-off-by-one", "jit_augment.py", "yy, xc = y + i - 1, xx + j - 1",
     "yy, xc = y + i - 1, xx + j"),
    ("jit-augment-blur-from-unthickened", "jit_augment.py",
     "blurred = blurred + _near(x1, y, xx, k // 3, k % 3, e, side, zero) * weights[k]",
     "blurred = blurred + _near(x, y, xx, k // 3, k % 3, e, side, zero) * weights[k]"),
    ("jit-augment-clip-lost", "jit_augment.py", "out[q, e] = _smaller(_larger(v, zero), one)",
     "out[q, e] = v"),
    # issue 27's padding
    ("conv-padding-not-cropped", "layers.py", "        return grads, dx[:, p:p + h, p:p + wd, :] if p else dx",
     "        return grads, dx[:, :h, :wd, :]"),
    ("conv-padding-forward-skipped", "layers.py", "        x = self.padded(xp, xp.reshape(x, self.shape_in + (m,)))",
     "        x = xp.reshape(x, self.shape_in + (m,))"),
    ("conv-padding-too-large-accepted", "model.py", "        if padding and not 0 <= padding[0] < numbers[1]:",
     "        if False:"),
    # issue 26's format version 2 (modelfile.py, checkpoint.py)
    ("v2-undeclared-array-accepted", "modelfile.py", "        if version > 1:\n            try:\n                undeclared",
     "        if False:\n            try:\n                undeclared"),
    ("v2-run-undeclared-array-accepted", "checkpoint.py", "            if version > 1:\n                modelfile.undeclared",
     "            if False:\n                modelfile.undeclared"),
    ("v2-unknown-field-accepted", "modelfile.py", '    for key in sorted(set(d) - set(fields) - {"kind"}):', "    for key in []:"),
    ("v2-field-type-unchecked", "modelfile.py", "        if not ok(d[key]):", "        if False:"),
    ("v2-classes-not-written", "modelfile.py", '"classes": None if net.classes is None else', '"classes": None if True else'),
    ("v1-run-of-both-kinds-accepted", "modelfile.py", '    if kind == RUN_FORMAT and "sizes" in arrays and "layers" in arrays:',
     "    if False:"),
    ("run-best-state-not-restored", "training.py", '            best.load_state_dict(arrays, net.asarray, prefix="best_")', "            pass"),
    ("run-best-state-not-saved", "training.py", '            arrays.update(self.best.state.state_dict(prefix="best_"))',
     '            arrays.update(self.net.store.state_dict(prefix="best_"))'),
    # issue 26's store (params.py)
    ("store-copy-shares-arrays", "params.py", "        copy = lambda arrays: [backend.copy(self.xp, a) for a in arrays]",
     "        copy = lambda arrays: list(arrays)"),
    ("store-finite-skips-biases", "params.py",
     "        return all(bool(xp.all(xp.isfinite(a))) for a in self.named().values())",
     "        return all(bool(xp.all(xp.isfinite(a))) for a in self.weights)"),
    ("store-assign-skips-biases", "params.py", "        self.weights[:], self.biases[:] = other.weights, other.biases",
     "        self.weights[:] = other.weights"),
    # issue 27's batch normalization (layers.BatchNorm)
    ('bn-no-variance-path-in-dz', 'layers.py', '            dz = zc * (-(inv * nabla_w) / k)\n            dz += d',
     '            dz = d * 1.0'),
    ('bn-biased-running-var', 'layers.py', 'MOMENTUM * (k / (k - 1)) * var)',
     'MOMENTUM * var)'),
    ('bn-momentum-swapped', 'layers.py', '(1.0 - MOMENTUM) * buffers[self.mean] + MOMENTUM * seen',
     'MOMENTUM * buffers[self.mean] + (1.0 - MOMENTUM) * seen'),
    ('bn-eps-wrong', 'layers.py', 'EPS, MOMENTUM = 1e-5, 0.1',
     'EPS, MOMENTUM = 1e-3, 0.1'),
    ('bn-dgamma-without-xhat', 'layers.py', 'nabla_w = row_dots(xp, d, zc) * inv',
     'nabla_w = row_sums(xp, d)'),
    ('bn-no-mean-path-in-dz', 'layers.py', '            dz -= nabla_b / k\n', ''),
    ('bn-row-dots-of-a-alone', 'layers.py', '(rows, 1, k)) @ xp.reshape(b, (rows, k, 1))',
     '(rows, 1, k)) @ xp.reshape(a, (rows, k, 1))'),
    ('bn-eval-uses-batch-stats', 'model.py', 'self.store.buffers, train, shift)',
     'self.store.buffers, True, shift)'),
    ('bn-training-uses-running-stats', 'model.py', 'trace = self.forward(x, masks, train=True)',
     'trace = self.forward(x, masks)'),
    ('bn-eval-moves-running-stats', 'layers.py', '        else:\n            zc, var = z - buffers[self.mean], buffers[self.var]',
     '        else:\n            buffers[self.mean] = 0.9 * buffers[self.mean]\n            zc, var = z - buffers[self.mean], buffers[self.var]'),
    ('bn-no-activation', 'model.py', 'layer = BatchNorm(shape, mine, i)',
     'layer = BatchNorm(shape, None, i)'),
    ('bn-draws', 'model.py', 'self.weights.append(self.asarray(np.ones(layer.w_shape)))',
     'self.weights.append(self.asarray(1.0 + 0 * self.rng.standard_normal(layer.w_shape)))'),
    ('bn-assign-drops-buffers', 'params.py', '        self.buffers.update(other.buffers)\n',
     '        pass\n'),
    ('bn-one-left-over-allowed', 'layers.py', 'if n is not None and n % m == 1:',
     'if n is not None and n % m == -1:'),
    ('bn-per-example-allowed', 'layers.py', 'if engine == "per-example":',
     'if engine == "per-exampel":'),
    ('bn-cli-no-early-check', 'cli_runs.py', '        arch.check_training(job.config)\n',
     '        pass\n'),
    ('bn-cli-no-data-check', 'cli_runs.py', '        run.net.check_training(run.config, len(training_set))\n',
     '        pass\n'),
    ('bn-layer-no-one-guard', 'layers.py', '            if k == 1:\n',
     '            if k == 0:\n'),
    ('bn-after-pool-accepted', 'model.py', 'before not in ("conv", "fc")',
     'before not in ("conv", "fc", "pool")'),
    ('bn-pool-after-bn-no-activation', 'model.py', 'isinstance(layers[-1], (Conv, BatchNorm))',
     'isinstance(layers[-1], Conv)'),
    # the bias a bn layer cancels, left out of training (issue 28)
    ('bn-cancelled-bias-not-in-running-mean', 'layers.py',
     'seen = mu if shift is None else mu + shift', 'seen = mu'),
    ('bn-cancelled-bias-summed', 'layers.py', '    if not bias:\n', '    if False:\n'),
    ('bn-cancelled-bias-still-added', 'model.py', 'None if train and i in self.cancelled else b', 'b'),
    ('bn-cancelled-layer-after', 'model.py', 'for i, layer in enumerate(self.layers[1:])',
     'for i, layer in enumerate(self.layers[:-1])'),
    ('bn-dense-spec-with-bn', 'model.py', 'if not all(isinstance(layer, FullyConnected) for layer in self.layers):',
     'if not all(isinstance(layer, (FullyConnected, BatchNorm)) for layer in self.layers):'),
]


def passes(files, workers="0"):
    """True when `pytest -x` passes on these test files (in one process: for
    a few files, starting pytest-xdist's workers costs more than it saves)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           "-n", workers, *files], capture_output=True, text=True, cwd=ROOT)
    return done.returncode == 0


def run(mutant, tests_for):
    """caught, caught by the whole suite only, survived, or stale."""
    name, file, old, new = mutant
    path = SRC / file
    text = path.read_text()
    if text.count(old) != 1:
        return "stale"  # the code moved on: update the mutant
    try:
        path.write_text(text.replace(old, new))
        if not passes([f"tests/{t}" for t in tests_for.get(file, ())] or ORDER):
            return "caught"
        return "survived" if passes(ORDER, "2") else "caught*"
    finally:
        path.write_text(text)


def main(names):
    chosen = [m for m in MUTANTS if not names or m[0] in names]
    unknown = set(names) - {m[0] for m in MUTANTS}
    if unknown:
        sys.exit(f"no such mutant: {', '.join(sorted(unknown))}")
    tests_for = derived_tests_for()
    results = {}
    for mutant in chosen:
        start = time.perf_counter()
        results[mutant[0]] = run(mutant, tests_for)
        print(f"{results[mutant[0]]:9} {mutant[0]}  ({time.perf_counter() - start:.0f} s)", flush=True)
    caught = sum(r.startswith("caught") for r in results.values())
    judged = sum(r != "stale" for r in results.values())
    print(f"{caught} of {judged} mutants caught; survivors: "
          f"{', '.join(n for n, r in results.items() if r == 'survived') or 'none'}; "
          f"stale: {', '.join(n for n, r in results.items() if r == 'stale') or 'none'}; "
          "caught only by the whole suite (their test runs the code in a child process, "
          "or through a fixture another file set up first): "
          f"{', '.join(n for n, r in results.items() if r == 'caught*') or 'none'}")
    return 0 if caught == len(results) else 1  # a stale mutant is a gap too


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
