"""engine.evaluate: metrics with known geometry (thresholds, not exact floats), anomalies, contrast, neighbours."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import evaluate
from engine.errors import UserError


def blobs(n_per_class: list[int], dim: int = 16, spread: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters around random unit directions: well separated under cosine."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(n_per_class), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + rng.normal(scale=spread, size=(m, dim)) for c, m in zip(centres, n_per_class)])
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return x.astype(np.float32), y


def test_well_separated_blobs_score_good_on_every_metric():
    x, y = blobs([300, 300, 300])
    card = evaluate.scorecard(x, y, perturbed=x + 0.001)
    assert card.silhouette > 0.5
    assert card.knn_accuracy > 0.9 and card.knn_balanced_accuracy > 0.9
    assert card.davies_bouldin < 1.0
    assert card.stability > 0.99
    assert card.lights == {"silhouette": "good", "knn_accuracy": "good", "davies_bouldin": "good", "stability": "good"}
    assert "separate well" in evaluate.verdict(card, "cluster")


def test_shuffled_labels_score_poor():
    x, y = blobs([300, 300, 300])
    shuffled = np.random.default_rng(1).permutation(y)
    card = evaluate.scorecard(x, shuffled)
    assert card.silhouette < 0.1
    assert card.knn_accuracy < 0.5  # chance is 1/3
    assert card.davies_bouldin > 2.0
    assert card.lights["silhouette"] == "poor" and card.lights["knn_accuracy"] == "poor"
    assert "overlap: check the augmentation page" in evaluate.verdict(card, "cluster")


def test_imbalanced_labels_keep_the_rare_class_and_light_kNN_by_balanced_accuracy():
    # 20 failures among 3,000 events that sit inside the success cloud: plain accuracy looks great, balanced does not.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3_000, 16)).astype(np.float32)
    y = np.array(["Success"] * 2_980 + ["Failure"] * 20)
    card = evaluate.scorecard(x, y, max_points=1_000)
    assert card.knn_accuracy > 0.95  # always "Success"
    assert card.knn_balanced_accuracy < 0.6  # ~chance
    assert card.lights["knn_accuracy"] == "poor"
    assert card.n_sampled == 1_000 and dict(card.classes)["Failure"] == 20
    sentence = evaluate.verdict(card, "status")
    assert "Success and Failure overlap" in sentence and "Failure is rare (20 of 3000" in sentence


def test_imbalanced_but_separated_rare_class_is_found():
    x, y = blobs([2_980, 20], seed=3)
    card = evaluate.scorecard(x, y)
    assert card.knn_balanced_accuracy > 0.9 and card.silhouette > 0.5
    assert all(np.isfinite([card.silhouette, card.knn_accuracy, card.davies_bouldin]))


def test_single_class_gives_nulls_with_a_reason_and_still_reports_stability():
    x, _ = blobs([200])
    card = evaluate.scorecard(x, np.ones(200), perturbed=x)
    assert card.silhouette is None and card.knn_accuracy is None and card.davies_bouldin is None
    assert card.stability == pytest.approx(1.0, abs=1e-5)
    assert "only one label value" in dict(card.reasons)["silhouette"]
    doc = card.to_dict()
    json.dumps(doc, allow_nan=False)  # JSON-ready: no NaN, no numpy types
    assert doc["silhouette"] is None and doc["lights"]["silhouette"] is None
    assert evaluate.verdict(card, "status").startswith("Cannot judge whether status separates")


def test_nan_labels_are_dropped_and_tiny_classes_do_not_crash():
    x, y = blobs([100, 100, 3, 1], seed=4)
    labels = pd.Series(y.astype(float))
    labels[:30] = np.nan
    card = evaluate.scorecard(x, labels)
    assert card.n_events == 204 and card.n_labelled == 174
    assert [label for label, _ in card.classes] == ["1", "0", "2", "3"]  # integer-valued floats print as integers
    assert card.knn_accuracy > 0.9
    assert any("fewer than 10 events" in note for note in card.notes)


def test_boolean_labels_keep_their_names():
    x, y = blobs([60, 60])
    card = evaluate.scorecard(x, y == 1)
    assert sorted(label for label, _ in card.classes) == ["False", "True"]


def test_no_labels_and_id_like_labels_are_unscorable_not_errors():
    x, _ = blobs([50, 50])
    assert "no event has a label" in dict(evaluate.scorecard(x, [None] * 100).reasons)["knn_accuracy"]
    assert evaluate.scorecard(x, np.arange(100)).silhouette is None


def test_to_dict_keeps_the_contract_keys():
    x, y = blobs([60, 60])
    doc = evaluate.scorecard(x, y).to_dict()
    for key in ("silhouette", "knn_accuracy", "davies_bouldin", "stability", "knn_balanced_accuracy", "lights", "reasons"):
        assert key in doc
    assert doc["stability"] is None and "stability" in doc["reasons"]
    json.dumps(doc, allow_nan=False)


def test_bad_input_raises_user_error():
    x, y = blobs([20, 20])
    with pytest.raises(UserError, match="labels has 3 values"):
        evaluate.scorecard(x, [1, 2, 3])
    with pytest.raises(UserError, match="perturbed embeddings have shape"):
        evaluate.scorecard(x, y, perturbed=x[:5])
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        evaluate.scorecard(bad, y)


@pytest.mark.parametrize(("metric", "value", "light"), [
    ("silhouette", 0.51, "good"), ("silhouette", 0.3, "fair"), ("silhouette", 0.1, "poor"),
    ("davies_bouldin", 0.9, "good"), ("davies_bouldin", 1.5, "fair"), ("davies_bouldin", 2.5, "poor"),
    ("knn_accuracy", 0.9, "good"), ("knn_accuracy", 0.75, "fair"), ("knn_accuracy", 0.5, "poor"),
    ("stability", 0.95, "good"), ("stability", 0.85, "fair"), ("stability", 0.5, "poor"),
    ("stability", None, None),
])
def test_traffic_lights_follow_the_tutorial_thresholds(metric, value, light):
    assert evaluate.traffic_light(metric, value) == light


def test_raw_features_baseline_standardises_and_one_hot_encodes_with_a_cap():
    rng = np.random.default_rng(5)
    x_num = rng.normal(loc=100, scale=10, size=(500, 3))
    x_num[0, 1] = np.nan
    x_cat = np.stack([rng.integers(0, 100, 500), rng.integers(0, 3, 500)], axis=1)
    raw = evaluate.raw_features_baseline(x_num, x_cat, max_values_per_column=8)
    assert raw.dtype == np.float32 and np.isfinite(raw).all()
    assert raw.shape == (500, 3 + (8 + 1) + 3)  # 100 values capped to 8 + "infrequent"; 3 values kept as is
    assert np.allclose(raw[:, 0].mean(), 0, atol=1e-5) and np.allclose(raw[:, 0].std(), 1, atol=1e-3)
    assert raw[0, 1] == 0.0
    assert np.allclose(raw[:, 3:].sum(axis=1), 2.0)  # one hot per categorical column
    strings = evaluate.raw_features_baseline(None, np.array([["a"], ["b"], [None], ["a"]], dtype=object))
    assert strings.shape == (4, 3)
    with pytest.raises(UserError):
        evaluate.raw_features_baseline(None, None)


def planted_outliers(n: int = 600, n_out: int = 12, seed: int = 6) -> tuple[np.ndarray, np.ndarray]:
    x, _ = blobs([n // 3] * 3, spread=0.05, seed=seed)
    rng = np.random.default_rng(seed + 1000)  # not the blobs' generator: its first draws are the blob centres
    outliers = rng.normal(size=(n_out, x.shape[1])).astype(np.float32)  # random directions, far from every blob
    is_anomaly = np.r_[np.zeros(len(x), bool), np.ones(n_out, bool)]
    return np.vstack([x, outliers]), is_anomaly


@pytest.mark.parametrize("scorer", [evaluate.knn_score, evaluate.lof_score, lambda e: evaluate.isolation_forest_score(e, seed=0)])
def test_anomaly_scorers_rank_planted_outliers_on_top(scorer):
    x, is_anomaly = planted_outliers()
    scores = scorer(x)
    assert scores.shape == (len(x),) and np.isfinite(scores).all()
    metrics = evaluate.anomaly_metrics(scores, is_anomaly)
    assert metrics["auroc"] > 0.9 and metrics["pr_auc"] > 0.5
    assert metrics["n_anomalies"] == 12


def test_knn_score_excludes_self_and_handles_duplicates():
    x = np.array([[1, 0], [1, 0], [0, 1], [0.9, 0.1]], dtype=np.float32)
    scores = evaluate.knn_score(x, k=1)
    assert scores[0] == pytest.approx(0.0, abs=1e-6)  # its duplicate, not itself, at distance 0
    assert scores[2] > 0.5  # orthogonal to its nearest other event (cosine distance ~0.9)


def test_lof_on_a_shared_neighbour_graph_matches_scikit_learns_cosine_lof():
    from sklearn.neighbors import LocalOutlierFactor

    x, _ = planted_outliers(n=300, n_out=6)
    graph = evaluate.neighbour_graph(x, k=20)
    assert graph.indices.shape == (306, 20) and not (graph.indices == np.arange(306)[:, None]).any()
    reference = LocalOutlierFactor(n_neighbors=10, metric="cosine", algorithm="brute").fit(x)
    assert np.allclose(evaluate.lof_score(graph=graph, k=10), -reference.negative_outlier_factor_, rtol=1e-3)
    assert np.allclose(evaluate.knn_score(graph=graph, k=20), evaluate.knn_score(x, k=20))
    with pytest.raises(UserError, match="holds 20 neighbours"):
        evaluate.knn_score(graph=graph, k=30)


def test_anomaly_metrics_with_one_class_or_missing_labels():
    scores = np.arange(10, dtype=float)
    one_class = evaluate.anomaly_metrics(scores, np.zeros(10))
    assert one_class["auroc"] is None and one_class["pr_auc"] is None and one_class["reason"]
    labels = pd.Series(["false"] * 5 + ["true"] * 3 + [None] * 2)
    metrics = evaluate.anomaly_metrics(scores, labels)
    assert metrics["n"] == 8 and metrics["auroc"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="true/false"):
        evaluate.anomaly_metrics(scores, ["maybe"] * 10)


def test_neighbours_returns_the_most_similar_events_without_itself():
    x, y = blobs([50, 50], seed=7)
    idx, sims = evaluate.neighbours(x, 3, k=5)
    assert 3 not in idx and len(idx) == 5
    assert (y[idx] == y[3]).all()
    assert np.all(np.diff(sims) <= 0) and sims[0] <= 1.0 + 1e-6
    with pytest.raises(UserError, match="event index"):
        evaluate.neighbours(x, 100)


def test_contrast_finds_a_planted_over_represented_value_and_a_numeric_shift():
    rng = np.random.default_rng(8)
    n = 1_000
    frame = pd.DataFrame({
        "status_id": rng.choice([1, 2], size=n, p=[0.97, 0.03]),
        "service": rng.choice(["api", "web", "db"], size=n),
        "duration": rng.lognormal(3, 0.5, size=n),
        "trace_id": [f"t{i}" for i in range(n)],  # ID-like: skipped
    })
    selected = np.zeros(n, bool)
    selected[:50] = True
    frame.loc[:39, "status_id"] = 2
    frame.loc[:49, "duration"] = frame["duration"][:50] * 8
    table = evaluate.contrast(frame, selected)
    assert list(table.columns) == evaluate.CONTRAST_COLUMNS
    status = table[table["column"] == "status_id"].iloc[0]
    assert status["value"] == "2" and status["lift"] > 10 and status["share_selected"] >= 0.8
    duration = table[table["column"] == "duration"].iloc[0]
    assert duration["std_diff"] > 2 and "higher" in duration["description"]
    assert set(table["column"][:2]) == {"status_id", "duration"}  # the planted differences beat the noise in "service"
    assert "trace_id" not in set(table["column"])
    codes = pd.DataFrame({"code": [200.0] * 90 + [504.0] * 10 + [np.nan] * 5})
    picked = evaluate.contrast(codes, (np.arange(105) >= 90) & (np.arange(105) < 100))
    assert picked.iloc[0]["value"] == "504"  # integer codes print as integers even when NaN made them floats
    assert table["strength"].is_monotonic_decreasing
    assert evaluate.contrast(frame, np.zeros(n, bool)).empty
    with pytest.raises(UserError, match="selected_mask"):
        evaluate.contrast(frame, np.zeros(3, bool))


TUTORIAL = Path("/work/shared/data/tutorial/ocsf_logs.parquet")


@pytest.mark.skipif(not TUTORIAL.exists(), reason="tutorial data not available in this checkout")
def test_raw_baseline_scorecard_on_the_tutorial_data_copes_with_73_failures():
    frame = pd.read_parquet(TUTORIAL)
    numeric = frame.select_dtypes("number").drop(columns=["status_id"]).to_numpy()
    categorical = frame[["class_name", "service", "level", "activity_name"]].to_numpy()
    raw = evaluate.raw_features_baseline(numeric, categorical)
    card = evaluate.scorecard(raw, frame["status_id"], max_points=3_000)
    assert dict(card.classes)["2"] == 73
    assert card.silhouette is not None and -1 <= card.silhouette <= 1
    assert 0 <= card.knn_balanced_accuracy <= 1


def test_verdict_says_neighbours_separate_when_only_knn_is_good():
    card = evaluate.Scorecard(silhouette=0.05, knn_accuracy=0.97, davies_bouldin=5.0, stability=0.99,
                              knn_balanced_accuracy=0.95, classes=(("Success", 900), ("Failure", 100)), n_labelled=1000)
    sentence = evaluate.verdict(card, "outcome")
    assert "told apart by their nearest neighbours (balanced kNN accuracy 0.95)" in sentence
    assert "do not form separate clusters (silhouette 0.05)" in sentence
