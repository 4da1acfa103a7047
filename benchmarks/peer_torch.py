"""The same work in PyTorch: the peer row of the benchmarks.

Same network (sigmoid layers), cost (quadratic, summed over the mini-batch
and divided by m, so the step is w -= eta/m sum nabla_w), initialization
N(0, 1), m and eta; plain SGD.  Data lives on the device as tensors and each
mini-batch is gathered by index, as digitnet does.
"""

import numpy as np


def make_epoch(torch, sizes, rows, labels, mini_batch_size, eta, dtype, device, seed=0):
    """A function that runs one SGD epoch and waits for the device."""
    tdtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        lin = torch.nn.Linear(n_in, n_out, dtype=tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(n_out, n_in, generator=gen, dtype=tdtype))
            lin.bias.copy_(torch.randn(n_out, generator=gen, dtype=tdtype))
        layers += [lin, torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    x_all = torch.as_tensor(np.ascontiguousarray(rows), dtype=tdtype, device=device)
    y_all = torch.eye(sizes[-1], dtype=tdtype, device=device)[torch.as_tensor(labels, device=device)]
    n = x_all.shape[0]
    rng = np.random.default_rng(seed)

    def epoch():
        order = torch.as_tensor(rng.permutation(n), device=device)
        for k in range(0, n, mini_batch_size):
            idx = order[k:k + mini_batch_size]
            x, y = x_all[idx], y_all[idx]
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * ((model(x) - y) ** 2).sum() / x.shape[0]
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return epoch


def make_model_epoch(torch, spec, rows, labels, mini_batch_size, eta, lmbda=0.0, momentum=0.0,
                     dropout=0.0, n=None, seed=0, device="cpu", nesterov=False,
                     label_smoothing=0.0, rate=None):
    """One epoch of the README recipes' networks (model.py) in PyTorch, as a
    user would write it: ReLU, N(0, 1/n_in) weights and zero biases, a softmax
    output with the mean log-likelihood (CrossEntropyLoss), SGD with momentum
    and weight decay on the weights only (digitnet's L2: decay eta*lmbda/n per
    step is lr * weight_decay with weight_decay = lmbda/n), and dropout on the
    inputs of every fully connected layer fed by a hidden layer.  Pooling
    comes before the ReLU, as digitnet does it (the same function, cheaper).
    `n` is the training set size of the L2 term (default: the rows given).
    Issue 20's levers: `nesterov` (SGD's own), `label_smoothing`
    (CrossEntropyLoss's own), and `rate(step)`, the learning rate of each
    mini-batch counted from the start of the run (a schedule), set in the
    optimizer's groups before each step.
    """
    torch.manual_seed(seed)
    shape, layers, hidden = (1, 28, 28), [], False
    items = [item.split(":") if ":" in item else (item, "0") for item in spec.split(",")]
    for i, (kind, arg) in enumerate(items):
        arg, _, pad = arg.partition("p")  # conv:FxKxKpP: zero padding P
        nums, pad = [int(v) for v in arg.split("x")], int(pad or 0)
        last = i == len(items) - 1
        after = items[i + 1][0] if not last else None  # a bn or a pool applies the ReLU
        if kind == "bn":  # batch normalization, PyTorch's defaults (momentum 0.1)
            layers.append(torch.nn.BatchNorm2d(shape[0]) if len(shape) == 3
                          else torch.nn.BatchNorm1d(shape[0]))
            if after != "pool":
                layers.append(torch.nn.ReLU())
            continue
        if kind == "conv":
            layer = torch.nn.Conv2d(shape[0], nums[0], nums[1], padding=pad)
            shape = (nums[0], shape[1] + 2 * pad - nums[1] + 1, shape[2] + 2 * pad - nums[1] + 1)
            layers.append(layer)
            if after not in ("pool", "bn"):
                layers.append(torch.nn.ReLU())
        elif kind == "pool":
            layers += [torch.nn.MaxPool2d(nums[0]), torch.nn.ReLU()]
            shape = (shape[0], shape[1] // nums[0], shape[2] // nums[0])
        else:
            if len(shape) == 3:
                layers.append(torch.nn.Flatten())
                shape = (shape[0] * shape[1] * shape[2],)
            if dropout and hidden:
                layers.append(torch.nn.Dropout(dropout))
            layer = torch.nn.Linear(shape[0], nums[0])
            shape = (nums[0],)
            layers.append(layer)
            if not last and after != "bn":
                layers.append(torch.nn.ReLU())
        if kind != "pool":
            hidden = True
            with torch.no_grad():
                fan_in = layer.weight[0].numel()
                layer.weight.normal_(0.0, fan_in ** -0.5)
                layer.bias.zero_()
    model = torch.nn.Sequential(*layers).to(device)
    model.train()
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    n_total = n or rows.shape[0]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": lmbda / n_total},
                           {"params": biases, "weight_decay": 0.0}],
                          lr=eta, momentum=momentum, nesterov=nesterov)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    # uint8 pixels kept as bytes and scaled per mini-batch, as digitnet does
    x_all = torch.as_tensor(np.ascontiguousarray(rows), device=device)
    raw_bytes = x_all.dtype == torch.uint8
    y_all = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    images = len(shape) == 3 or spec.startswith("conv")
    rng = np.random.default_rng(seed)
    steps = [0]

    def epoch():
        order = torch.as_tensor(rng.permutation(x_all.shape[0]), device=device)
        for k in range(0, x_all.shape[0], mini_batch_size):
            if rate is not None:
                for group in opt.param_groups:
                    group["lr"] = rate(steps[0])
            steps[0] += 1
            idx = order[k:k + mini_batch_size]
            x = x_all[idx].float() / 255.0 if raw_bytes else x_all[idx]
            if images:
                x = x.view(-1, 1, 28, 28)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y_all[idx])
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    epoch.model, epoch.optimizer = model, opt
    return epoch


def accuracy(torch, model, data, conv, chunk=1000):
    """Fraction of `data` (a digitnet Dataset) the model classifies right."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for k in range(0, len(data), chunk):
            part = data[k:k + chunk]
            x = torch.as_tensor(np.ascontiguousarray(part.images.T))
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            out = model(x.view(-1, 1, 28, 28) if conv else x)
            correct += int((out.argmax(1) == torch.as_tensor(part.labels)).sum())
    model.train()
    return correct / len(data)
