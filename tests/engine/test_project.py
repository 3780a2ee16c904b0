"""engine.project: PCA and UMAP projections, stratified sampling, numba warm-up, the projection cache.

umap-learn's numba JIT costs ~30 s on the first UMAP call of a process; every UMAP call below uses
a few hundred points so only that one-off cost is paid.
"""
from __future__ import annotations

import json
import os
import threading

import numpy as np
import pandas as pd
import pytest

from engine import project
from engine.errors import UserError


def blobs(n_per_class: list[int], dim: int = 16, spread: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(n_per_class), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + rng.normal(scale=spread, size=(m, dim)) for c, m in zip(centres, n_per_class)])
    return x.astype(np.float32), np.repeat(np.arange(len(n_per_class)), n_per_class)


def neighbour_label_agreement(coords: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    """Share of ``rows`` whose nearest other point in the picture has the same label."""
    d = ((coords[rows, None, :] - coords[None, :, :]) ** 2).sum(-1)
    d[np.arange(len(rows)), rows] = np.inf
    return float((labels[d.argmin(axis=1)] == labels[rows]).mean())


# --------------------------------------------------------------------------- PCA


@pytest.mark.parametrize("n_components", [2, 3])
def test_pca_gives_finite_coordinates_of_the_asked_shape_that_keep_clusters_apart(n_components):
    x, y = blobs([200, 200, 200])
    coords = project.pca_2d(x, n_components)
    assert coords.shape == (600, n_components) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    assert neighbour_label_agreement(coords, y, np.arange(0, 600, 7)) > 0.95


def test_pca_rejects_bad_input_with_a_user_error():
    x, _ = blobs([20])
    with pytest.raises(UserError, match="n_components must be 2 or 3"):
        project.pca_2d(x, 4)
    x[2, 3] = np.inf
    with pytest.raises(UserError, match="row 2"):
        project.pca_2d(x)
    with pytest.raises(UserError, match="2-D array"):
        project.pca_2d(np.zeros(5))
    assert project.pca_2d(np.ones((1, 4))).shape == (1, 2)  # one event: a point at the origin, not a crash


# --------------------------------------------------------------------------- sampling


def test_stratified_sample_keeps_rare_classes_whole_and_proportions_close():
    codes = np.r_[np.zeros(27_011, int), np.ones(73, int)]  # the tutorial's 73 failures
    rows = project.stratified_sample(codes, 5_000, seed=0)
    assert len(rows) == 5_000 and len(np.unique(rows)) == 5_000 and np.all(np.diff(rows) > 0)
    assert (codes[rows] == 1).sum() == 73
    big = np.repeat([0, 1, 2], [30_000, 20_000, 10_000])
    share = np.bincount(big[project.stratified_sample(big, 6_000, seed=1)]) / 6_000
    assert np.allclose(share, [0.5, 1 / 3, 1 / 6], atol=0.03)
    assert np.array_equal(project.stratified_sample(big, 100, seed=3), project.stratified_sample(big, 100, seed=3))
    assert not np.array_equal(project.stratified_sample(big, 100, seed=3), project.stratified_sample(big, 100, seed=4))


def test_stratified_sample_shares_a_budget_smaller_than_the_floors_equally():
    codes = np.repeat(np.arange(4), [5_000, 3_000, 40, 2_000])
    rows = project.stratified_sample(codes, 1_000, seed=0, floor=500)
    counts = np.bincount(codes[rows], minlength=4)
    assert counts.sum() == 1_000 and counts[2] == 40
    assert counts.max() - counts[[0, 1, 3]].min() <= 1


def test_sample_rows_with_missing_labels_and_without_labels():
    labels = pd.Series(["a"] * 900 + ["b"] * 50 + [None] * 50)
    rows = project.sample_rows(1_000, 300, seed=0, labels=labels)
    assert len(rows) == 300 and (labels[rows] == "b").sum() == 50 and labels[rows].isna().sum() == 50
    assert len(project.sample_rows(1_000, 300, seed=0)) == 300
    assert np.array_equal(project.sample_rows(10, 300, seed=0), np.arange(10))
    with pytest.raises(UserError, match="labels has 3 values"):
        project.sample_rows(10, 5, seed=0, labels=[1, 2, 3])


# --------------------------------------------------------------------------- UMAP


def test_umap_params_validate_with_messages_naming_the_value():
    with pytest.raises(UserError, match="n_neighbors"):
        project.UmapParams(n_neighbors=1)
    with pytest.raises(UserError, match="min_dist"):
        project.UmapParams(min_dist=2.0)
    with pytest.raises(UserError, match="metric"):
        project.UmapParams(metric="manhattan")
    assert project.UmapParams().to_dict()["n_neighbors"] == 15


def test_graph_init_matches_umap_learns_initialisation():
    import scipy.sparse
    from umap.umap_ import init_graph_transform

    graph = scipy.sparse.random(60, 40, density=0.2, random_state=1, format="lil")
    graph[3, 5] = 1.0  # an exact duplicate of fitted point 5
    graph[7, :] = 0.0  # no neighbour at all
    graph = graph.tocsr()
    fitted = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    ours, theirs = project._graph_init(graph, fitted), init_graph_transform(graph, fitted)
    has_neighbours = ~np.isnan(theirs).any(axis=1)
    assert np.allclose(ours[has_neighbours], theirs[has_neighbours], atol=1e-5)
    assert np.array_equal(ours[3], fitted[5])
    assert np.allclose(ours[7], fitted.mean(axis=0))  # umap-learn leaves NaN here


def test_umap_maps_every_point_in_2d_and_3d_and_keeps_clusters_apart():
    x, y = blobs([150, 150, 100], seed=1)
    sampled = project.UmapParams(fit_sample=150, seed=3)  # fit on 150 points, transform() the other 250
    coords = project.umap_project(x, sampled, labels=y)
    assert coords.shape == (400, 2) and coords.dtype == np.float32 and np.isfinite(coords).all()
    fit_rows = project.sample_rows(400, 150, 3, y)
    placed = np.setdiff1d(np.arange(400), fit_rows)
    assert neighbour_label_agreement(coords, y, placed) > 0.9  # transformed points land in their own cluster

    flat = project.umap_project(x, project.UmapParams(n_components=3, n_neighbors=10, seed=3))
    assert flat.shape == (400, 3) and np.isfinite(flat).all()
    assert neighbour_label_agreement(flat, y, np.arange(0, 400, 3)) > 0.9

    with pytest.raises(UserError, match="at least 10 events"):
        project.umap_project(x[:5])


def test_warm_up_is_idempotent_and_thread_safe(monkeypatch):
    monkeypatch.setattr(project, "_warm", False)
    monkeypatch.setattr(project, "WARM_UP_POINTS", 300)  # the real warm-up uses 4,500; the contract is the same
    monkeypatch.setattr(project, "WARM_UP_TRANSFORM_POINTS", 50)
    assert not project.is_warm()
    spent: list[float] = []
    threads = [threading.Thread(target=lambda: spent.append(project.warm_up_numba())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert project.is_warm()
    assert sum(s > 0 for s in spent) == 1 and spent.count(0.0) == 2  # one thread compiled, the others waited
    assert project.warm_up_numba() == 0.0


# --------------------------------------------------------------------------- fingerprint and cache


def test_data_fingerprint_is_stable_and_sees_changes():
    x, _ = blobs([300])
    assert project.data_fingerprint(x) == project.data_fingerprint(x.copy())
    changed = x.copy()
    changed[0, 0] += 1.0
    assert project.data_fingerprint(changed) != project.data_fingerprint(x)
    assert project.data_fingerprint(x[:-1]) != project.data_fingerprint(x)
    assert project.data_fingerprint(x.astype(np.float64)) != project.data_fingerprint(x)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "tags": [[1], [2], [3]]})
    assert project.data_fingerprint(frame) == project.data_fingerprint(frame.copy())
    assert project.data_fingerprint(frame) != project.data_fingerprint(frame.rename(columns={"a": "c"}))
    other = frame.copy()
    other.loc[2, "b"] = "z"
    assert project.data_fingerprint(other) != project.data_fingerprint(frame)


def key(**changes) -> project.ProjectionKey:
    parts = {"run_id": "run-1", "checkpoint": "best:100:1", "data_fingerprint": "abc", "method": "umap",
             "params": project.UmapParams().to_dict()}
    parts.update(changes)
    return project.ProjectionKey.make(parts["run_id"], parts["checkpoint"], parts["data_fingerprint"], parts["method"], parts["params"])


def test_cache_hit_miss_and_invalidation(tmp_path):
    cache = project.ProjectionCache(tmp_path / "projections")
    coords = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    assert cache.get(key()) is None
    cache.put(key(), coords)
    hit = cache.get(key())
    assert hit is not None and np.array_equal(hit, coords) and hit.dtype == np.float32
    assert cache.get(key(params=project.UmapParams(min_dist=0.2).to_dict())) is None
    assert cache.get(key(data_fingerprint="abd")) is None
    assert cache.get(key(checkpoint="best:100:2")) is None
    assert cache.get(key(run_id="run-2")) is None
    assert cache.get(key(method="pca")) is None
    meta = json.loads(next((tmp_path / "projections").glob("*.json")).read_text())
    assert meta["key"]["params"]["n_neighbors"] == 15 and meta["shape"] == [50, 2]
    assert not list((tmp_path / "projections").glob("*.tmp"))  # atomic writes leave no temp files


def test_cache_treats_a_damaged_entry_as_a_miss_and_keeps_at_most_max_entries(tmp_path):
    cache = project.ProjectionCache(tmp_path, max_entries=3)
    cache.put(key(), np.zeros((4, 2), np.float32))
    next(tmp_path.glob("*.npy")).write_bytes(b"not a numpy file")
    assert cache.get(key()) is None
    for i in range(5):
        cache.put(key(run_id=f"run-{i}"), np.full((3, 2), i, np.float32))
    assert len(list(tmp_path.glob("*.json"))) == 3 and len(list(tmp_path.glob("*.npy"))) == 3
    assert cache.get(key(run_id="run-4"))[0, 0] == 4
    cache.clear()
    assert not list(tmp_path.iterdir())


def test_projection_key_refuses_parameters_that_are_not_plain_json():
    with pytest.raises(UserError, match="plain JSON"):
        key(params={"labels": np.arange(3)})
    with pytest.raises(UserError, match="finite"):
        key(params={"min_dist": float("nan")})
    assert key(params={"b": 1, "a": 2}) == key(params={"a": 2, "b": 1})


def test_checkpoint_identity_changes_when_the_file_is_rewritten(tmp_path):
    checkpoint = tmp_path / "checkpoint_best.pt"
    checkpoint.write_bytes(b"epoch 1")
    first = project.checkpoint_identity(checkpoint)
    checkpoint.write_bytes(b"epoch 2 with more")
    os.utime(checkpoint, ns=(1, 2))
    assert project.checkpoint_identity(checkpoint) != first
    assert first.startswith("checkpoint_best.pt:")
