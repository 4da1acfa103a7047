"""Where one training step's time goes, operation by operation (issue 28, item 1).

    DIGITNET_DATA=../shared/data python benchmarks/profile_step.py [--quick] [--net NAME]...

For each recipe's network at the m it trains with (NETS: chapter 1 at
m = 10, the dense recipe at 20, the conv and speed recipes' networks at 20
and 64), the whole step is timed as training takes it (engines.stepper's
step on real MNIST rows; the conv networks on expanded, uint8 rows as
`--expand` trains them), and then the step's operations are re-issued one
by one on arrays of the same shapes and values:

- the dense fast path (batched.py) is traced: its very plan (the buffers
  stepper built) runs once through a stand-in for NumPy (Recorder) that
  keeps every call, and each call is replayed alone, its arrays put back
  as they were before it ran (an exp re-run in place would overflow);
- the plain engine's conv step (Model.backprop, then the optimizer) is
  rebuilt by plain_ops from the layers' own functions where one is a
  single operation (im2col, nabla_w, pooling's backward, the activation
  derivatives, the optimizer's step) and the layer code's calls elsewhere;
  where Numba runs jit.py's loops (col2im, max-pooling, bn's passes), each
  loop is one part.

Each operation's median time, share of the step, FLOPs (GEMMs: 2 per
multiply-add; elsewhere one per element), bytes read + written, and its
rate against the large-GEMM rate and the memory bandwidth measured in the
same run.  The sum of the parts stands beside the whole step: what is left
is the Python between the calls, which the parts do not see.  Each part
is timed twice: alone (its inputs untouched since the last round) and
again at once (its inputs in cache); the step's own cache state lies
between (for the conv networks the two sums differ by about a third), so
the Python share is given as the range the two allow.  Whole steps
(in bursts, as an epoch runs them back to back) and parts are interleaved
round by round, so a load change hits both.  This machine's speed wanders:
compare only figures of one run.

--quick: a few rounds, for the smoke test (figures meaningless).
--net NAME: only the networks whose name starts with NAME (repeatable).
"""

import contextlib
import functools
import inspect
import io
import operator
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

import digitnet as dn
from digitnet import backend, engines, jit, layers, schedules, training
from digitnet.costs import COSTS
from digitnet.layers import BatchNorm, Conv, FullyConnected, MaxPool, identity_back

from vs_torch import RECIPES, gemm_rate

SPEED = "conv:16x5x5,pool:2,conv:32x5x5,pool:2,fc:128,softmax:10"
SPEED_MODEL = dict(layers=SPEED, activation="relu", init="scaled")
# the README's speed recipe since batch normalization (issue 27)
SPEED_BN_MODEL = dict(SPEED_MODEL, layers="conv:16x5x5,bn,pool:2,conv:32x5x5,bn,pool:2,fc:128,bn,"
                      "softmax:10")
RECORD_MODEL = dict(SPEED_MODEL, layers="conv:32x3x3,bn,conv:32x3x3,bn,pool:2,conv:64x3x3,bn,"
                    "conv:64x3x3,bn,pool:2,fc:256,bn,softmax:10")
# README's speed recipe (its run options; --expand is the `expanded` flag below)
SPEED_RUN = dict(eta=0.1, momentum=0.9, nesterov=True, lmbda=25.0, schedule="one-cycle",
                 warmup=0.2, label_smoothing=0.1, epochs=3)


class Net(NamedTuple):
    model: dict       # Model options, or None for chapter 1's Network([784, 30, 10])
    run: dict         # TrainConfig fields
    m: int
    expanded: bool    # trained on the expanded set: uint8 rows, a gather then a cast


NETS = {
    "chapter1": Net(None, dict(eta=3.0), 10, False),
    "dense": Net(RECIPES["dense"][0], RECIPES["dense"][1], 20, False),
    "dense-levers": Net(RECIPES["dense-levers"][0], RECIPES["dense-levers"][1], 20, False),
    "conv-20": Net(RECIPES["conv"][0], RECIPES["conv"][1], 20, True),
    "conv-64": Net(RECIPES["conv"][0], RECIPES["conv"][1], 64, True),
    "speed-20": Net(SPEED_MODEL, SPEED_RUN, 20, True),
    "speed-64": Net(SPEED_MODEL, SPEED_RUN, 64, True),
    "speed-bn-64": Net(SPEED_BN_MODEL, dict(SPEED_RUN, eta=0.2, epochs=1), 64, True),
    # the record recipe's network (issue 27), its distortions left out
    "record-64": Net(RECORD_MODEL, dict(SPEED_RUN, eta=0.2, lmbda=5.0, epochs=20), 64, False),
}
N_ROWS = 10_000  # rows the steps draw their mini-batches from


class Op(NamedTuple):
    """One re-issued operation of a step."""
    name: str
    kind: str             # "gemm", "elementwise" (ufuncs, reductions, draws) or "copy"
    fn: Callable          # runs it once
    flops: float          # GEMMs: 2 per multiply-add; elementwise: elements
    moved: float          # bytes read + written
    calls: int = 1        # NumPy calls it makes
    restore: Callable = None  # puts its arrays back as they were, before each timing


