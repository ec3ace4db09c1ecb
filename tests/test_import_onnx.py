"""ONNX import: models built with onnx.helper inside the tests."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hwprune.api import network  # noqa: E402
from hwprune.cli import main  # noqa: E402
from hwprune.errors import InputError  # noqa: E402
from hwprune.workload.imported import ImportWarning_  # noqa: E402
from hwprune.workload.onnx_import import load_onnx  # noqa: E402

RNG = np.random.default_rng(0)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def _save(tmp_path, nodes, inits, out_shape, name="m", in_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _residual_cnn(tmp_path, extra=None):
    w1 = RNG.standard_normal((8, 3, 3, 3))
    w2 = RNG.standard_normal((8, 2, 3, 3))           # grouped: 4 groups of 2 channels
    bn = [RNG.random(8) + 0.5, RNG.standard_normal(8), RNG.standard_normal(8), RNG.random(8) + 0.5]
    fc = RNG.standard_normal((10, 8))
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=4),
        helper.make_node("Add", ["c2", "r1"], ["s"], name="add"),
        helper.make_node("MaxPool", ["s"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        *(extra or []),
        helper.make_node("GlobalAveragePool", ["q" if extra else "p"], ["g1"], name="gap"),
        helper.make_node("Flatten", ["g1"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1),
    ]
    inits = [_init("w1", w1), _init("b1", np.zeros(8)), _init("w2", w2), _init("g", bn[0]),
             _init("be", bn[1]), _init("mu", bn[2]), _init("var", bn[3]), _init("fc", fc),
             _init("fcb", np.ones(10))]
    return _save(tmp_path, nodes, inits, (1, 10)), (w1, w2, bn, fc)


def test_residual_cnn_imports_with_shapes_macs_and_folded_batchnorm(tmp_path):
    path, (w1, w2, bn, fc) = _residual_cnn(tmp_path)
    m = load_onnx(path)
    layers = {lay.name: lay for lay in m.network.layers}
    assert [lay.name for lay in m.network.weighted_layers] == ["conv1", "conv2", "fc"]
    assert layers["conv1"].output_shape == (8, 8, 8)
    assert layers["conv2"].op.groups == 4
    assert layers["conv2"].macs == 8 * 2 * 9 * 64
    assert layers["add"].inputs == ("conv2", "conv1")      # relu/bn pass through to conv1
    assert layers["pool"].output_shape == (8, 4, 4)
    assert layers["fc"].macs == 80
    gamma, beta, mean, var = bn
    scale = gamma / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(m.weights["conv1"], w1 * scale[:, None, None, None], rtol=1e-5)
    np.testing.assert_allclose(m.biases["conv1"], -mean * scale + beta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.weights["fc"], fc, rtol=1e-6)
    np.testing.assert_allclose(m.biases["fc"], 1.0)


def test_folded_batchnorm_gives_the_same_outputs():
    from hwprune.workload.imported import fold_batchnorm
    x = RNG.standard_normal((5, 4))
    w, bias = RNG.standard_normal((3, 4)), RNG.standard_normal(3)
    g, be, mu, var = RNG.random(3) + 0.5, RNG.standard_normal(3), RNG.standard_normal(3), RNG.random(3) + .5
    ref = g * ((x @ w.T + bias) - mu) / np.sqrt(var + 1e-3) + be
    fw, fb = fold_batchnorm(w, bias, g, be, mu, var, 1e-3)
    np.testing.assert_allclose(x @ fw.T + fb, ref, rtol=1e-4, atol=1e-5)


def test_matmul_with_constant_add_becomes_fc_with_bias(tmp_path):
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "b"], ["y"], name="bias")]
    path = _save(tmp_path, nodes, [_init("w", RNG.standard_normal((192, 7))), _init("b", np.arange(7))],
                 (1, 7))
    m = load_onnx(path)
    assert m.weights["mm"].shape == (7, 192)
    np.testing.assert_allclose(m.biases["mm"], np.arange(7))


def test_unknown_weightless_shape_preserving_op_is_skipped_with_a_warning(tmp_path):
    path, _ = _residual_cnn(tmp_path, extra=[helper.make_node("Sign", ["p"], ["q"], name="erf")])
    with pytest.warns(ImportWarning_, match="Sign"):
        m = load_onnx(path)
    assert m.skipped == ("erf (Sign)",)


def test_unknown_op_with_weights_is_an_error_naming_it(tmp_path):
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv")]
    path = _save(tmp_path, nodes, [_init("w", RNG.standard_normal((3, 4, 3, 3)))], (1, 4, 10, 10))
    with pytest.raises(InputError, match="ConvTranspose at .deconv.: it has weights"):
        load_onnx(path)


def test_cli_verbs_take_an_onnx_path(tmp_path, capsys):
    path, _ = _residual_cnn(tmp_path)
    assert main(["show", str(path), "--format", "csv"]) == 0
    assert "conv2" in capsys.readouterr().out
    assert main(["energy", str(path), "--device", "eyeriss", "--format", "csv"]) == 0
    net = network(str(path))
    assert capsys.readouterr().out.count("\n") == 1 + len(net.layers)      # header + one row per layer
    assert net.name == "m" and len(net.weighted_layers) == 3
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["show", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def _fuzz_module():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_onnx.py"
    spec = importlib.util.spec_from_file_location("fuzz_onnx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_onnx_graphs_import_consistently_or_are_rejected(tmp_path):
    """Random small graphs (benchmarks/fuzz_onnx.py; 2,000 there, 400 here): each imports
    with ONNX's shapes and MACs or is an InputError from one of the importer's checks."""
    import warnings

    from hypothesis import HealthCheck, given, seed, settings
    fuzz = _fuzz_module()
    outcomes = []

    @seed(18)
    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.graphs())
    def run(model):
        outcomes.append(fuzz.check(model, str(tmp_path)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    assert "accepted" in outcomes and "rejected" in outcomes
