"""Learning-rate schedules that change eta at every mini-batch.

The book's schedule (training.schedule) halves a constant eta when
validation accuracy stalls.  These instead fix eta for every step of a
run in advance, from where the step lies in the run's steps: a short
warm-up, while the weights are random and large steps would throw them
about, then a fall to zero, so the last epochs take small steps and
settle (Smith's one-cycle; Loshchilov and Hutter's cosine).  Since eta is
a function of the step alone, a resumed run takes the same steps.
"""

import math

START = 1 / 25  # the warm-up's first eta, as a fraction of the peak (one-cycle's usual)


def fraction(schedule, warmup, step, total):
    """eta at the 0-based `step` of `total`, as a fraction of the peak eta."""
    rise = warmup * total
    if step < rise:
        return START + (1 - START) * step / rise
    p = (step - rise) / (total - rise)
    if schedule == "one-cycle":
        return 1 - p
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * p))
    return 1.0


def for_pass(config, epoch, epochs, n):
    """eta for the i-th mini-batch of the pass after `epoch` finished ones,
    in a run of `epochs` over n examples; None for the constant schedule."""
    if config.schedule == "constant":
        return None
    per_pass = -(-n // config.mini_batch_size)
    total, first = epochs * per_pass, epoch * per_pass

    def eta(i):
        return config.eta * fraction(config.schedule, config.warmup, first + i, total)
    return eta