# ---------------------------------------------------------------- the machine

def cpu_name():
    """lscpu's "Model name" (what RESULTS.md names), else /proc/cpuinfo's."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def blas_name():
    """The BLAS library, its version, core type and threads: they decide the GEMM rate."""
    try:
        from threadpoolctl import threadpool_info
        return "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                         f"{p.get('num_threads')} threads)" for p in threadpool_info()
                         if p.get("user_api") == "blas") or "none found"
    except ImportError:  # numpy.show_runtime prints the same through threadpoolctl or not at all
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            np.show_runtime()
        return " ".join(text.getvalue().split())[-200:]


def l3_bytes():
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
        return int(size.rstrip("KM")) << (20 if size.endswith("M") else 10)
    except (OSError, ValueError):
        return 64 << 20


def copy_rate(nbytes, repeats):
    """Bytes read + written per second by np.copyto between two arrays of
    `nbytes` each: the bandwidth an elementwise pass can hope for."""
    a = np.ones(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)  # the first touch faults the pages in
    return 2 * a.nbytes / min(timed(np.copyto, b, a) for _ in range(repeats))


def call_floor(timer, repeats=2000):
    """Median seconds of one ufunc call on 8 elements, timed as the ops are
    (measure): what any call costs, whatever its work.  Not on one element:
    NumPy 2.4 takes a slower path for those (2.3 us against 1.2 here)."""
    s, zero = np.ones(8, dtype=np.float32), np.zeros(8, dtype=np.float32)
    fn = functools.partial(np.add, s, zero, out=s)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) - timer


def timer_floor(repeats=2000):
    """Median of two back-to-back perf_counter calls, taken off every timing."""
    return statistics.median(-time.perf_counter() + time.perf_counter() for _ in range(repeats))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def machine(quick):
    """The reference rates, measured now, and the header lines that say them."""
    dram = min(max(2 * l3_bytes(), 256 << 20), 1 << 30) if not quick else 64 << 20
    timer = timer_floor()
    ref = dict(gemm=gemm_rate(), dram=copy_rate(dram, 3 if quick else 5),
               cache=copy_rate(512 << 10, 50), call=call_floor(timer), timer=timer)
    lines = [f"- CPU: {cpu_name()} ({os.cpu_count()} cores); NumPy {np.__version__}; "
             f"BLAS: {blas_name()}",
             f"- large float32 GEMM (1024^3): {ref['gemm'] / 1e9:.1f} GFLOP/s",
             f"- memory bandwidth, np.copyto of {dram >> 20} MiB arrays (read + written): "
             f"{ref['dram'] / 1e9:.1f} GB/s"
             + (" (--quick: not beyond the cache)" if quick else f" (L3 {l3_bytes() >> 20} MiB)"),
             f"- the same within cache (512 KiB arrays): {ref['cache'] / 1e9:.1f} GB/s; "
             f"one ufunc call on 8 elements: {ref['call'] * 1e6:.2f} us; "
             f"timer floor {ref['timer'] * 1e9:.0f} ns (taken off each timing)"]
    return ref, lines


# ------------------------------------------------------------- the whole step

def make_net(spec):
    if spec.model is None:
        return dn.Network([784, 30, 10], seed=0, device="cpu")
    return dn.Model(**spec.model, seed=0, device="cpu")


def load_rows(spec, training_set):
    """Ten thousand training rows as the recipe trains on them."""
    if spec.expanded:  # the expanded set of 2,000 images: 10,000 uint8 rows
        return dn.expand(training_set[:N_ROWS // 5])
    return training_set[:N_ROWS]


class Trainee:
    """A network, its run and its device data, stepped as run_epoch steps it."""

    def __init__(self, spec, data):
        self.net = make_net(spec)
        self.run = training.Run(self.net, mini_batch_size=spec.m, **spec.run)
        self.rows, self.labels = training.to_device(self.net, data)
        self.m, self.n = spec.m, self.rows.shape[0]
        self.k, self.end = self.n, None  # past the end: the first step starts a pass

    def pass_stepper(self):
        """A fresh (begin, step, end) for a pass, at the first pass's rates
        (so a one-cycle schedule never runs past its end)."""
        config = self.run.config
        eta = schedules.for_pass(config, 0, config.epochs, self.n, self.run.eta) or self.run.eta
        return engines.stepper(self.net, self.rows, self.labels, config, eta, self.run.optimizer)

    def step(self):
        """Seconds of the next step of an endless run of passes."""
        if self.k + self.m > self.n:
            if self.end is not None:
                self.end()
            begin, self.take, self.end = self.pass_stepper()
            begin()
            self.order, self.k = np.asarray(self.net.rng.permutation(self.n)), 0
        k, self.k = self.k, self.k + self.m
        start = time.perf_counter()
        self.take(self.order[k:k + self.m])
        return time.perf_counter() - start


# ------------------------------------------- the fast path's calls, replayed

class Call(NamedTuple):
    label: str
    name: str
    fn: Callable
    args: tuple
    kwargs: dict
    saved: list   # (array, its contents before the call)


class Recorder:
    """Stands in for NumPy as the fast path's `xp`: each call runs, and is
    kept with copies of its arrays as they were, to be replayed alone."""

    def __init__(self):
        self.calls, self.label = [], ""

    def __getattr__(self, name):
        fn = getattr(np, name)
        if not callable(fn):
            return fn
        return lambda *args, **kwargs: self.call(name, fn, *args, **kwargs)

    def call(self, name, fn, *args, **kwargs):
        arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
        saved = [(a, a.copy()) for a in arrays]
        self.calls.append(Call(self.label, name, fn, args, kwargs, saved))
        return fn(*args, **kwargs)


def fast_parts(step):
    """The FastBatched object and the step's k = eta/m inside stepper's
    constant-rate step: the breakdown replays the very plan training runs."""
    found = inspect.getclosurevars(step).nonlocals
    if "fast" in found and "ks" in found:
        return found["fast"], found["ks"]
    if "fast" in found and "rate" in found and "means" in found:
        # a per-step rate (the levers): the same plan, k at the pass's first rate
        fast, eta = found["fast"], found["rate"](0)
        return fast, {size: fast.scalar(eta / size) for size in found["means"]}
    raise RuntimeError("engines.stepper's fast step changed shape: update fast_parts")


def trace_fast(fast, idx, k):
    """FastBatched.step, line for line, with a Recorder for xp: its calls."""
    rec, K, sizes = Recorder(), fast.k, fast.sizes
    names = [f"fc{l + 1} {a}->{b}" for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    x, raw, y, (host, device), forward, (head, tail), backward = (
        fast.plans.get(idx.shape[0]) or fast._plan(idx.shape[0]))
    rec.label = "gather"
    K.gather(rec, fast.rows, idx, x, raw, fast.two55)
    if host is not None:
        rec.label = "dropout draw"
        rec.call("random", fast.net.rng.random, dtype=np.float32, out=host)
        K.upload(rec, host, device)
    for name, (left, right, product, act, args) in zip(names, forward):
        rec.label = f"{name} forward"
        rec.dot(left, right, out=product)
        rec.label = f"{name} {act.__name__}"
        act(rec, *args[1:])
    rec.label = "output_delta"
    K.output_delta(rec, *head[1:], idx, y, k, *tail)
    for l, (below, left, right, product, update, args) in zip(range(len(names))[::-1], backward):
        if below is not None:
            l2, r2, p2, hidden_delta, hidden_args = below
            rec.label = f"{names[l]} BP2"
            rec.dot(l2, r2, out=p2)
            rec.label = f"{names[l - 1]} {hidden_delta.__name__}"
            hidden_delta(rec, *hidden_args[1:])
        rec.label = f"{names[l]} BP3+BP4"
        rec.dot(left, right, out=product)
        rec.label = f"{names[l]} {update.__name__}"
        if update.__qualname__.startswith("NumbaKernels.") and args[1].size >= jit.SMALL:
            # jit.py's compiled update: one call, no chain to record
            rec.call("compiled loop", update, np, *args[1:])
        else:
            update(rec, *args[1:])
    return rec.calls


def call_op(call, written):
    """An Op replaying one recorded call; `written` are the step's outputs,
    the only arrays to put back (not the data set it gathers from)."""
    arrays = [a for a in call.args if isinstance(a, np.ndarray)]
    out = call.kwargs.get("out")
    if call.name == "dot":
        a, b = call.args[:2]
        kind, flops, moved = "gemm", 2 * a.shape[0] * a.shape[1] * b.shape[1], a.nbytes + b.nbytes
    elif call.name == "compiled loop":  # jit.py's update: reads wb, nabla, v; writes wb, v
        wb, nabla, v = call.args[1:4]
        kind, flops = "elementwise", wb.size
        moved = 2 * wb.nbytes + nabla.nbytes + (2 * v.nbytes if v is not None else 0)
    elif call.name == "take":  # reads only the rows it gathers
        kind, flops, moved = "copy", 0, out.nbytes + call.args[1].nbytes
    else:
        kind, flops = "elementwise", max(a.size for a in arrays + [out] if a is not None)
        moved = sum(a.nbytes for a in arrays)
    moved += out.nbytes if out is not None else 0
    saved = [(a, copy) for a, copy in call.saved
             if any(np.may_share_memory(a, w) for w in written)]

    def restore():
        for a, copy in saved:
            np.copyto(a, copy)
    # a partial, not a lambda: at m = 10 a Python frame more per call shows
    return Op(f"{call.label}: {call.name}", kind,
              functools.partial(call.fn, *call.args, **call.kwargs), flops, moved, 1, restore)


def fast_ops(trainee, idx):
    """The fast path's step as one Op per NumPy call, checked first: the
    traced step leaves the weights FastBatched.step leaves, bit for bit."""
    begin, step, _ = trainee.pass_stepper()
    begin()
    fast, ks = fast_parts(step)
    held = fast.wb + (fast.vel or [])
    before, rng = [a.copy() for a in held], fast.net.rng.bit_generator.state
    with np.errstate(over="ignore", invalid="ignore"):
        calls = trace_fast(fast, idx, ks[idx.shape[0]])
        traced = [a.copy() for a in held]
        for a, copy in zip(held, before):
            np.copyto(a, copy)
        fast.net.rng.bit_generator.state = rng
        fast.step(idx, ks[idx.shape[0]])
    if not all(np.array_equal(a, b) for a, b in zip(held, traced)):
        raise RuntimeError("trace_fast no longer takes FastBatched.step's step: update it")
    written = [c.kwargs["out"] for c in calls if "out" in c.kwargs] + [
        a for c in calls if c.name == "compiled loop" for a in c.args[1:4] if a is not None]
    return [call_op(c, written) for c in calls]


# ----------------------------------------------- the plain engine's step, rebuilt

class Ops:
    """Runs each operation once (its result feeds the next) and keeps it."""

    def __init__(self):
        self.ops = []

    def __call__(self, name, kind, fn, moved, flops=0, calls=1):
        result = fn()
        nbytes = moved(result) if callable(moved) else moved
        self.ops.append(Op(name, kind, fn, flops, nbytes, calls))
        return result


def layer_name(net, i):
    return f"L{i + 1} {net.architecture.layers[i]}"


def conv_forward(t, xp, name, layer, w, b, a, m):
    """Conv.forward's calls (the recipes' layers have no padding)."""
    x = layer.padded(xp, xp.reshape(a, layer.shape_in + (m,)))
    cols = t(f"{name}: im2col (windows, one copy)", "copy", lambda: layer.columns(xp, x),
             lambda r: 2 * r.nbytes)
    z = t(f"{name}: forward GEMM w @ cols", "gemm", lambda: w @ cols,
          lambda r: w.nbytes + cols.nbytes + r.nbytes, flops=2 * w.size * cols.shape[1])
    if b is not None:  # None: the bn layer after cancels it (Model.cancelled)
        t(f"{name}: z += b", "elementwise", lambda: operator.iadd(z, b), 2 * z.nbytes, z.size)
    a = z
    if layer.activation is not None:
        a = t(f"{name}: {layer.activation}", "elementwise", lambda: layer.f(xp, z),
              lambda r: z.nbytes + r.nbytes, z.size)
    return xp.reshape(a, layer.shape_out + (m,)), cols


def pool_max(xp, layer, x):
    """MaxPool.forward's maximum over the p*p offsets."""
    first, *rest = layer.offsets()
    top = x[first]
    for index in rest:
        top = xp.maximum(top, x[index])
    return top


