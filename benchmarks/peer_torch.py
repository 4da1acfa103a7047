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
