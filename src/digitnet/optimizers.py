"""The optimizers: how a step's gradient becomes new parameters, each
owning the state it keeps between steps (tinygrad's and PyTorch's shape:
the run holds an optimizer, the optimizer holds its buffers).

`SGD` is the book's, with chapter 3's L2 and momentum: over n training
examples and a mini-batch of m, with k = eta/m and decay = eta lmbda / n,

    v -> mu v - k nabla_w - decay w,      w -> w + v,

which is the book's weight decay w -> (1 - decay) w - k nabla_w when
mu = 0; with `nesterov`, Sutskever's form of Nesterov's momentum (the
update of PyTorch's SGD(nesterov=True)).  Biases are not decayed.

`Adam` is Kingma and Ba's, with AdamW's decoupled weight decay (Loshchilov
and Hutter): w -> (1 - decay) w with decay = eta (lmbda / n) (PyTorch's
weight_decay = lmbda / n, lr = eta), then the moments of the mean gradient
g = nabla / m and the bias-corrected step, in the order of operations that
PyTorch's single-tensor AdamW (torch/optim/adam.py) writes; its vectorized
CPU kernels fuse some multiply-adds, so a float64 step agrees with
PyTorch's to within an ulp or two.  Biases are not decayed here either.

Both are written once against `xp`, for every array namespace (the plain
and per-example engines); the fast path (batched.py) runs each as a fused
chain (kernels.py: a NumPy chain, one CuPy kernel) on the same buffers,
made views of its [w | b] blocks (`blocks`).  `state_dict()` gives
the buffers as host arrays, by name, and `scalars()` the JSON numbers
(Adam's step count), which checkpoints keep.
"""

from . import backend, params


class Optimizer:
    """What the trainer, snapshots and checkpoints use of an optimizer."""

    kind = None
    BUFFERS = ()      # the names of its lists of arrays, one array per layer each

    def __init__(self, net, config):
        self.net, self.config = net, config
        self.lists = {name: None for name in self.BUFFERS}
        self.held = {}  # blocks() calls' blocks, by pair of names

    def blocks(self, pair, key, make):
        """The buffers `pair` (the names of a (w, b) pair of lists) as [w | b]
        blocks whose parts the lists now hold (params.blocks)."""
        w, b = pair
        self.held[pair] = params.blocks(self.lists[w], self.lists[b], self.held.get(pair),
                                        key, make)
        return self.held[pair][1]

    def zeros(self, params):
        return [self.net.xp.zeros_like(p) for p in params]

    def buffers(self):
        """Every array it keeps, in a fixed order (snapshots copy these)."""
        return [a for name in self.BUFFERS for a in self.lists[name] or ()]

    def scalars(self):
        """Its JSON-ready numbers."""
        return {}

    def set_buffers(self, arrays, scalars=None):
        """Put back what buffers() and scalars() gave (a snapshot's copies)."""
        arrays = list(arrays)
        for name in self.BUFFERS:
            if self.lists[name] is not None:
                k = len(self.lists[name])
                self.lists[name], arrays = arrays[:k], arrays[k:]
        self.load_scalars(scalars or {})

    def load_scalars(self, scalars):
        pass

    def state_dict(self):
        """{NAME_i: host array} of every buffer it keeps (velocity_w_0, ...)."""
        return {f"{name}_{i}": backend.to_numpy(a) for name in self.BUFFERS
                for i, a in enumerate(self.lists[name] or ())}

    def load_state_dict(self, arrays, scalars):
        """From a state_dict() (its arrays checked for shape by the caller)
        and the scalars()."""
        for name in self.BUFFERS:
            if self.lists[name] is not None:
                self.lists[name] = [self.net.asarray(arrays[f"{name}_{i}"])
                                    for i in range(len(self.lists[name]))]
        self.load_scalars(scalars)


