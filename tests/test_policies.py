"""Energy-aware pruning, costing of pruned models, trade-off sweeps and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hwprune
from hwprune.cli import main
from hwprune.prune import models
from hwprune.prune.layers import Dense
from hwprune.prune.schedules import prune
from hwprune.studies import energy_aware as EA
from hwprune.studies import report_study, scalpel, tradeoff
from hwprune.studies.deployed import evaluate_model


def test_least_squares_refit_recovers_a_layer_whose_extra_weights_were_zero():
    rng = np.random.default_rng(0)
    lay = Dense("d", 6, 3, rng)
    true = np.zeros((3, 6))
    true[:, :2] = rng.standard_normal((3, 2))
    x = rng.standard_normal((200, 6))
    target = x @ true.T
    lay.weight = (true + 0.3 * rng.standard_normal((3, 6))).astype(np.float32)  # noisy start
    lay.weight[:, :2] = np.abs(lay.weight[:, :2]) + 5                           # largest |w|
    mask = EA.prune_layer(lay, 1 / 3, x, target)
    assert mask.sum() == 6 and mask[:, :2].all()
    np.testing.assert_allclose(lay.weight[:, :2], true[:, :2], atol=1e-3)


def test_conjugate_gradient_refit_equals_the_per_row_least_squares_solution():
    """Long rows are re-fitted by masked conjugate gradients: the fit of numpy's per-row
    solve of the normal equations (its ridge objective within 1e-5), with more samples
    than inputs (through the Gram matrix) and fewer (through the inputs)."""
    rng = np.random.default_rng(3)
    for samples in (400, 60):
        x = np.maximum(rng.standard_normal((samples, 90)) @ rng.standard_normal((90, 90)), 0)
        w = rng.standard_normal((7, 90))
        fit = EA.LayerFit.of(x, x @ w.T + 0.1, np.full(7, 0.1))
        mask = rng.random((7, 90)) < 0.4
        got = EA.masked_cg(fit, mask, np.where(mask, w, 0.0))
        for o in range(7):
            k = np.flatnonzero(mask[o])
            a = x[:, k].T @ x[:, k] + fit.ridge * np.eye(k.size)
            want = np.linalg.solve(a, x[:, k].T @ (x @ w[o]))

            def loss(v, k=k, o=o):
                return ((x[:, k] @ v - x @ w[o]) ** 2).sum() + fit.ridge * (v ** 2).sum()
            assert loss(want) * (1 - 1e-9) <= loss(got[o, k]) <= loss(want) * (1 + 1e-5)
            assert not got[o, ~mask[o]].any()


def test_energy_aware_prunes_the_most_expensive_layer_first_within_budget():
    dev = hwprune.device("cortex-m4")
    r = EA.energy_aware("digits-mlp", dev, budget=0.01, epochs=1)
    assert list(r.layers["energy"]) == sorted(r.layers["energy"], reverse=True)
    assert (r.layers["accuracy_after_layer"] >= r.dense_accuracy - 0.01 - 1e-12).all()
    assert (r.layers["density"] < 1).any()
    for lay in r.model.prunable():
        assert not lay.weight[~lay.mask].any()


def test_cost_of_a_node_pruned_model_is_the_smaller_dense_network():
    dev = hwprune.device("core-i7")
    model, data = models.trained("digits-mlp")
    dense = evaluate_model(model, dev, "dense")
    prune(model, data, "magnitude", "node", 0.5, epochs=0)
    node = evaluate_model(model, dev, "node")
    assert [le.scheme.name for le in node] == ["node", "node", "dense"]   # the classes stay
    assert node["fc1"].outputs_kept == 0.5 and node["fc2"].inputs_kept == 0.5
    assert node["fc3"].inputs_kept == node["fc2"].outputs_kept
    assert node["fc1"].weights_kept == 150 * 64 and node["fc3"].weights_kept == 10 * 50
    for a, b in zip(node, dense):
        assert a.cost.energy < b.cost.energy and a.cost.bytes < b.cost.bytes


def test_cost_of_fine_pruning_counts_index_bytes():
    dev = hwprune.device("cortex-m4")
    model, data = models.trained("digits-mlp")
    prune(model, data, "magnitude", "fine", 0.5, epochs=0)
    fine = evaluate_model(model, dev, "fine")["fc2"]
    nnz = int(model.layer("fc2").mask.sum())
    expected = nnz * (dev.element_bytes + dev.sparsity.index_bits / 8) + (100 + 1) * 4
    assert fine.scheme.name == "fine" and fine.cost.bytes == pytest.approx(expected)
    assert fine.weights_kept == pytest.approx(nnz)


@pytest.fixture(scope="module")
def small_sweep():
    patch = pytest.MonkeyPatch()
    patch.setattr(tradeoff, "DENSITIES", (0.3,))
    patch.setattr(tradeoff, "TOLERANCES", (0.01,))
    patch.setattr(tradeoff, "BUDGETS", (0.01,))
    patch.setattr(tradeoff, "EPOCHS", 2)
    patch.setattr(scalpel, "DENSITY_GRID", (0.5, 0.25))
    patch.setattr(EA, "DENSITY_GRID", (0.5, 0.25))
    scalpel._search_cached.cache_clear()
    devs = [hwprune.device("cortex-m4"), hwprune.device("titan-x")]
    steps = []
    points = tradeoff.sweep("digits-mlp", devs, progress=steps.append)
    yield points, steps, devs, patch
    patch.undo()
    scalpel._search_cached.cache_clear()


def test_sweep_records_every_policy_on_every_device(small_sweep):
    points, steps, devs, _ = small_sweep
    assert len(steps) == tradeoff.planned_steps("digits-mlp", devs)
    for dev in ("cortex-m4", "titan-x"):
        got = set(points[points["device"] == dev]["policy"])
        assert got == {"dense", "magnitude", "fine-agp", "filter", "node", "simd", "scalpel", "energy-aware"}
    assert points[["accuracy", "energy", "latency_s", "model_bytes"]].notna().all().all()
    assert set(points["energy_unit"]) == {"pJ"}
    dense = points[points["policy"] == "dense"].set_index("device")
    assert (points["model_bytes"] <= points["device"].map(dense["model_bytes"]) * 1.5).all()


def test_pareto_front_is_undominated_and_nonempty(small_sweep):
    points = small_sweep[0]
    front = tradeoff.pareto(points, "energy")
    for _, part in points.groupby("device"):
        on = part[front.loc[part.index]]
        assert len(on) >= 1
        for _, p in on.iterrows():
            assert not ((part["accuracy"] > p["accuracy"]) & (part["energy"] < p["energy"])).any()
        best = part["accuracy"].max()
        assert on["accuracy"].max() == best


def test_pareto_by_hand():
    df = pd.DataFrame({"model": "m", "device": "d", "accuracy": [0.9, 0.95, 0.8, 0.95],
                       "energy_pj": [1.0, 2.0, 3.0, 2.5]})
    assert list(tradeoff.pareto(df, "energy_pj")) == [True, True, False, False]


def test_scalpel_against_traditional_table(small_sweep):
    versus = tradeoff.scalpel_vs_traditional(small_sweep[0])
    assert set(versus["device"]) == {"cortex-m4", "titan-x"}
    assert (versus["scalpel_speedup"] > 0).all()
    np.testing.assert_allclose(versus["scalpel_over_traditional"],
                               versus["scalpel_speedup"] / versus["traditional_speedup"])


def test_report_writes_one_page_with_figures_and_tables(small_sweep, tmp_path):
    patch = small_sweep[3]
    from hwprune.report.html_report import render_report
    patch.setattr(report_study, "default_schemes", lambda dev: ("fine",))
    study = report_study.report_study([hwprune.device("cortex-m4"), hwprune.device("eyeriss")],
                                      names=("digits-mlp",))
    page = render_report(tmp_path / "r", study)
    text = page.read_text()
    for needle in ("Energy per layer", "Break-even", "Recommended granularity", "Trade-offs",
                   "Scalpel against traditional", "tradeoff-cortex-m4.png"):
        assert needle in text
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"index.html", "tradeoff.csv", "tradeoff-cortex-m4.png", "digits-mlp-cortex-m4-breakeven.png",
            "digits-mlp-cortex-m4-energy.csv", "digits-mlp-cortex-m4-granularity.csv"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    assert "MAC-equivalents" in text                # eyeriss energies are normalized


@pytest.mark.parametrize("argv", [
    ["tradeoff", "digits-mlp", "--devices", "nope"],
    ["tradeoff", "resnet18"],
    ["report", "--devices", ","],
])
def test_cli_tradeoff_and_report_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwprune: error:")


def test_cli_tradeoff_writes_csv_plots_and_prints_the_comparison(small_sweep, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out", str(out),
                 "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("model,device,traditional_density")
    points = pd.read_csv(out / "tradeoff.csv")
    assert set(points["device"]) == {"cortex-m4"} and points["pareto_energy"].any()
    assert (out / "tradeoff-cortex-m4.png").stat().st_size > 1000


def test_cli_granularity_prints_a_scheme_and_reason_per_layer(small_sweep, capsys):
    assert main(["granularity", "digits-mlp", "--device", "eyeriss", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("layer,kind,scheme,density,inputs_kept,speedup,energy_ratio,reason")
    assert len(lines) == 4


def test_the_sweep_prices_scalpel_as_its_table_does(small_sweep):
    points, _, devs, _ = small_sweep
    for dev in devs:
        r = scalpel.scalpel("digits-mlp", dev, 0.01)
        point = points[(points["policy"] == "scalpel") & (points["device"] == dev.id)].iloc[0]
        assert point["latency_s"] == pytest.approx(r.choice.evaluation.total.latency_s)
        assert point["energy"] == pytest.approx(r.choice.evaluation.total.energy)
        table = r.layers
        dense = r.choice.dense
        # the table's per-layer speedups are the same evaluation, layer by layer
        for row in table.itertuples():
            le = r.choice.evaluation[row.layer]
            assert row.speedup == pytest.approx(dense[row.layer].cost.latency_s / le.cost.latency_s)
