import itertools

import numpy as np

import pytest

from digitnet.perceptron import adder, cheese_festival, nand, sigmoid_neuron


def test_nand_truth_table():
    assert [nand(a, b) for a, b in itertools.product((0, 1), repeat=2)] == [1, 1, 1, 0]


def test_adder_of_nands_adds():
    for a, b in itertools.product((0, 1), repeat=2):
        s, carry = adder(a, b)
        assert 2 * carry + s == a + b


def test_sigmoid_network_tends_to_the_perceptrons():
    errors = []
    for scale in (1, 5, 25):
        worst = 0.0
        for a, b in itertools.product((0, 1), repeat=2):
            s, carry = adder(a, b, sigmoid_neuron, scale=scale)
            want_s, want_c = adder(a, b)
            worst = max(worst, abs(s - want_s), abs(carry - want_c))
        errors.append(worst)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6


def test_cheese_festival():
    # Threshold 5: the weather alone decides.
    assert cheese_festival(1, 0, 0) == 1 and cheese_festival(0, 1, 1) == 0
    # Threshold 3: good weather, or both partner and transit.
    assert cheese_festival(0, 1, 1, threshold=3) == 1
    assert cheese_festival(0, 1, 0, threshold=3) == 0


@pytest.mark.parametrize("z, limit", [(-1000.0, 0.0), (1000.0, 1.0)])
def test_sigmoid_neuron_never_overflows(z, limit):
    with np.errstate(over="raise"):
        assert sigmoid_neuron((1,), (z,), 0.0) == limit
