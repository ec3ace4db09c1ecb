"""Bad and odd inputs to the model importers (issue 18), one table row each.

Every ONNX case is built with ``onnx.helper``, saved to ``tmp_path`` and run as
``hwprune show PATH``: either exit 2 with one line ``hwprune: error: ...`` containing a
phrase, or exit 0 with the expected shapes and MACs (checked against ONNX's own shape
inference too). The ``from_torch`` cases check the Python API's ``InputError``.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper, shape_inference  # noqa: E402

from hwprune.cli import main  # noqa: E402
from hwprune.errors import InputError, ShapeError  # noqa: E402
from hwprune.workload.onnx_import import load_onnx  # noqa: E402

RNG = np.random.default_rng(0)


def W(name, *shape, dtype=np.float32):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(dtype), name)


def N(op, ins, outs, name=None, **attrs):
    return helper.make_node(op, ins, outs, name=name or outs[0], **attrs)


def model(nodes, inits, in_shape=(1, 3, 4, 4), out="y"):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def conv(extra_inits=(), in_shape=(1, 3, 4, 4), w=(8, 3, 2, 2), **attrs):
    """One Conv reading x with weight w, then a Flatten and a Gemm (so there is a fc too)."""
    return model([N("Conv", ["x", "w"], ["c"], "conv", **attrs)], [W("w", *w), *extra_inits],
                 in_shape, out="c")


def gemm(w_shape, in_shape=(1, 144), bias=None, **attrs):
    inits = [W("w", *w_shape)] + ([W("b", *bias)] if bias is not None else [])
    return model([N("Gemm", ["x", "w"] + (["b"] if bias is not None else []), ["y"], "fc", **attrs)],
                 inits, in_shape)


def matmul(w_shape, in_shape=(1, 144)):
    return model([N("MatMul", ["x", "w"], ["y"], "mm")], [W("w", *w_shape)], in_shape)


def conv_pool(pool_op="MaxPool", **attrs):
    return model([N("Conv", ["x", "w"], ["c"], "conv"), N(pool_op, ["c"], ["y"], "pool", **attrs)],
                 [W("w", 4, 3, 1, 1)], (1, 3, 7, 7))


def _raw(name, dims, raw, data_type=TensorProto.FLOAT):
    t = TensorProto()
    t.name, t.data_type, t.raw_data = name, data_type, raw
    t.dims.extend(dims)
    return t


def corrupt_raw_data():
    t = _raw("w", [8, 3, 2, 2], b"\x00" * 10)
    return model([N("Conv", ["x", "w"], ["y"], "conv")], [t])


def string_weight():
    t = helper.make_tensor("w", TensorProto.STRING, [2], [b"a", b"b"])
    return model([N("Conv", ["x", "w"], ["y"], "conv")], [t])


def huge_weight_dims(dims=(2**20, 2**12, 1, 1)):
    t = _raw("w", list(dims), b"")
    return model([N("Conv", ["x", "w"], ["y"], "conv")], [t])


def bn(shapes, eps=1e-5):
    inits = [W(n, *s) for n, s in zip(("g", "b", "m", "v"), shapes)]
    inits[3] = numpy_helper.from_array(np.abs(numpy_helper.to_array(inits[3])) + 0.1, "v")
    return model([N("Conv", ["x", "w"], ["c"], "conv"),
                  N("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], "bn", epsilon=eps)],
                 [W("w", 4, 3, 1, 1), *inits])


# (id, model factory, phrase in the one error line)
ERRORS = [
    # item 2: initialisers checked against the node's shapes
    ("gemm-weight-mismatch", lambda: gemm((10, 17), transB=1),
     "node 'fc' (Gemm): 'w' has shape (10, 17), expected (N, 144) with transB=1"),
    ("gemm-weight-not-transposed", lambda: gemm((10, 144)),
     "'w' has shape (10, 144), expected (144, N) with transB=0"),
    ("gemm-bias-length", lambda: gemm((10, 144), bias=(7,), transB=1),
     "node 'fc' (Gemm): 'b' has shape (7,), expected (10,)"),
    ("gemm-transA", lambda: gemm((144, 10), transA=1), "transA=1"),
    ("gemm-3d-weight", lambda: gemm((2, 144, 10)), "'w' has shape (2, 144, 10), expected a 2-D"),
    ("gemm-on-a-feature-map", lambda: model([N("Gemm", ["x", "w"], ["y"], "fc")], [W("w", 48, 10)]),
     "node 'fc' (Gemm): input 'x' has shape (batch, 3, 4, 4); accepted: (batch, features)"),
    ("matmul-mismatch", lambda: matmul((100, 10)), "node 'mm' (MatMul): 'w' has shape (100, 10), "
                                                   "expected (144, N)"),
    ("matmul-1d-weight", lambda: matmul((144,)), "'w' has shape (144,), expected a 2-D weight"),
    ("matmul-3d-weight", lambda: matmul((2, 144, 10)), "'w' has shape (2, 144, 10)"),
    ("conv-weight-channels", lambda: conv(w=(8, 5, 2, 2)),
     "node 'conv' (Conv): 'w' has shape (8, 5, 2, 2), expected (8, 3, kH, kW) for input channels 3"),
    ("conv-grouped-weight-channels", lambda: conv(w=(8, 3, 2, 2), group=3),
     "group 3 must be >= 1 and divide the output channels 8"),
    ("conv-bias-length", lambda: model([N("Conv", ["x", "w", "b"], ["y"], "conv")],
                                       [W("w", 8, 3, 2, 2), W("b", 5)]),
     "node 'conv' (Conv): 'b' has shape (5,), expected (8,)"),
    ("conv-2d-weight", lambda: conv(w=(8, 3)), "'w' has shape (8, 3), expected (M, C/group, kH, kW)"),
    ("conv-kernel-shape-disagrees", lambda: conv(kernel_shape=[3, 3]),
     "kernel_shape [3, 3] does not match the weight 'w'"),
    ("conv-pads-and-auto-pad", lambda: conv(auto_pad="SAME_UPPER", pads=[1, 1, 1, 1]),
     "given together with auto_pad SAME_UPPER"),
    ("conv-bad-auto-pad", lambda: conv(auto_pad="SOMETIMES"), "auto_pad 'SOMETIMES' is not one of"),
    ("conv-negative-pads", lambda: conv(pads=[-1, 0, 0, 0]), "attribute pads must be 4 ints >= 0"),
    ("conv-stride-0", lambda: conv(strides=[0, 1]), "attribute strides must be 2 ints >= 1"),
    ("conv-kernel-larger-than-input", lambda: conv(w=(8, 3, 5, 5)), "window 5 is larger than"),
    ("bn-wrong-length", lambda: bn([(4,), (4,), (3,), (4,)]),
     "node 'bn' (BatchNormalization): 'm' has shape (3,), expected (4,)"),
    ("bn-2d-scale", lambda: bn([(4, 1), (4,), (4,), (4,)]), "'g' has shape (4, 1), expected (4,)"),
    ("bn-negative-variance", lambda: bn([(4,), (4,), (4,), (4,)], eps=-10.0), "variance 'v' + epsilon"),
    # item 3: malformed files never traceback
    ("maxpool-without-kernel-shape", lambda: conv_pool(), "node 'pool' (MaxPool): attribute "
                                                         "kernel_shape is required"),
    ("maxpool-kernel-0", lambda: conv_pool(kernel_shape=[0, 0]),
     "node 'pool' (MaxPool): attribute kernel_shape must be 2 ints >= 1"),
    ("maxpool-3-axes", lambda: conv_pool(kernel_shape=[2, 2, 2]), "kernel_shape must be 2 ints"),
    ("pool-pads-not-below-window", lambda: conv_pool("AveragePool", kernel_shape=[2, 2], pads=[2, 2, 2, 2]),
     "must be smaller than the window"),
    ("pool-indices-output", lambda: model([N("Conv", ["x", "w"], ["c"], "conv"),
                                           N("MaxPool", ["c"], ["y", "i"], "pool", kernel_shape=[2, 2])],
                                          [W("w", 4, 3, 1, 1)]), "Indices output is not supported"),
    ("corrupt-raw-data", corrupt_raw_data, "initializer 'w': its data cannot be read"),
    ("string-weight", string_weight, "initializer 'w': a tensor of string type cannot be a weight"),
    ("huge-weight-elements", huge_weight_dims, "elements (shape [1048576, 4096, 1, 1]) is more than"),
    ("huge-weight-dim", lambda: huge_weight_dims((2**40, 3, 1, 1)), "dimensions [1099511627776, 3, 1, "
                                                                     "1] out of range"),
    ("huge-input-dims", lambda: conv(in_shape=(1, 3, 2**40, 4)), "each dimension at most"),
    ("conv-missing-weight", lambda: model([N("Conv", ["x"], ["y"], "conv")], []),
     "node 'conv' (Conv): needs at least 2 input(s)"),
    ("conv-empty-weight-name", lambda: model([N("Conv", ["x", ""], ["y"], "conv")], []),
     "node 'conv' (Conv): its weight input is missing"),
    ("conv-weight-not-constant", lambda: model([N("Conv", ["x", "x"], ["y"], "conv")], []),
     "its weight 'x' must be a constant"),
    ("node-without-inputs", lambda: model([N("Relu", [], ["y"], "r")], []),
     "node 'r' (Relu): needs at least 1 input(s)"),
    ("node-without-outputs", lambda: model([helper.make_node("Relu", ["x"], [], name="r")], []),
     "node 'r' (Relu): has no output"),
    ("bn-parameters-missing", lambda: model([N("BatchNormalization", ["x", "g"], ["y"], "bn")],
                                            [W("g", 3)]), "needs at least 5 input(s)"),
    ("concat-on-width", lambda: model([N("Concat", ["x", "x"], ["y"], "cat", axis=3)], []),
     "only concatenation on axis 1"),
    ("reshape-not-flat", lambda: model([N("Reshape", ["x", "s"], ["y"], "rs")],
                                       [numpy_helper.from_array(np.array([1, 5, 16]), "s")]),
     "only a reshape to (batch, features)"),
    ("add-constant-wrong-shape", lambda: model(
        [N("Conv", ["x", "w"], ["c"], "conv"), N("Add", ["c", "k"], ["y"], "add")],
        [W("w", 4, 3, 1, 1), W("k", 5)]), "node 'add' (Add): 'k' has shape (5,), expected a constant"),
    ("string-attribute-as-group", lambda: conv(group="two"), "attribute group must be an int"),
]


@pytest.mark.parametrize("make, phrase", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_onnx_model_is_one_error_line_and_exit_2(tmp_path, capsys, make, phrase):
    path = tmp_path / "bad.onnx"
    onnx.save(make(), str(path))
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hwprune: error: "), err
    assert phrase in err, err


def _onnx_shapes(m):
    inferred = shape_inference.infer_shapes(m, strict_mode=True)
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)[1:]
            for v in list(inferred.graph.value_info) + list(inferred.graph.output)}


# (id, model, layer, expected output shape (batch excluded), expected MACs)
GOOD = [
    # item 1: auto_pad as ONNX defines it (a 4x4 output, not 2x2)
    ("same-upper", lambda: conv(auto_pad="SAME_UPPER"), "conv", (8, 4, 4), 8 * 16 * 3 * 4),
    ("same-lower", lambda: conv(auto_pad="SAME_LOWER"), "conv", (8, 4, 4), 8 * 16 * 3 * 4),
    ("same-upper-stride-2", lambda: conv(in_shape=(1, 3, 5, 5), w=(8, 3, 3, 3), strides=[2, 2],
                                         auto_pad="SAME_UPPER"), "conv", (8, 3, 3), 8 * 9 * 27),
    ("valid", lambda: conv(auto_pad="VALID", w=(8, 3, 3, 3)), "conv", (8, 2, 2), 8 * 4 * 27),
    ("asymmetric-pads", lambda: conv(pads=[0, 0, 1, 1]), "conv", (8, 4, 4), 8 * 16 * 12),
    ("pool-same-upper", lambda: conv_pool(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
     "pool", (4, 4, 4), 0),
    ("pool-same-lower-ceil", lambda: conv_pool("AveragePool", kernel_shape=[3, 3], strides=[2, 2],
                                               auto_pad="SAME_LOWER"), "pool", (4, 4, 4), 0),
    # ONNX's default pooling stride is 1, not the window
    ("pool-default-stride-1", lambda: conv_pool(kernel_shape=[2, 2]), "pool", (4, 6, 6), 0),
    ("gemm-transB", lambda: gemm((10, 144), bias=(10,), transB=1), "fc", (10,), 1440),
    ("gemm-bias-1xN", lambda: gemm((144, 10), bias=(1, 10)), "fc", (10,), 1440),
    ("matmul", lambda: matmul((144, 7)), "mm", (7,), 1008),
]


@pytest.mark.parametrize("make, layer, shape, macs", [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_good_onnx_model_has_onnx_shapes_and_macs(tmp_path, make, layer, shape, macs):
    m = make()
    path = tmp_path / "good.onnx"
    onnx.save(m, str(path))
    lay = {x.name: x for x in load_onnx(path).network.layers}[layer]
    assert lay.output_shape == shape
    assert lay.macs == macs
    onnx_out = {n.name: n.output[0] for n in m.graph.node}[layer]
    assert _onnx_shapes(m)[onnx_out] == shape


def test_same_upper_puts_the_odd_pixel_at_the_end_and_same_lower_at_the_start(tmp_path):
    for mode, begin, end in (("SAME_UPPER", (0, 0), (1, 1)), ("SAME_LOWER", (1, 1), (0, 0))):
        path = tmp_path / f"{mode}.onnx"
        onnx.save(conv(auto_pad=mode), str(path))
        op = load_onnx(path).network.layers[0].op
        assert op.padding == begin and (op.pad_end or op.padding) == end


def test_gemm_weight_mismatch_is_a_shape_error_not_a_wrong_count(tmp_path):
    path = tmp_path / "g.onnx"
    onnx.save(gemm((10, 17), transB=1), str(path))
    with pytest.raises(ShapeError):
        load_onnx(path)


def test_ten_thousand_identically_named_nodes_get_unique_names(tmp_path):
    # Its speed (linear: 8 s before, 0.24 s after on 10,000 nodes) is measured in
    # benchmarks/fuzz_onnx.py --dedup, not asserted here.
    n = 10_000
    nodes = [N("MatMul", ["x", "w"], ["t0"], "same")]
    nodes += [N("Add", [f"t{i}", f"t{i}"], [f"t{i + 1}"], "same") for i in range(n)]
    path = tmp_path / "same.onnx"
    onnx.save(model(nodes, [W("w", 4, 3)], (1, 4), out=f"t{n}"), str(path))
    layers = load_onnx(path).network.layers
    names = [lay.name for lay in layers]
    assert len(set(names)) == n + 1 and names[:3] == ["same", "same_2", "same_3"]


def test_a_node_named_like_a_suffix_still_gets_a_unique_name(tmp_path):
    nodes = [N("MatMul", ["x", "w"], ["a"], "fc"), N("Add", ["a", "a"], ["b"], "fc_2"),
             N("Add", ["b", "b"], ["c"], "fc"), N("Add", ["c", "c"], ["y"], "fc")]
    path = tmp_path / "n.onnx"
    onnx.save(model(nodes, [W("w", 4, 3)], (1, 4)), str(path))
    assert [lay.name for lay in load_onnx(path).network.layers] == ["fc", "fc_2", "fc_3", "fc_4"]


# -- from_torch (item 5) ----------------------------------------------------------------

torch = pytest.importorskip("torch")


def _net():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))


TORCH_ERRORS = [
    ("none", lambda: None, "example_input must be a torch.Tensor with a batch dimension, got None"),
    ("list", lambda: [1.0, 2.0], "got list"),
    ("nested-list", lambda: [torch.randn(1, 3, 8, 8)], "got list"),
    ("wrong-channels", lambda: torch.randn(1, 5, 8, 8), "cannot run Sequential on an example input "
                                                        "of shape (1, 5, 8, 8)"),
    ("no-batch", lambda: torch.tensor(1.0), "with a batch dimension, got a tensor of shape ()"),
    ("too-small", lambda: torch.randn(1, 3, 2, 2), "cannot run Sequential on an example input"),
]


@pytest.mark.parametrize("make, phrase", [c[1:] for c in TORCH_ERRORS], ids=[c[0] for c in TORCH_ERRORS])
def test_from_torch_with_a_bad_example_is_an_input_error(capsys, make, phrase):
    from hwprune.workload.torch_import import from_torch
    with pytest.raises(InputError) as info:
        from_torch(_net(), make())
    assert phrase in str(info.value) and "\n" not in str(info.value)
    assert capsys.readouterr().err == ""          # torch.fx's own traceback print is kept quiet


def test_from_torch_names_the_layer_that_failed():
    from hwprune.workload.torch_import import from_torch
    with pytest.raises(InputError, match=r"at 2: mat1 and mat2 shapes cannot be multiplied"):
        from_torch(_net(), torch.randn(1, 3, 9, 9))


def test_from_torch_with_something_that_is_not_a_module_is_an_input_error():
    from hwprune.workload.torch_import import from_torch
    with pytest.raises(InputError, match="module must be a torch.nn.Module, got str"):
        from_torch("resnet18", torch.randn(1, 3, 8, 8))
