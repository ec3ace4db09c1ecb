"""Pruning substrate: layers against numeric references, masks by granularity,
criteria, schedules, the reference models and the prune/sensitivity verbs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.cli import main
from hwprune.errors import InputError
from hwprune.prune import granularity as G
from hwprune.prune import models
from hwprune.prune.criteria import CRITERIA, han_mask, han_threshold
from hwprune.prune.data import digits
from hwprune.prune.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, softmax_cross_entropy
from hwprune.prune.model import Model
from hwprune.prune.pruner import prune_to, targets_for
from hwprune.prune.schedules import prune
from hwprune.prune.statistics import collect
from hwprune.prune.trainer import TrainConfig, train


def _tiny_cnn(seed=0):
    rng = np.random.default_rng(seed)
    return Model("tiny", [Conv2d("c1", 1, 3, 3, rng, padding=1), ReLU("r1"), MaxPool2d("p1", 2),
                          Conv2d("c2", 3, 4, 3, rng, stride=2, padding=1), ReLU("r2"), Flatten("f"),
                          Dense("d1", 16, 5, rng), ReLU("r3"), Dense("d2", 5, 10, rng)], (1, 8, 8))


def _loss(model, x, y):
    return softmax_cross_entropy(model.forward(x), y)[0]


# -- layers against numeric references ------------------------------------------

def test_conv_forward_matches_direct_loops():
    rng = np.random.default_rng(1)
    conv = Conv2d("c", 2, 3, 3, rng, stride=2, padding=1)
    conv.bias[:] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 7)).astype(np.float32)
    got = conv.forward(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 3, 4, 4))
    for n in range(2):
        for o in range(3):
            for i in range(4):
                for j in range(4):
                    patch = xp[n, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                    ref[n, o, i, j] = (patch * conv.weight[o]).sum() + conv.bias[o]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_gradients_match_finite_differences():
    model = _tiny_cnn()
    for lay in model.prunable():
        lay.weight = lay.weight.astype(np.float64)
        lay.bias = np.random.default_rng(3).standard_normal(lay.bias.shape) * 0.1
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 1, 8, 8))
    y = np.array([1, 4, 7])
    model.loss_and_backward(x, y)
    for lay in model.prunable():
        for idx in [(0,) * lay.weight.ndim, tuple(s - 1 for s in lay.weight.shape)]:
            old = lay.weight[idx]
            lay.weight[idx] = old + 1e-6
            up = _loss(model, x, y)
            lay.weight[idx] = old - 1e-6
            down = _loss(model, x, y)
            lay.weight[idx] = old
            assert lay.dweight[idx] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7)


def test_maxpool_routes_gradient_to_the_maximum():
    pool = MaxPool2d("p", 2)
    x = np.array([[[[1.0, 5.0], [2.0, 3.0]]]])
    assert pool.forward(x).item() == 5.0
    np.testing.assert_array_equal(pool.backward(np.array([[[[2.0]]]])), [[[[0, 2.0], [0, 0]]]])


def test_masks_apply_to_forward_and_gradients_unless_splicing():
    rng = np.random.default_rng(0)
    lay = Dense("d", 4, 3, rng)
    lay.mask[0, 1] = False
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out = lay.forward(x)
    np.testing.assert_allclose(out, x @ (lay.weight * lay.mask).T, rtol=1e-6)
    lay.backward(np.ones((5, 3), dtype=np.float32))
    assert lay.dweight[0, 1] == 0
    lay.splice = True
    lay.backward(np.ones((5, 3), dtype=np.float32))
    assert lay.dweight[0, 1] != 0


def test_a_fully_pruned_row_outputs_nothing():
    lay = Dense("d", 3, 2, np.random.default_rng(0))
    lay.bias[:] = 1.0
    lay.mask[1] = False
    out = lay.forward(np.ones((1, 3), dtype=np.float32))
    assert out[0, 1] == 0 and out[0, 0] != 0


def test_one_sgd_step_by_hand():
    rng = np.random.default_rng(0)
    model = Model("m", [Dense("d", 2, 2, rng)], (2,))
    data = digits(0)
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    object.__setattr__(data, "x_train", x)
    object.__setattr__(data, "y_train", np.array([1]))
    w0 = model.layers[0].weight.copy()
    model.loss_and_backward(x, np.array([1]))
    g = model.layers[0].dweight.copy()
    train(model, data, TrainConfig(epochs=1, batch_size=1, lr=0.1, momentum=0.9, weight_decay=0.01,
                                   final_lr_fraction=1.0))
    np.testing.assert_allclose(model.layers[0].weight, w0 - 0.1 * (g + 0.01 * w0), rtol=1e-5)


# -- data and reference models ----------------------------------------------------

def test_digits_split_is_stratified_disjoint_and_seeded():
    a, b = digits(0), digits(0)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.shape[0] + a.x_test.shape[0] == 1797
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert a.x_train.max() <= 1.0 and a.x_train.min() >= 0.0


@pytest.mark.parametrize("name", list(models.MODELS))
def test_reference_models_reach_97_percent(name):
    model, data = models.trained(name)
    assert model.accuracy(data.x_test, data.y_test) >= 0.97


def test_reference_model_converts_to_a_workload_network():
    net = models.to_network(models.build("digits-cnn"))
    convfc = [lay for lay in net.layers if lay.name in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    assert [lay.name for lay in convfc] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    model = models.build("digits-cnn")
    assert sum(lay.params for lay in convfc) >= sum(lay.weight.size for lay in model.prunable())


# -- granularities ------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(out=st.integers(1, 9), cin=st.integers(1, 5), k=st.sampled_from([1, 3]),
       gran=st.sampled_from(G.granularities()), g=st.integers(1, 6),
       density=st.floats(0.01, 1.0), seed=st.integers(0, 100))
def test_masks_hit_density_within_one_group_and_keep_their_structure(out, cin, k, gran, g, density, seed):
    shape = (out, cin, k, k)
    group = g if gran == "simd" else None
    if gran == "simd" and g > cin * k * k:
        with pytest.raises(InputError):
            G.groups_of(shape, gran, group)
        return
    groups = G.groups_of(shape, gran, group)
    scores = np.random.default_rng(seed).random(groups.count)
    keep = G.select(scores, groups.sizes, density)
    mask = G.to_mask(groups, keep)
    assert abs(mask.sum() - density * mask.size) <= groups.sizes.max()
    assert mask.sum() >= 1
    if gran == "vector":
        assert (mask == mask[..., :1]).all()
    if gran == "kernel":
        assert (mask == mask[:, :, :1, :1]).all()
    if gran in ("filter", "node"):
        assert (mask == mask[:, :1, :1, :1]).all()
    if gran == "simd":
        rows = mask.reshape(out, -1)
        for start in range(0, rows.shape[1], g):
            block = rows[:, start:start + g]
            assert (block == block[:, :1]).all()


def test_select_keeps_the_best_and_never_revives_ineligible_groups():
    sizes = np.ones(5, dtype=np.int64)
    keep = G.select(np.array([5.0, 1, 4, 2, 3]), sizes, 0.4)
    np.testing.assert_array_equal(keep, [True, False, True, False, False])
    eligible = np.array([False, True, True, True, True])
    keep = G.select(np.array([5.0, 1, 4, 2, 3]), sizes, 0.4, eligible=eligible)
    np.testing.assert_array_equal(keep, [False, False, True, False, True])


def test_node_pruning_removes_the_next_layers_inputs():
    model, data = models.build("digits-cnn"), digits(0)
    prune_to(model, CRITERIA["magnitude"], "node", targets_for(model, 0.5, "node"), data,
             np.random.default_rng(0))
    c1, c2, f1 = model.layer("conv1"), model.layer("conv2"), model.layer("fc1")
    gone1 = ~c1.mask.reshape(6, -1).any(axis=1)
    assert gone1.sum() == 3
    assert not c2.mask[:, gone1].any()
    gone2 = ~c2.mask.reshape(16, -1).any(axis=1)
    assert not f1.mask.reshape(120, 16, 4)[:, gone2].any()          # 2x2 positions per channel
    assert model.layer("fc3").mask.any(axis=1).all()                # classes are kept


# -- criteria -----------------------------------------------------------------------

@pytest.mark.parametrize("crit", list(CRITERIA))
@pytest.mark.parametrize("gran", G.granularities())
def test_every_criterion_works_with_every_granularity(crit, gran):
    model, data = _tiny_cnn(), digits(0)
    group = 2 if gran == "simd" else None
    targets = targets_for(model, 0.5, gran)
    prune_to(model, CRITERIA[crit], gran, targets, data, np.random.default_rng(0), group)
    s = G.scheme(gran)
    for lay in model.prunable():
        groups = G.groups_of(lay.weight.shape, gran, group)
        if s.fixed_density is not None:      # N:M: at most N of every window of M
            rows = lay.mask.reshape(lay.mask.shape[0], -1)
            n, m = s.nm
            cols = rows.shape[1] - rows.shape[1] % m
            assert (rows[:, :cols].reshape(rows.shape[0], -1, m).sum(axis=2) == n).all()
        elif not s.removes_units or lay.name == "c1":
            own = G.alive(groups, lay.mask)
            tolerance = groups.sizes.max() * (s.round_to if s.round_to > 1 else 1)
            assert abs((groups.sizes * own).sum() - targets[lay.name] * lay.mask.size) <= tolerance


def test_magnitude_keeps_the_largest_weights_and_matches_hans_threshold():
    model = _tiny_cnn()
    lay = model.layer("d1")
    dense = lay.weight.copy()
    prune_to(model, CRITERIA["magnitude"], "fine", {n.name: 0.25 for n in model.prunable()}, None,
             np.random.default_rng(0))
    kept = np.abs(dense[lay.mask])
    assert kept.min() >= np.abs(dense[~lay.mask]).max()
    q = han_threshold(dense, lay.mask)
    np.testing.assert_array_equal(han_mask(dense, q), lay.mask)


def test_taylor_scores_a_group_by_the_sum_inside_the_absolute_value():
    groups = G.groups_of((1, 4), "simd", 2)
    lay = Dense("d", 4, 1, np.random.default_rng(0))
    stats = type("S", (), {"taylor": np.array([[[1.0, -1.0, 2.0, 1.0]], [[3.0, -1.0, 0.0, 0.0]]])})()
    scores = CRITERIA["taylor"].group_scores(lay, groups, stats, None, "simd")
    np.testing.assert_allclose(scores, [(0 + 2) / 2, (3 + 0) / 2])


def test_obd_curvature_matches_per_sample_gradients():
    model, data = _tiny_cnn(), digits(0)
    stats = collect(model, data, batches=1, batch_size=6, seed=3)
    idx = np.random.default_rng(3).choice(data.x_train.shape[0], size=6, replace=False)
    for name in ("c2", "d1"):
        lay = model.layer(name)
        ref = np.zeros(lay.weight.shape)
        for i in idx:
            model.loss_and_backward(data.x_train[i:i + 1], data.y_train[i:i + 1])
            ref += lay.dweight.astype(np.float64) ** 2
        np.testing.assert_allclose(stats[name].fisher, ref / 6, rtol=1e-3, atol=1e-10)


def test_apoz_and_mean_activation_statistics():
    rng = np.random.default_rng(0)
    model = Model("m", [Dense("d", 2, 2, rng)], (2,))
    model.layers[0].weight[:] = [[1, 0], [-1, 0]]
    x = np.array([[1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    data = digits(0)
    object.__setattr__(data, "x_train", x)
    object.__setattr__(data, "y_train", np.array([0, 1]))
    s = collect(model, data, batches=1, batch_size=2)["d"]
    np.testing.assert_allclose(s.output_mean, [2.0, 0.0])
    np.testing.assert_allclose(s.output_zero_fraction, [0.0, 1.0])
    np.testing.assert_allclose(s.input_zero_fraction, [0.0, 1.0])
    np.testing.assert_allclose(s.input_abs_mean, [2.0, 0.0])


def test_network_surgery_splices_a_grown_weight_back():
    model = _tiny_cnn()
    model.set_splice(True)
    lay = model.layer("d2")
    targets = {n.name: 0.5 for n in model.prunable()}
    prune_to(model, CRITERIA["dns"], "fine", targets, None, np.random.default_rng(0), band=0.1)
    pruned = np.argwhere(~lay.mask)[0]
    lay.weight[tuple(pruned)] = 10 * np.abs(lay.weight).max()
    prune_to(model, CRITERIA["dns"], "fine", targets, None, np.random.default_rng(0), band=0.1)
    assert lay.mask[tuple(pruned)]


# -- schedules ------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["oneshot", "iterative", "agp"])
@pytest.mark.parametrize("crit", ["magnitude", "dns"])
def test_schedules_reach_the_target_and_keep_accuracy(schedule, crit):
    model, data = models.trained("digits-mlp")
    result = prune(model, data, crit, "fine", 0.2, schedule, epochs=4,
                   recipe=models.spec("digits-mlp").recipe)
    np.testing.assert_allclose(result.layers["density"], 0.2, atol=1e-3)
    assert result.accuracy_after > 0.9
    assert all(np.all(lay.weight[~lay.mask] == 0) for lay in result.model.prunable())


def test_agp_prunes_gradually():
    model, data = models.trained("digits-mlp")
    seen = []
    from hwprune.prune import schedules
    original = schedules.prune_to

    def spy(m, *a, **k):
        original(m, *a, **k)
        seen.append(m.densities()["fc2"])
    schedules.prune_to = spy
    try:
        prune(model, data, "magnitude", "fine", 0.1, "agp", epochs=4)
    finally:
        schedules.prune_to = original
    assert len(seen) > 4 and seen[0] > 0.9 and seen[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b - 1e-9 for a, b in zip(seen, seen[1:]))


def test_bad_requests_are_input_errors():
    model, data = models.build("digits-mlp"), digits(0)
    for kwargs in [dict(criterion="nope"), dict(granularity="blocks"), dict(density=0.0),
                   dict(density=1.5), dict(schedule="cosine"), dict(granularity="simd", group=65),
                   dict(granularity="fine", group=4), dict(density={"fc9": 0.5})]:
        args = dict(criterion="magnitude", granularity="fine", density=0.5, schedule="oneshot")
        args.update(kwargs)
        with pytest.raises(InputError):
            prune(model, data, **args)


# -- CLI --------------------------------------------------------------------------------

def test_cli_prune_writes_weights_masks_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["prune", "digits-mlp", "--criterion", "magnitude", "--granularity", "simd",
                 "--group", "4", "--density", "0.25", "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy:" in text and "fc2" in text
    summary = json.loads((out / "summary.json").read_text())
    state = np.load(out / "weights.npz")
    for row in summary["layers"]:
        assert state[f"{row['layer']}.mask"].mean() == pytest.approx(row["density"])
        assert not state[f"{row['layer']}.weight"][~state[f"{row['layer']}.mask"]].any()
    assert summary["accuracy_after"] > 0.9


@pytest.mark.parametrize("argv", [
    ["prune", "digits-mlp", "--density", "1.5"],
    ["prune", "digits-mlp", "--density", "0.5", "--criterion", "nope"],
    ["prune", "digits-mlp", "--density", "0.5", "--granularity", "simd", "--group", "100"],
    ["prune", "digits-mlp", "--density", "0.5", "--granularity", "simd"],
    ["prune", "lenet-9", "--density", "0.5"],
    ["sensitivity", "digits-cnn", "--densities", "0.5,2"],
])
def test_cli_bad_pruning_requests_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwprune: error:")


def test_cli_sensitivity_table_and_plot(tmp_path, capsys):
    plot = tmp_path / "s.png"
    assert main(["sensitivity", "digits-mlp", "--densities", "0.5,0.05", "--format", "csv",
                 "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "layer,scheme,target,density,accuracy,drop" and len(lines) == 1 + 3 * 2
    assert plot.stat().st_size > 1000
    acc = {(r.split(",")[0], r.split(",")[2]): float(r.split(",")[4]) for r in lines[1:]}
    assert acc[("fc1", "0.05")] < acc[("fc1", "0.5")]
    # 2:4 measured beside fine, one row per layer at density 0.5
    assert main(["sensitivity", "digits-mlp", "--densities", "0.5", "--beside", "2:4",
                 "--format", "csv"]) == 0
    rows = [r.split(",") for r in capsys.readouterr().out.strip().splitlines()[1:]]
    assert [r[1] for r in rows] == ["fine", "2:4"] * 3 and {r[2] for r in rows} == {"0.5"}
    assert main(["sensitivity", "digits-mlp", "--beside", "node"]) == 2
    assert "not one" in capsys.readouterr().err


def test_a_seed_makes_training_and_pruning_repeatable():
    runs = []
    for _ in range(2):
        data = digits(5)
        model = models.build("digits-mlp", 5)
        train(model, data, TrainConfig(epochs=1), seed=5)
        prune(model, data, "taylor", "simd", 0.3, "agp", group=4, epochs=1, seed=5)
        runs.append(model.state())
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
