"""Operators: shapes, MACs and parameters against hand-computed cases and brute force."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.errors import ShapeError
from hwprune.workload.ops import (
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Flatten,
    GlobalPool,
    Linear,
    Pool2d,
)


def test_conv_hand_computed():
    # AlexNet conv1: 96 filters 11x11 stride 4 on 3x227x227 -> 96x55x55.
    conv = Conv2d(96, 11, stride=4)
    out = conv.output_shape([(3, 227, 227)])
    assert out == (96, 55, 55)
    assert conv.weight_shape([(3, 227, 227)]) == (96, 3, 11, 11)
    assert conv.params([(3, 227, 227)]) == 96 * 3 * 121 + 96
    assert conv.macs([(3, 227, 227)], out) == 55 * 55 * 96 * 3 * 121


def test_grouped_and_depthwise_conv():
    grouped = Conv2d(256, 5, padding=2, groups=2)
    out = grouped.output_shape([(96, 27, 27)])
    assert out == (256, 27, 27)
    assert grouped.weight_shape([(96, 27, 27)]) == (256, 48, 5, 5)
    assert grouped.macs([(96, 27, 27)], out) == 256 * 27 * 27 * 48 * 25
    dw = Conv2d(32, 3, padding=1, groups=32, bias=False)
    out = dw.output_shape([(32, 112, 112)])
    assert dw.params([(32, 112, 112)]) == 32 * 9
    assert dw.macs([(32, 112, 112)], out) == 32 * 112 * 112 * 9


def test_linear_flattens_its_input():
    fc = Linear(4096)
    assert fc.output_shape([(256, 6, 6)]) == (4096,)
    assert fc.weight_shape([(256, 6, 6)]) == (4096, 9216)
    assert fc.params([(256, 6, 6)]) == 4096 * 9216 + 4096
    assert Linear(10, bias=False).params([(100,)]) == 1000


def test_pool_ceil_mode_matches_caffe():
    # GoogLeNet (Caffe): 112 -> 3x3/2 max pool in ceil mode -> 56 (floor would give 55).
    assert Pool2d("max", 3, 2, ceil_mode=True).output_shape([(64, 112, 112)]) == (64, 56, 56)
    assert Pool2d("max", 3, 2).output_shape([(64, 112, 112)]) == (64, 55, 55)
    # PyTorch rule: the last window must start inside the input or its left padding.
    assert Pool2d("max", 2, 2, padding=1, ceil_mode=True).output_shape([(1, 4, 4)]) == (1, 3, 3)


def test_weightless_ops():
    assert GlobalPool().output_shape([(1024, 7, 7)]) == (1024, 1, 1)
    assert BatchNorm().params([(64, 56, 56)]) == 128
    assert Add().output_shape([(64, 8, 8), (64, 8, 8)]) == (64, 8, 8)
    assert Concat().output_shape([(64, 28, 28), (128, 28, 28), (32, 28, 28)]) == (224, 28, 28)
    assert Flatten().output_shape([(256, 6, 6)]) == (9216,)
    for op, shapes in [(Add(), [(4, 2, 2)] * 2), (Concat(), [(4, 2, 2)] * 2), (Flatten(), [(4, 2, 2)])]:
        out = op.output_shape(shapes)
        assert op.params(shapes) == 0 and op.macs(shapes, out) == 0 and op.weight_shape(shapes) is None


@pytest.mark.parametrize(
    "make, shapes, message",
    [
        (lambda: Conv2d(8, 7), [(3, 5, 5)], "larger than the padded input"),
        (lambda: Conv2d(8, 3, groups=3), [(4, 8, 8)], "not divisible by groups"),
        (lambda: Conv2d(6, 3, groups=4), [(4, 8, 8)], "not divisible by groups"),
        (lambda: Conv2d(8, 3), [(64,)], "(C, H, W) feature map"),
        (lambda: Add(), [(4, 2, 2), (5, 2, 2)], "one shape"),
        (lambda: Concat(), [(4, 2, 2), (4, 3, 3)], "one spatial size"),
        (lambda: Pool2d("median", 2, 2), [(1, 4, 4)], "'max' or 'avg'"),
        (lambda: Conv2d(0, 3), [(1, 4, 4)], ">= 1"),
    ],
)
def test_bad_shapes_are_clear_errors(make, shapes, message):
    with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make().output_shape(shapes)


def _windows(size: int, kernel: int, stride: int, pad: int) -> int:
    """Brute force: count window start positions fully inside the padded input."""
    return sum(1 for start in range(-pad, size + pad) if start + kernel <= size + pad
               and (start + pad) % stride == 0)


@settings(max_examples=200, deadline=None)
@given(
    c=st.integers(1, 8), h=st.integers(1, 20), w=st.integers(1, 20), m=st.integers(1, 8),
    k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), g=st.sampled_from([1, 2]),
)
def test_conv_counts_match_brute_force(c, h, w, m, k, s, p, g):
    c, m = c * g, m * g
    conv = Conv2d(m, k, stride=s, padding=p, groups=g)
    if k > h + 2 * p or k > w + 2 * p:
        with pytest.raises(ShapeError):
            conv.output_shape([(c, h, w)])
        return
    out = conv.output_shape([(c, h, w)])
    assert out == (m, _windows(h, k, s, p), _windows(w, k, s, p))
    # One MAC per (output element, input channel of its group, kernel tap).
    brute = sum(1 for _ in range(out[1] * out[2])) * m * (c // g) * k * k
    assert conv.macs([(c, h, w)], out) == brute
    assert conv.params([(c, h, w)]) == math.prod(conv.weight_shape([(c, h, w)])) + m


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 2))
def test_pool_ceil_mode_matches_pytorch_formula(size, k, s, p):
    if p > k // 2 or k > size + 2 * p:
        return  # PyTorch rejects pad > kernel/2; larger windows are a ShapeError here
    out = Pool2d("max", k, s, p, ceil_mode=True).output_shape([(1, size, size)])[1]
    # torch.nn.functional pooling_output_shape, written out.
    ref = -(-(size + 2 * p - k) // s) + 1
    if (ref - 1) * s >= size + p:
        ref -= 1
    assert out == ref
    floor = Pool2d("max", k, s, p).output_shape([(1, size, size)])[1]
    assert floor == (size + 2 * p - k) // s + 1 == _windows(size, k, s, p)
