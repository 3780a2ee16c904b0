"""Batch inference: rows -> embeddings with a trained run's encoder and model.

Eval mode (BatchNorm uses its running statistics, no dropout) and no autograd, in batches, in
float32 whatever precision the run trained in, so the same row always gets the same embedding.
Rows come back in the order they went in.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd
import torch

from engine.errors import UserError
from engine.features import TabularTensors
from engine.runs import LoadedRun

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4096


def embed(
    loaded_run: LoadedRun,
    data: pd.DataFrame | TabularTensors,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Embeddings float32 [N, d_model] of a frame (encoded with the run's encoder) or of encoded tensors.

    ``on_progress(rows_done, rows_total)`` is called after each batch.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got batch_size={batch_size}")
    tensors = loaded_run.encoder.transform(data) if isinstance(data, pd.DataFrame) else data
    n_rows = len(tensors)
    model = loaded_run.model
    out = np.empty((n_rows, loaded_run.config.model.d_model), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, n_rows, batch_size):
            stop = min(start + batch_size, n_rows)
            batch = tensors.take(slice(start, stop)).to(loaded_run.device)
            x_num, x_cat = loaded_run.encoder.model_inputs(batch)
            out[start:stop] = model(x_num, x_cat).float().cpu().numpy()
            if on_progress is not None:
                on_progress(stop, n_rows)
    logger.info("embedded %d rows with %s", n_rows, loaded_run.run_dir.name)
    return out