def pool_forward(t, xp, name, layer, w, b, a, m):
    x = xp.reshape(a, layer.shape_in + (m,))
    pp, relu = layer.p * layer.p, layer.activation == "relu"
    if layers.loops(xp):  # jit.py's loop: reads x once, writes the max (and its ReLU)
        top, out = t(f"{name}: max of {pp} offsets{' and relu' * relu}, compiled loop",
                     "elementwise", lambda: layers.loops(xp).pool_max(x, layer.p, relu),
                     lambda r: x.nbytes + (1 + relu) * r[0].nbytes, x.size)
        if relu:
            return out, (x, top, out)
    else:
        top = t(f"{name}: max of {pp} offsets", "elementwise", lambda: pool_max(xp, layer, x),
                lambda r: x.nbytes + (2 * pp - 3) * r.nbytes, x.size, calls=pp - 1)
    out = top
    if layer.activation is not None:
        out = t(f"{name}: {layer.activation}", "elementwise", lambda: layer.f(xp, top),
                2 * top.nbytes, top.size)
    return out, (x, top, out)


def fc_forward(t, xp, name, layer, w, b, a, m):
    x = xp.reshape(a, (layer.n_in, m))
    wx = t(f"{name}: forward GEMM w @ a", "gemm", lambda: w @ x,
           lambda r: w.nbytes + x.nbytes + r.nbytes, flops=2 * w.size * m)
    z = wx if b is None else t(f"{name}: z + b", "elementwise", lambda: wx + b, 2 * wx.nbytes,
                               wx.size)
    if layer.activation is None:  # the bn layer after applies f
        return z, x
    passes = 8 if layer.activation == "softmax" else 2  # softmax: max, -, exp, sum, /
    out = t(f"{name}: {layer.activation}", "elementwise", lambda: layer.f(xp, z),
            passes * z.nbytes, z.size, calls=5 if layer.activation == "softmax" else 1)
    return out, x


