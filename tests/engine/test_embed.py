"""Batch inference: shape, row order, determinism in eval mode, batching, progress."""
from __future__ import annotations

import numpy as np
import pytest

from engine import runs
from engine.embed import embed
from engine.errors import UserError
from engine.train import train
from tests.engine.test_train import new_run, tiny_config, tiny_data, tiny_frame


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    config = tiny_config(epochs=1, d_model=24)
    data = tiny_data(config)
    run_dir = new_run(tmp_path_factory.mktemp("embed"), config, data)
    train(config, data, run_dir=run_dir)
    return runs.load_run(run_dir)


def test_embeddings_have_one_row_per_input_row(loaded):
    frame = tiny_frame(300, seed=5)
    out = embed(loaded, frame)
    assert out.shape == (300, 24) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.unique(out.round(5), axis=0).shape[0] > 250  # distinct rows give distinct embeddings


def test_row_order_is_preserved(loaded):
    frame = tiny_frame(200, seed=6)
    forward = embed(loaded, frame, batch_size=64)
    backward = embed(loaded, frame.iloc[::-1].reset_index(drop=True), batch_size=64)
    np.testing.assert_allclose(backward[::-1], forward, rtol=1e-5, atol=1e-5)


def test_eval_mode_is_deterministic_and_independent_of_batch_size(loaded):
    frame = tiny_frame(150, seed=7)
    first = embed(loaded, frame, batch_size=32)
    assert np.array_equal(first, embed(loaded, frame, batch_size=32))
    # BatchNorm uses running statistics in eval mode, so a row's embedding ignores its batch mates.
    np.testing.assert_allclose(embed(loaded, frame, batch_size=7), first, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embed(loaded, frame.iloc[:1]), first[:1], rtol=1e-5, atol=1e-5)


def test_embed_accepts_encoded_tensors_and_reports_progress(loaded):
    frame = tiny_frame(100, seed=8)
    seen = []
    out = embed(loaded, loaded.encoder.transform(frame), batch_size=40, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(40, 100), (80, 100), (100, 100)]
    np.testing.assert_allclose(out, embed(loaded, frame), rtol=1e-6, atol=1e-6)


def test_missing_columns_still_embed(loaded):
    frame = tiny_frame(50, seed=9).drop(columns=["http_request.http_method"])
    assert embed(loaded, frame).shape == (50, 24)


def test_bad_batch_size_is_a_user_error(loaded):
    with pytest.raises(UserError, match="batch_size"):
        embed(loaded, tiny_frame(10), batch_size=0)
