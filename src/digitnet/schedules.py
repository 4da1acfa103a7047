"""Learning-rate schedules that change eta at every mini-batch.

The book's schedule (training.schedule) halves a constant eta when
validation accuracy stalls.  These instead fix eta for every step of a
run in advance, from where the step lies in the run's steps: a short
warm-up, while the weights are random and large steps would throw them
about, then a fall to zero, so the last epochs take small steps and
settle (Smith's one-cycle; Loshchilov and Hutter's cosine).  Since eta is
a function of the step alone, a resumed run takes the same steps.

A run resumed over a different number of epochs (a finished run given
more, or one stopped and given a new total) has no plan for its new steps:
it goes on from the rate it reached, along the rest of its fall (a line,
or the rest of the half cosine) stretched over the steps now left, to 0
just after its new last step, as the planned fall would have reached 0
just after its last.  So the rate never jumps: a finished run, whose rate
had fallen to nearly 0, takes its new epochs at still smaller rates and
settles further; to train longer at a real rate, start a new run with the
larger total.  A run whose new plan still has it warming up follows that
plan.
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


def fall_position(schedule, f):
    """Where in the fall (0 at its top, 1 at its end) the rate is f of the peak."""
    if schedule == "one-cycle":
        return 1 - f
    return math.acos(min(max(2 * f - 1, -1.0), 1.0)) / math.pi


def for_pass(config, epoch, epochs, n, reached=None):
    """eta for the i-th mini-batch of the pass after `epoch` finished ones,
    in a run of `epochs` over n examples; None for the constant schedule.
    `reached` is the rate of the run's last step: when it is not the plan's,
    the run was planned over another total, and goes on from it (above)."""
    if config.schedule == "constant":
        return None
    per_pass = -(-n // config.mini_batch_size)
    total, first = epochs * per_pass, epoch * per_pass

    def eta(i):
        return config.eta * fraction(config.schedule, config.warmup, first + i, total)
    if not epoch or reached is None or first < config.warmup * total or \
            first >= total or eta(-1) == reached:
        return eta
    start = fall_position(config.schedule, reached / config.eta)
    stride = (1 - start) / (total - first + 1)  # the step after the last ends the fall

    def stretched(i):
        p = start + (i + 1) * stride
        return config.eta * fraction(config.schedule, 0.0, p, 1.0)
    return stretched