class SGD(Optimizer):
    kind = "sgd"
    BUFFERS = ("velocity_w", "velocity_b")

    def decay(self, eta, n):
        """The weights' L2 factor at rate eta over n examples."""
        return eta * self.config.lmbda / n

    def __init__(self, net, config):
        super().__init__(net, config)
        if config.momentum:
            self.lists = {"velocity_w": self.zeros(net.weights),
                          "velocity_b": self.zeros(net.biases)}

    @property
    def velocities(self):
        """The momentum buffers as (v_w, v_b) pairs, one per layer, or None."""
        vw, vb = self.lists["velocity_w"], self.lists["velocity_b"]
        return None if vw is None else list(zip(vw, vb))

    def step(self, nabla_w, nabla_b, eta, m, n):
        """The update above, in place, for summed gradients over m examples.

        k and decay stay Python floats, so a float32 network stays float32.
        """
        net, c = self.net, self.config
        k, decay, mu = eta / m, self.decay(eta, n), c.momentum
        if mu:
            for w, b, nw, nb, vw, vb in zip(net.weights, net.biases, nabla_w, nabla_b,
                                            self.lists["velocity_w"], self.lists["velocity_b"]):
                if c.nesterov:  # g the step's gradient part; w moves by mu v - g
                    g = k * nw
                    if decay:
                        g += decay * w
                    vw *= mu
                    vw -= g
                    w += mu * vw
                    w -= g
                    g = k * nb
                    vb *= mu
                    vb -= g
                    b += mu * vb
                    b -= g
                    continue
                # one temporary at a time: at fc:300 each pass is ~1 MB
                vw *= mu
                vw -= k * nw
                if decay:
                    vw -= decay * w
                vb *= mu
                vb -= k * nb
                w += vw
                b += vb
            return
        for w, b, nw, nb in zip(net.weights, net.biases, nabla_w, nabla_b):
            if decay:
                w *= 1.0 - decay
            w -= k * nw
            b -= k * nb


class Adam(Optimizer):
    kind = "adam"
    BUFFERS = ("adam_m_w", "adam_m_b", "adam_v_w", "adam_v_b")
    EPS = 1e-8   # PyTorch's default

    def __init__(self, net, config):
        super().__init__(net, config)
        self.lists = {"adam_m_w": self.zeros(net.weights), "adam_m_b": self.zeros(net.biases),
                      "adam_v_w": self.zeros(net.weights), "adam_v_b": self.zeros(net.biases)}
        self.t = 0   # steps taken: the bias corrections' exponent

    def scalars(self):
        return {"adam_steps": self.t}

    def load_scalars(self, scalars):
        self.t = int(scalars.get("adam_steps", self.t))

    def decay(self, eta, n):
        """The decoupled decay factor: lr * weight_decay, rounded as PyTorch rounds it."""
        return eta * (self.config.lmbda / n)

    def advance(self, eta):
        """Count a step; its (-step size, sqrt of the second bias correction)."""
        self.t += 1
        c = self.config
        return -(eta / (1 - c.beta1 ** self.t)), (1 - c.beta2 ** self.t) ** 0.5

    def step(self, nabla_w, nabla_b, eta, m, n):
        """One AdamW step, in place, for summed gradients over m examples."""
        xp, c, L = self.net.xp, self.config, self.lists
        decay = self.decay(eta, n)
        b1, b2 = c.beta1, c.beta2
        neg_step, correction2 = self.advance(eta)
        for i, w in enumerate(self.net.weights):
            if decay:
                w *= 1.0 - decay
            for p, nabla, mo, ve in ((w, nabla_w[i], L["adam_m_w"][i], L["adam_v_w"][i]),
                                     (self.net.biases[i], nabla_b[i], L["adam_m_b"][i],
                                      L["adam_v_b"][i])):
                g = nabla / m
                weight = 1 - b1                      # lerp(m, g, weight), both of its forms
                if weight < 0.5:
                    mo += weight * (g - mo)
                else:
                    mo[...] = g - (g - mo) * (1 - weight)
                ve *= b2
                ve += (1 - b2) * g * g              # addcmul(v, g, g, value=1 - beta2)
                denom = xp.sqrt(ve) / correction2 + self.EPS
                p += neg_step * mo / denom          # addcdiv(p, m, denom, value=-step_size)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def for_run(net, config):
    """The optimizer a TrainConfig names, with fresh state for `net`."""
    return OPTIMIZERS[config.optimizer](net, config)