def conv_backward(t, xp, name, layer, w, cols, delta, need_input, m, bias=True):
    """Conv.backward's calls: BP4 (nabla_w's spans), BP3, and for dC/dx the
    GEMM w^T d (w's columns offset-major) and the col2im of k*k +="""
    f, oh, ow = layer.shape_out
    d = xp.reshape(delta, (f, oh * ow * m))
    spans = -(-d.shape[1] // layers.SPAN)
    gw = t(f"{name}: BP4 nabla_w ({spans} span{'s' * (spans > 1)})", "gemm",
           lambda: layers.nabla_w(cols, d), (cols.nbytes + d.nbytes + spans * w.nbytes),
           flops=2 * w.size * d.shape[1], calls=2 * spans - 1)
    gb = bp3(t, xp, name, d, bias)
    if not need_input:
        return (gw, gb), None
    (c, h, wd), k, p = layer.shape_in, layer.k, layer.pad
    by_offset = t(f"{name}: w's columns offset-major", "copy",
                  lambda: xp.reshape(xp.permute_dims(xp.reshape(w, (-1, c, k * k)), (0, 2, 1)),
                                     (-1, k * k * c)), lambda r: 2 * r.nbytes)
    dcols = t(f"{name}: BP2 GEMM w^T @ delta", "gemm", lambda: by_offset.T @ d,
              lambda r: w.nbytes + d.nbytes + r.nbytes, flops=2 * w.size * d.shape[1])
    if layers.loops(xp):  # jit.py's loop: reads dcols once, writes dC/dx
        dx = t(f"{name}: col2im, compiled loop", "elementwise",
               lambda: layers.loops(xp).col2im(xp.reshape(dcols, (k * k, c, oh, ow, m)), k, p,
                                               h, wd), lambda r: dcols.nbytes + r.nbytes,
               dcols.size)
        return (gw, gb), dx
    dx = t(f"{name}: zeros for dC/dx", "copy",
           lambda: xp.zeros((c, h + 2 * p, wd + 2 * p, m), dtype=delta.dtype), lambda r: r.nbytes)
    t(f"{name}: col2im, {k * k} contiguous +=", "elementwise", lambda: col2im(layer, dcols, dx, m),
      3 * dcols.nbytes, dcols.size, calls=k * k)
    return (gw, gb), dx[:, p:p + h, p:p + wd, :] if p else dx


def col2im(layer, dcols, dx, m):
    """Conv.backward's scatter of each kernel offset's share onto its shifted
    view, from the offset-major dcols."""
    (c, _, _), k = layer.shape_in, layer.k
    _, oh, ow = layer.shape_out
    dcols = np.reshape(dcols, (k * k, c, oh, ow, m))
    for i in range(k):
        for j in range(k):
            dx[:, i:i + oh, j:j + ow, :] += dcols[i * k + j, ...]


def pool_backward(t, xp, name, layer, w, cache, delta, need_input, m):
    x, top, out = cache
    fast = layers.loops(xp) is not None  # one loop: reads x, top, delta once, writes dx
    relu = fast and layer.activation == "relu"  # the loop applies ReLU's derivative
    if layer.activation is not None and not relu:
        d = delta
        delta = t(f"{name}: {layer.activation} derivative (>, x)", "elementwise",
                  lambda: layer.f_back(xp, out, xp.reshape(d, out.shape)),
                  (4 + 1 + 1 + 4 + 4) * out.size, out.size, calls=2)
        cache = x, top, None  # what is left for the backward: routing only
        layer = identity_pool(layer)
    d_in = t(f"{name}: backward ({'relu derivative, ' * relu}==, x delta)"
             f"{', compiled loop' * fast}", "elementwise",
             lambda: layer.backward(xp, w, cache, delta, need_input)[1],
             x.nbytes + top.nbytes + delta.nbytes + (1 if fast else 3) * x.nbytes, 2 * x.size,
             calls=1 if fast else 2)
    return None, d_in


def identity_pool(layer):
    """The same pooling without an activation (its f' already applied)."""
    return MaxPool(layer.shape_in, layer.p, None)


def bp3(t, xp, name, d, bias):
    """BP3's sum, or the zeros of a bias the bn layer after cancels (not timed)."""
    if not bias:
        return layers.bias_grad(xp, d, False)
    return t(f"{name}: BP3 sum", "elementwise", lambda: xp.sum(d, axis=1, keepdims=True),
             d.nbytes, d.size)


def fc_backward(t, xp, name, layer, w, x, delta, need_input, m, bias=True):
    gw = t(f"{name}: BP4 GEMM delta @ a^T", "gemm", lambda: delta @ x.T,
           lambda r: delta.nbytes + x.nbytes + r.nbytes, flops=2 * w.size * m)
    gb = bp3(t, xp, name, delta, bias)
    if not need_input:
        return (gw, gb), None
    d_in = t(f"{name}: BP2 GEMM w^T @ delta", "gemm", lambda: w.T @ delta,
             lambda r: w.nbytes + delta.nbytes + r.nbytes, flops=2 * w.size * m)
    return (gw, gb), xp.reshape(d_in, layer.shape_in + (m,))


def bn_forward(t, xp, name, layer, w, b, a, m, shift=None):
    """BatchNorm.forward whole: its statistics (two matrix-product sums),
    the centring, the scale and shift and the activation, ~6 passes; the
    running statistics it moves are put back for the step to move them."""
    buffers = layer_buffers(layer)
    fast = layers.loops(xp) is not None  # scale, shift and ReLU one loop
    out, cache = t(f"{name}: batch norm forward (stats, normalize, activation"
                   f"{'; compiled loop' * fast})", "elementwise",
                   lambda: layer.forward(xp, w, b, a, dict(buffers), True, shift),
                   (5 if fast else 6) * a.nbytes, 6 * a.size, calls=8 if fast else 10)
    return out, cache


def bn_backward(t, xp, name, layer, w, cache, delta, need_input, m):
    fast = layers.loops(xp) is not None  # the four passes one loop
    grads, d_in = t(f"{name}: batch norm backward (sums, {'compiled loop' if fast else '4 passes'})",
                    "elementwise", lambda: layer.backward(xp, w, cache, delta, need_input),
                    (5 if fast else 7) * delta.nbytes, 6 * delta.size, calls=6 if fast else 9)
    return grads, d_in


def layer_buffers(layer):
    return {k: np.zeros(s, dtype=np.float32) for k, s in layer.buffer_shapes().items()}


FORWARD = {Conv: conv_forward, MaxPool: pool_forward, FullyConnected: fc_forward,
           BatchNorm: bn_forward}
BACKWARD = {Conv: conv_backward, MaxPool: pool_backward, FullyConnected: fc_backward,
            BatchNorm: bn_backward}


def sgd_traffic(config):
    """(arrays read, written, calls) per weight and per bias array of
    optimizers.SGD.step, counted from its code, for its bytes."""
    decay = bool(config.lmbda)
    if config.momentum and config.nesterov:
        return (8 + 4 * decay, 6 + 2 * decay, 6 + 2 * decay), (9, 6, 6)
    if config.momentum:
        return (6 + 3 * decay, 4 + 2 * decay, 4 + 2 * decay), (6, 4, 4)
    return (3 + decay, 2 + decay, 2 + decay), (3, 2, 2)


def update_op(t, net, run, nabla_w, nabla_b, eta, m, n):
    (rw, ww, cw), (rb, wb, cb) = sgd_traffic(run.config)
    sizes = [w.size for w in net.weights], [b.size for b in net.biases]
    moved = 4 * ((rw + ww) * sum(sizes[0]) + (rb + wb) * sum(sizes[1]))
    t("update: optimizer step, all layers", "elementwise",
      lambda: run.optimizer.step(nabla_w, nabla_b, eta, m, n), moved,
      sum(sizes[0]) + sum(sizes[1]), calls=len(net.weights) * (cw + cb))


def plain_ops(trainee, idx):
    """The plain engine's step (engines.stepper's step for a conv network:
    gather, targets, dropout masks, Model.backprop, optimizer.step) as Ops,
    checked: their gradient is Model.backprop's, bit for bit."""
    net, run, t = trainee.net, trainee.run, Ops()
    xp, m, cfg = net.xp, idx.shape[0], trainee.run.config
    rows, labels = trainee.rows, trainee.labels
    with np.errstate(over="ignore", invalid="ignore"):
        x, y, masks = step_inputs(t, net, cfg, rows, labels, idx)
        trace, a = [], x
        for i, layer in enumerate(net.layers):
            name = layer_name(net, i)
            if masks and i in masks:
                a = t(f"{name}: input x dropout mask", "elementwise",
                      lambda a=a, mask=masks[i], n=layer.n_in: xp.reshape(a, (n, m)) * mask,
                      lambda r: 3 * r.nbytes, layer.n_in * m)
            w, b = net.wb(i)
            extra = {}  # as Model.forward: a bias that the bn after cancels is left out
            if isinstance(layer, BatchNorm) and i - 1 in net.cancelled:
                extra = {"shift": net.wb(i - 1)[1]}
            trace.append(FORWARD[type(layer)](t, xp, name, layer, w,
                                              None if i in net.cancelled else b, a, m, **extra))
            a = trace[-1][0]
        nabla_w, nabla_b = backward(t, net, trace, masks, y, m)
        want_b, want_w = net.backprop(x, y, masks)
        if not all(np.array_equal(a, b) for a, b in zip(nabla_w + nabla_b, want_w + want_b)):
            raise RuntimeError("plain_ops no longer computes Model.backprop's gradient: update it")
        eta = schedules.for_pass(cfg, 0, cfg.epochs, trainee.n, run.eta)
        update_op(t, net, run, nabla_w, nabla_b, eta(0) if eta else run.eta, m, trainee.n)
    return t.ops


def step_inputs(t, net, cfg, rows, labels, idx):
    """The step's gather, float cast, targets and dropout masks."""
    xp, m = net.xp, idx.shape[0]
    x = t("gather rows", "copy", lambda: xp.take(rows, idx, axis=0),
          lambda r: 2 * r.nbytes + idx.nbytes)
    if x.dtype == np.uint8:
        raw = x
        x = t("bytes to floats (astype, /255)", "elementwise",
              lambda: backend.bytes_to_float(xp, raw, net.dtype),
              lambda r: raw.nbytes + 3 * r.nbytes, raw.size, calls=2)
    eye = xp.eye(net.n_out, dtype=net.dtype)  # stepper makes it once a pass
    y = t("targets (one-hot gather" + (", smoothing)" if cfg.label_smoothing else ")"), "copy",
          lambda: engines.targets(xp, xp.take(labels, idx), eye, cfg.label_smoothing),
          lambda r: (2 + 4 * bool(cfg.label_smoothing)) * r.nbytes,
          calls=2 + 2 * bool(cfg.label_smoothing))
    masks = None
    if net.dropout:
        inputs = sum(net.layers[i].n_in for i in net.dropped())
        # draw (4 bytes written), >= (4 read, 1 written), cast (1, 4), / (4, 4)
        masks = t("dropout masks (draw, >=, cast, /)", "elementwise",
                  lambda: net.dropout_masks(m), 22 * inputs * m, inputs * m, calls=4)
    return x.T, y, masks


def backward(t, net, trace, masks, y, m):
    """Model.backprop's backward half, each layer's calls through BACKWARD."""
    xp = net.xp
    out = trace[-1][0]
    delta = t("output delta a - y", "elementwise",
              lambda: COSTS[net.cost_name].delta(xp, out, y, net.layers[-1].back),
              3 * out.nbytes, out.size)
    nabla_w, nabla_b = [None] * len(net.weights), [None] * len(net.biases)
    for i in range(len(net.layers) - 1, -1, -1):
        layer, name = net.layers[i], layer_name(net, i)
        bias = {"bias": False} if i in net.cancelled else {}
        grads, d_in = BACKWARD[type(layer)](t, xp, name, layer, net.wb(i)[0], trace[i][1],
                                            delta, i > 0, m, **bias)
        if grads is not None:
            nabla_w[net.param[i]], nabla_b[net.param[i]] = grads
        if i == 0:
            break
        if masks and i in masks:
            d_in = t(f"{name}: dC/dx x dropout mask", "elementwise",
                     lambda d=d_in, mask=masks[i]: xp.reshape(d, mask.shape) * mask,
                     lambda r: 3 * r.nbytes, masks[i].size)
        prev, a_prev = net.layers[i - 1], trace[i - 1][0]
        if prev.back is identity_back:  # a conv under a pool, or a pool: nothing to do
            delta = xp.reshape(d_in, a_prev.shape)
            continue
        delta = t(f"{layer_name(net, i - 1)}: {prev.activation} derivative (>, x)", "elementwise",
                  lambda d=d_in, a=a_prev, back=prev.back: back(xp, a, xp.reshape(d, a.shape)),
                  (4 + 1 + 1 + 4 + 4) * a_prev.size, a_prev.size, calls=2)
    return nabla_w, nabla_b


# ----------------------------------------------------------------- measuring

def measure(trainee, ops, rounds, burst, floor):
    """Seconds of every whole step, and each op's median seconds alone and
    again, interleaved: each round is `burst` whole steps back to back (as
    an epoch takes them), then every op twice at once, its arrays first put
    back where it needs them.  Alone, an op reads what it read when built,
    untouched since the last round; again, the same in cache.  In the step
    an op reads some arrays just made (in cache) and some not (weights,
    data), so its time lies between, mostly."""
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(burst):  # warm-up: first-use allocations, BLAS threads
            trainee.step()
        for op in ops:
            op.restore and op.restore()
            op.fn()
        steps, alone, again = [], [[] for _ in ops], [[] for _ in ops]
        for _ in range(rounds):
            steps += [trainee.step() for _ in range(burst)]
            for op, first, second in zip(ops, alone, again):
                for times in (first, second):
                    if op.restore is not None:
                        op.restore()
                    start = time.perf_counter()
                    op.fn()
                    times.append(time.perf_counter() - start)
    medians = lambda runs: [max(statistics.median(ts) - floor, 0.0) for ts in runs]  # noqa: E731
    return [max(t - floor, 0.0) for t in steps], medians(alone), medians(again)


def rate(op, seconds, ref):
    """The op's rate and its share of the bound that applies to it."""
    if seconds <= 0:
        return "-", "-"
    if op.kind == "gemm":
        r = op.flops / seconds
        return f"{r / 1e9:.1f} GFLOP/s", f"{r / ref['gemm']:.0%} of GEMM"
    r = op.moved / seconds  # small arrays stay in cache: beyond 100% of DRAM is possible
    return f"{r / 1e9:.1f} GB/s", f"{r / ref['dram']:.0%} DRAM, {r / ref['cache']:.0%} cache"


KINDS = ("gemm", "elementwise", "copy")
KIND_NAMES = {"gemm": "GEMMs", "elementwise": "elementwise passes", "copy": "copies",
              "python": "Python"}


def shares(whole, ops, times):
    """Each kind's share of the whole step; what the parts leave is Python."""
    by_kind = {k: sum(t for op, t in zip(ops, times) if op.kind == k) / whole for k in KINDS}
    by_kind["python"] = 1 - sum(times) / whole
    return by_kind


def bound_by(share):
    """The kind with the largest share, and any within 5 points of it: a
    near tie is not a verdict on a machine whose speed wanders."""
    ranked = sorted(share, key=share.get, reverse=True)
    close = [k for k in ranked[1:] if share[ranked[0]] - share[k] < 0.05]
    return " ~ ".join(KIND_NAMES[k] for k in [ranked[0]] + close)


def summary(whole, steps, ops, alone, again, ref):
    """The paragraph above a network's table."""
    low, _, high = statistics.quantiles(steps, n=4)
    share = shares(whole, ops, alone)
    calls = sum(op.calls for op in ops)
    gemm_flops = sum(op.flops for op in ops if op.kind == "gemm")
    gemm_rate_now = gemm_flops / max(sum(t for op, t in zip(ops, alone) if op.kind == "gemm"),
                                     1e-12)
    us = lambda t: f"{t * 1e6:,.1f} us"  # noqa: E731
    return (f"Whole step {us(whole)} (median of {len(steps)}; quartiles {us(low)}-{us(high)}). "
            f"Sum of the parts: {us(sum(alone))} replayed alone, {us(sum(again))} replayed "
            f"again at once (inputs in cache); so the Python between calls is "
            f"{us(whole - sum(alone))} to {us(whole - sum(again))} "
            f"({share['python']:.0%} to {shares(whole, ops, again)['python']:.0%}). "
            f"{calls} NumPy calls, at {us(ref['call'])} each at least: {us(calls * ref['call'])} "
            f"({calls * ref['call'] / whole:.0%}) of the step is per-call cost. "
            f"GEMMs: {gemm_flops / 1e6:.2f} MFLOP at {gemm_rate_now / 1e9:.1f} GFLOP/s "
            f"({gemm_rate_now / ref['gemm']:.0%} of the large GEMM). "
            f"Bound by: **{bound_by(share)}** (the largest shares of the step, alone).")


def report(name, spec, steps, ops, alone, again, ref):
    """The network's markdown section, and its row of the summary table;
    shares and rates from the ops timed alone."""
    whole = statistics.median(steps)
    model = "784,30,10 sigmoid (chapter 1)" if spec.model is None else spec.model["layers"]
    lines = [f"### {name}: {model}, m = {spec.m}", "",
             summary(whole, steps, ops, alone, again, ref), "",
             "| # | operation | kind | us alone | us again | share | MFLOP | KB moved | rate | "
             "of bound |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, (op, t, t2) in enumerate(zip(ops, alone, again), 1):
        r, of = rate(op, t, ref)
        calls_note = f" ({op.calls} calls)" if op.calls > 1 else ""
        lines.append(f"| {i} | {op.name}{calls_note} | {op.kind} | {t * 1e6:,.1f} | "
                     f"{t2 * 1e6:,.1f} | {t / whole:.1%} | {op.flops / 1e6:.3f} | "
                     f"{op.moved / 1e3:,.1f} | {r} | {of} |")
    first, second = shares(whole, ops, alone), shares(whole, ops, again)
    row = (f"| {name} | {spec.m} | {whole * 1e6:,.0f} | {sum(alone) * 1e6:,.0f} / "
           f"{sum(again) * 1e6:,.0f} | "
           + " | ".join(f"{first[k]:.0%} / {second[k]:.0%}" for k in (*KINDS, "python"))
           + f" | {bound_by(first)} |")
    return lines, row


def profile(name, spec, training_set, rounds, burst, ref):
    data = load_rows(spec, training_set)
    timed_run, replayed = Trainee(spec, data), Trainee(spec, data)
    idx = np.asarray(replayed.net.rng.permutation(replayed.n)[:spec.m])
    ops = (plain_ops if replayed.net.dense_spec() is None else fast_ops)(replayed, idx)
    steps, alone, again = measure(timed_run, ops, rounds, burst, ref["timer"])
    return report(name, spec, steps, ops, alone, again, ref)


def main(argv):
    quick = "--quick" in argv
    picked = [argv[i + 1] for i, a in enumerate(argv) if a == "--net"]
    names = [n for n in NETS if not picked or any(n.startswith(p) for p in picked)]
    if not names:
        sys.exit(f"no network starts with {picked}: choose from {', '.join(NETS)}")
    training_set, _, _ = dn.load_dataset("mnist", os.environ.get("DIGITNET_DATA"),
                                         download_missing=False, progress=False)
    ref, header = machine(quick)
    print("## One training step, operation by operation (`benchmarks/profile_step.py`)\n")
    print("\n".join(header) + "\n", flush=True)
    rows = []
    for name in names:
        spec = NETS[name]
        conv = NETS[name].model is not None and "conv" in NETS[name].model["layers"]
        rounds = 3 if quick else (150 if conv else 1000)
        lines, row = profile(name, spec, training_set, rounds, 2 if quick else 4, ref)
        print("\n".join(lines) + "\n", flush=True)
        rows.append(row)
    print("### Summary: shares of the whole step, parts alone / again\n")
    print("| network | m | step us | parts us | GEMMs | elementwise | copies | Python | "
          "bound by |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\nAlone: each part replayed after the others, its inputs untouched since the last "
          "round; again: at once, its inputs in cache. The step reads some of its inputs "
          "fresh and some not, so its parts cost between the two, and the Python between "
          "its calls lies between the two shares.")

if __name__ == "__main__":
    main(sys.argv[1:])
