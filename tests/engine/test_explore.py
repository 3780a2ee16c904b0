"""engine.explore: labels, anomaly truth, perturbed / untrained / raw baselines, anomaly scores, evaluate_run.

One tiny run (d_model 16, 1 block, 1 epoch) trained headless on 1,500 generated events, shared by
the module (and by test_cli_evaluate); the rest is small hand-made frames.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from engine import evaluate, explore, runs
from engine.config import RunConfig
from engine.embed import embed
from engine.errors import UserError
from engine.explore import OUTCOME
from engine.ingest import load
from engine.sample import generate_file
from engine.schema import ColumnType, Policy, Role, Schema, infer_schema
from engine.train import prepare_data, train
from tests.engine.test_train import _spec, tiny_frame, tiny_schema

N_EVENTS = 1_500
TINY_RUN = {"d_model": 16, "n_blocks": 1, "epochs": 1, "batch_size": 128, "cpu_threads": 1, "device": "cpu", "patience": 0}
CONTRACT_METRICS = {"silhouette", "knn_accuracy", "davies_bouldin", "stability"}
CONTRACT_ANOMALY = {"scorer", "auroc", "pr_auc", "raw_isolation_forest_auroc"}


def make_events(tmp_path, n_events: int = N_EVENTS, seed: int = 0):
    """Generated demo events, written and read back the way the app and the CLI read them."""
    path = tmp_path / "events.parquet"
    generate_file(path, n_events, seed)
    df, _ = load(path)
    return path, df


def train_tiny_run(tmp_path, df, *, schema=None, name: str = "tiny-explore"):
    config = RunConfig(name=name).with_overrides(TINY_RUN)
    schema = schema or infer_schema(df)
    data = prepare_data(df, schema, config, source="generated")
    run_dir = runs.create_run(tmp_path / "runs", name, config, schema, data.encoder, source="generated", n_rows=data.n_rows)
    train(config, data, run_dir=run_dir)
    return run_dir


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return make_events(tmp_path_factory.mktemp("explore-data"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, events):
    return train_tiny_run(tmp_path_factory.mktemp("explore-run"), events[1])


@pytest.fixture(scope="module")
def loaded(run_dir):
    return runs.load_run(run_dir)


@pytest.fixture(scope="module")
def report(run_dir, events):
    seen = []
    result = explore.evaluate_run(run_dir, events[1], on_progress=lambda f, m: seen.append((f, m)))
    return result, seen


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


# --------------------------------------------------------------------------- labels


def test_outcome_label_values_follow_status_id_then_other_evidence():
    df = pd.DataFrame({"status_id": [1, 2, 99, 0, np.nan], "status": ["Success", "Failure", None, "Failure", "ok"]})
    expected = ["Success", "Failure", "Other", "Failure", "Success"]
    assert explore.label_values(df, OUTCOME).tolist() == expected
    assert explore.label_values(df, "status_id").tolist() == expected  # status_id means the outcome words


def test_other_label_values_are_canonical_text_with_missing_kept():
    df = pd.DataFrame({"http_response.code": [200.0, np.nan, 504.0], "_label.scenario": ["normal", None, "port_scan"]})
    codes = explore.label_values(df, "http_response.code")
    assert codes.iloc[0] == "200" and codes.iloc[2] == "504" and pd.isna(codes.iloc[1])
    scenario = explore.label_values(df, "_label_scenario")  # the underscore spelling finds the dotted column
    assert scenario.iloc[2] == "port_scan" and pd.isna(scenario.iloc[1])


def test_unknown_label_column_is_a_user_error():
    with pytest.raises(UserError, match="nope"):
        explore.label_values(pd.DataFrame({"a": [1]}), "nope")


def test_default_label_column():
    assert explore.default_label_column(pd.DataFrame({"status_id": [1], "_label.scenario": ["x"]})) == OUTCOME
    assert explore.default_label_column(pd.DataFrame({"http_response.code": [200]})) == OUTCOME
    assert explore.default_label_column(pd.DataFrame({"x": [1], "_label.scenario": ["a"]})) == "_label.scenario"
    assert explore.default_label_column(pd.DataFrame({"x": [1]})) == OUTCOME


@pytest.mark.parametrize("columns, expected", [
    (["x", "anomaly.type", "_label.is_anomaly"], "_label.is_anomaly"),
    (["is_anomaly", "anomaly_type"], "is_anomaly"),
    (["x", "anomaly_type"], "anomaly_type"),
    (["x", "_label.scenario"], "_label.scenario"),
    (["x", "status_id"], None),
])
def test_default_anomaly_column(columns, expected):
    assert explore.default_anomaly_column(pd.DataFrame({c: [0] for c in columns})) == expected


@pytest.mark.parametrize("values, expected", [
    ([True, False, None, True], [True, False, False, True]),
    ([1, 0, 0, 1], [True, False, False, True]),
    ([1.0, np.nan, 0.0, 2.0], [True, False, False, True]),
    (["true", "false", "FALSE", "1"], [True, False, False, True]),
    (["normal", "port_scan", "none", "data_exfiltration"], [False, True, False, True]),
    ([None, "db_timeout", np.nan, "slow_query"], [False, True, False, True]),  # the tutorial's anomaly.type
    ([None, None, None, None], [False, False, False, False]),
])
def test_anomaly_truth_variants(values, expected):
    df = pd.DataFrame({"label": pd.Series(values)})
    truth = explore.anomaly_truth(df, "label")
    assert truth.dtype == bool and truth.tolist() == expected


def test_anomaly_truth_of_the_tutorial_data():
    df = pd.read_parquet("data/tutorial/ocsf_logs.parquet", columns=["status_id", "anomaly_type"])
    column = explore.default_anomaly_column(df)
    assert column == "anomaly_type"
    assert explore.anomaly_truth(df, column).sum() == 277  # 73 + 73 + 66 + 65 scenario events
    assert (explore.label_values(df, OUTCOME) == "Failure").sum() == 73


# --------------------------------------------------------------------------- perturbed, untrained, raw


def test_perturbed_inputs_touch_only_unprotected_numeric_cells(loaded, events):
    frame = events[1].iloc[:400]
    clean = loaded.encoder.transform(frame)
    noisy = explore.perturbed_inputs(loaded, clean, seed=3)
    assert torch.equal(noisy.categorical, clean.categorical)
    assert torch.equal(torch.isnan(noisy.time), torch.isnan(clean.time))
    assert torch.equal(torch.isnan(noisy.numeric), torch.isnan(clean.numeric))  # missing stays missing
    present = ~torch.isnan(clean.numeric) & (clean.numeric != 0)
    ratio = (noisy.numeric[present] / clean.numeric[present] - 1).abs()
    assert 0.01 < ratio.mean().item() < 0.08  # |N(0, 0.05)| has mean 0.04
    assert explore.perturbable_columns(loaded)  # the demo's measures (bytes, duration ...) are jittered


def test_perturbed_embeddings_are_close_but_not_equal_and_seeded(loaded, events):
    frame = events[1].iloc[:500]
    clean = embed(loaded, frame)
    first = explore.perturbed_embeddings(loaded, frame, seed=1)
    assert first.shape == clean.shape
    assert not np.allclose(first, clean, atol=1e-6)
    assert cosines(first, clean).mean() > 0.5
    assert np.array_equal(first, explore.perturbed_embeddings(loaded, frame, seed=1, batch_size=77))
    assert not np.array_equal(first, explore.perturbed_embeddings(loaded, frame, seed=2))
    np.testing.assert_allclose(explore.perturbed_embeddings(loaded, frame, noise_level=0.0), clean, atol=1e-5)


def test_untrained_embeddings_same_shape_different_values_seeded(loaded, events):
    frame = events[1].iloc[:300]
    trained = embed(loaded, frame)
    first = explore.untrained_embeddings(loaded, frame, seed=0)
    assert first.shape == trained.shape and np.isfinite(first).all()
    assert not np.allclose(first, trained, atol=1e-3)
    torch.rand(1000)  # move torch's global generator: the untrained net must not depend on it
    assert np.array_equal(first, explore.untrained_embeddings(loaded, frame, seed=0))
    assert not np.allclose(first, explore.untrained_embeddings(loaded, frame, seed=1), atol=1e-3)
    assert not explore.untrained_model(loaded).training  # eval mode: BatchNorm uses its running statistics


def _leaky_frame(n: int = 600) -> pd.DataFrame:
    """tiny_frame plus a numeric outcome column that copies the outcome (with a few missing values)."""
    frame = tiny_frame(n, seed=4)
    code = np.where(frame["status_id"] == 2, 504.0, 200.0)
    code[::50] = np.nan
    return frame.assign(**{"http_response.code": code})


def _leaky_schema():
    outcome_code = _spec("http_response.code", ColumnType.NUMERIC, Role.OUTCOME, Policy.PROTECTED,
                         protected=True, outcome_family=True)
    return Schema(columns=(*tiny_schema().columns, outcome_code))


def test_raw_feature_matrix_leaves_the_outcome_family_out(tmp_path):
    frame = _leaky_frame()
    run = runs.load_run(train_tiny_run(tmp_path, frame, schema=_leaky_schema(), name="leaky"))
    assert {"status_id", "http_response.code"} <= set(run.encoder.categorical_columns_ + run.encoder.numeric_columns_)
    raw = explore.raw_feature_matrix(run, frame)
    flipped = frame.assign(status_id=np.where(frame["status_id"] == 1, 2, 1),
                           **{"http_response.code": frame["http_response.code"].map({200.0: 504.0, 504.0: 200.0})})
    # The model reads the outcome (its embeddings move when it changes); the raw baseline does not.
    assert not np.allclose(embed(run, flipped), embed(run, frame), atol=1e-4)
    np.testing.assert_array_equal(explore.raw_feature_matrix(run, flipped), raw)
    # Same width as the baseline built from the other inputs by hand.
    x_num, x_cat = run.encoder.model_inputs(run.encoder.transform(frame))
    names = run.encoder.model_feature_names()
    keep = [j for j, name in enumerate(names) if not name.startswith(("http_response.code", "status_id"))]
    cat_keep = [j for j, c in enumerate(run.encoder.categorical_columns_) if c != "status_id"]
    expected = evaluate.raw_features_baseline(x_num.numpy()[:, keep], x_cat.numpy()[:, cat_keep])
    assert raw.shape == expected.shape and "http_response.code__missing" in names
    np.testing.assert_allclose(raw, expected, atol=1e-6)
    # And the outcome note tells the analyst the model had them as inputs.
    result = explore.evaluate_run(run, frame, anomaly_label="_label.is_anomaly")
    assert any("outcome fields as inputs" in note for note in result.notes)


# --------------------------------------------------------------------------- anomaly scores


def test_reference_graph_over_every_row_is_the_exact_graph():
    rng = np.random.default_rng(0)
    emb = np.vstack([rng.normal(size=(150, 8)), rng.normal(loc=4.0, size=(5, 8))]).astype(np.float32)
    exact = evaluate.neighbour_graph(emb, 10)
    reference = explore.reference_neighbour_graph(emb, 10, reference_rows=np.arange(len(emb)))
    np.testing.assert_allclose(evaluate.knn_score(k=10, graph=reference), evaluate.knn_score(k=10, graph=exact), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(evaluate.lof_score(k=10, graph=reference), evaluate.lof_score(k=10, graph=exact), rtol=1e-4)


def test_reference_sample_scores_every_event_never_against_itself():
    rng = np.random.default_rng(1)
    emb = rng.normal(loc=3.0, scale=0.5, size=(400, 6)).astype(np.float32)  # one direction, roughly
    emb[:5] = -3.0 * np.eye(6, dtype=np.float32)[:5]  # five events, each pointing its own other way
    result = explore.anomaly_scores(emb, "knn", k=5, max_exact=100, reference_size=150)
    assert result.reference_size == 150 and result.note and result.scores.shape == (400,)
    assert set(np.argsort(-result.scores)[:5]) == set(range(5))
    rows = np.sort(rng.choice(400, 150, replace=False))
    graph = explore.reference_neighbour_graph(emb, 5, reference_rows=rows)
    assert np.isin(graph.indices, rows).all()
    assert not (graph.indices == np.arange(400)[:, None]).any()
    exact = explore.anomaly_scores(emb, "lof", k=5)
    assert exact.reference_size is None and exact.note is None and np.isfinite(exact.scores).all()


def test_anomaly_scorers_and_a_bad_scorer():
    emb = np.random.default_rng(2).normal(size=(200, 4)).astype(np.float32)
    assert explore.anomaly_scores(emb, "iforest").scores.shape == (200,)
    with pytest.raises(UserError, match="scorer"):
        explore.anomaly_scores(emb, "pca")


# --------------------------------------------------------------------------- evaluate_run


def _in_range(card: dict) -> None:
    assert CONTRACT_METRICS <= set(card)
    assert -1.0 <= card["silhouette"] <= 1.0
    assert 0.0 <= card["knn_accuracy"] <= 1.0
    assert card["davies_bouldin"] >= 0.0
    assert 0.5 < card["stability"] <= 1.0 + 1e-6


def test_evaluate_run_report_follows_the_json_contract(report, events):
    result, _ = report
    doc = json.loads(json.dumps(result.to_dict()))  # JSON-ready, no NaN
    assert doc["label"] == OUTCOME and doc["n_rows"] == N_EVENTS
    _in_range(doc["scorecard"])
    assert set(doc["baselines"]) == {"raw", "untrained"}
    for card in doc["baselines"].values():
        _in_range(card)
    assert CONTRACT_ANOMALY <= set(doc["anomaly"])
    assert doc["anomaly"]["scorer"] == "knn" and doc["anomaly"]["column"] == "_label.is_anomaly"
    for key in ("auroc", "pr_auc", "raw_isolation_forest_auroc"):
        assert 0.0 <= doc["anomaly"][key] <= 1.0
    assert doc["anomaly"]["n_anomalies"] == int(events[1]["_label.is_anomaly"].sum()) > 0
    assert doc["verdict"] and doc["scorecard"]["lights"]["knn_accuracy"] in ("good", "fair", "poor")
    assert result.anomaly_scores.shape == (N_EVENTS,)


def test_evaluate_run_reports_progress_to_one(report):
    _, seen = report
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len({m for _, m in seen}) >= 5


def test_given_embeddings_are_used_and_give_the_same_scorecard(loaded, events, report):
    emb = embed(loaded, events[1])
    again = explore.evaluate_run(loaded, events[1], embeddings=emb)
    assert again.scorecard["silhouette"] == pytest.approx(report[0].scorecard["silhouette"], abs=1e-5)
    with pytest.raises(UserError, match="rows"):
        explore.evaluate_run(loaded, events[1], embeddings=emb[:10])


def test_single_class_label_gives_nulls_and_reasons(loaded, events):
    frame = events[1].assign(**{"_label.constant": "same", "_label.never": False})
    result = explore.evaluate_run(loaded, frame, label="_label.constant", anomaly_label="_label.never", scorer="iforest")
    card = result.scorecard
    assert card["silhouette"] is None and card["knn_accuracy"] is None and card["davies_bouldin"] is None
    assert "only one label value" in card["reasons"]["silhouette"]
    assert card["stability"] is not None and math.isfinite(card["stability"])  # needs no label
    assert result.baselines["raw"]["silhouette"] is None and result.baselines["untrained"]["silhouette"] is None
    assert result.verdict.startswith("Cannot judge")
    assert result.anomaly["auroc"] is None and "one class" in result.anomaly["reason"]
    json.dumps(result.to_dict())


def test_imbalanced_label_and_no_anomaly_column(loaded, events):
    frame = events[1].drop(columns=["_label.is_anomaly", "_label.scenario"])
    rare = np.zeros(len(frame), dtype=bool)
    rare[::300] = True  # 5 of 1,500, like 73 of 27,084
    frame = frame.assign(**{"_label.kind": np.where(rare, "rare", "common")})
    result = explore.evaluate_run(loaded, frame, label="_label.kind")
    assert result.anomaly is None and result.to_dict()["anomaly"] is None
    assert result.scorecard["knn_balanced_accuracy"] is not None
    assert "rare" in result.verdict


def test_bad_inputs_are_user_errors(loaded, events, tmp_path):
    with pytest.raises(UserError, match="no_such_column"):
        explore.evaluate_run(loaded, events[1], label="no_such_column")
    with pytest.raises(UserError, match="anomaly label column"):
        explore.evaluate_run(loaded, events[1], anomaly_label="missing")
    with pytest.raises(UserError, match="scorer"):
        explore.evaluate_run(loaded, events[1], scorer="pca")
    with pytest.raises(UserError, match="not found"):
        explore.evaluate_run(tmp_path / "absent", events[1])
