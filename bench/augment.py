"""How long ``AugmentationPolicy.views()`` takes on one training batch, beside the tutorial's loop.

A 512-row batch with 10 numeric, 25 categorical (vocabularies of 3 to 2,000 values) and 1 time
column, on CPU (and CUDA when present). The baseline, in the same run, is the tutorial series'
style: a Python loop over categorical columns drawing uniform replacements, and additive noise
(it does less: no per-field policy, no empirical distribution). Prints milliseconds per batch
(both views); the last line is one JSON object with ``augment_ms_per_batch`` (CPU) and
``baseline_ms_per_batch``. Usage: ``python bench/augment.py [--repeats N]``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.augment import AugmentationPolicy  # noqa: E402
from engine.features import FeatureEncoder  # noqa: E402
from engine.schema import ColumnSpec, ColumnType, Policy, Role, Schema  # noqa: E402

BATCH_ROWS = 512
N_NUMERIC = 10
N_CATEGORICAL = 25
N_FIT_ROWS = 20_000


def synthetic_frame(rng: np.random.Generator) -> tuple[pd.DataFrame, Schema]:
    """Events shaped like the demo data: skewed categories, heavy-tailed measures, epoch-ms times."""
    columns: dict[str, np.ndarray] = {"time": 1_700_000_000_000 + rng.integers(0, 7 * 86_400_000, N_FIT_ROWS)}
    specs = [ColumnSpec("time", ColumnType.TIMESTAMP, Role.TIME, Policy.TIME_JITTER, "event time")]
    for j in range(N_NUMERIC):
        columns[f"num{j}"] = rng.lognormal(6, 2, N_FIT_ROWS).round()
        specs.append(ColumnSpec(f"num{j}", ColumnType.NUMERIC, Role.MEASURE, Policy.JITTER, "measure", heavy_tailed=True))
    vocab_sizes = np.geomspace(3, 2_000, N_CATEGORICAL).astype(int)
    for j, size in enumerate(vocab_sizes):
        weights = 1.0 / np.arange(1, size + 1)  # Zipf-like, as real categories are
        columns[f"cat{j}"] = rng.choice(size, N_FIT_ROWS, p=weights / weights.sum()).astype(str)
        # A realistic mix: a few protected (outcome, identity), the rest swapped or masked.
        protected = j < 5
        policy = Policy.PROTECTED if protected else (Policy.SWAP if j % 3 else Policy.MASK)
        role = Role.OUTCOME if protected else Role.CONTEXT
        specs.append(ColumnSpec(f"cat{j}", ColumnType.CATEGORICAL, role, policy, "category", protected=protected))
    return pd.DataFrame(columns), Schema(columns=tuple(specs))


def ms_per_batch(policy: AugmentationPolicy, batch, generator: torch.Generator, repeats: int) -> float:
    for _ in range(20):  # warm-up: allocator, lazy device tensors
        policy.views(batch, generator)
    times = []
    for _ in range(repeats):
        if batch.numeric.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        policy.views(batch, generator)
        if batch.numeric.is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def tutorial_style_views(x_num: torch.Tensor, x_cat: torch.Tensor, cardinalities: list[int],
                         noise: float = 0.1, swap: float = 0.15) -> tuple:
    """The tutorial's augmentation: additive noise, and a Python loop swapping every categorical column."""
    views = []
    for _ in range(2):
        num = x_num + torch.randn_like(x_num) * noise
        cat = x_cat.clone()
        for col, card in enumerate(cardinalities):
            hit = torch.rand(cat.shape[0]) < swap
            cat[hit, col] = torch.randint(0, card, (int(hit.sum()),))
        views.append((num, cat))
    return tuple(views)


def baseline_ms_per_batch(encoder: FeatureEncoder, batch, repeats: int) -> float:
    x_num, x_cat = encoder.model_inputs(batch)
    cards = encoder.cardinalities
    for _ in range(20):
        tutorial_style_views(x_num, x_cat, cards)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tutorial_style_views(x_num, x_cat, cards)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    df, schema = synthetic_frame(np.random.default_rng(0))
    encoder = FeatureEncoder(schema).fit(df)
    policy = AugmentationPolicy.from_schema(schema, encoder)
    batch = encoder.transform(df.iloc[:BATCH_ROWS])
    figures = {"rows": BATCH_ROWS, "numeric": N_NUMERIC, "categorical": N_CATEGORICAL, "time": 1,
               "torch_threads": torch.get_num_threads()}
    cpu_ms = ms_per_batch(policy, batch, torch.Generator().manual_seed(0), args.repeats)
    print(f"views() on CPU: {cpu_ms:.3f} ms per {BATCH_ROWS}-row batch (both views, median of {args.repeats})")
    figures["augment_ms_per_batch"] = round(cpu_ms, 4)
    base_ms = baseline_ms_per_batch(encoder, batch, args.repeats)
    print(f"baseline (tutorial-style loop over columns): {base_ms:.3f} ms per batch; ours is {base_ms / cpu_ms:.1f}x faster")
    figures["baseline_ms_per_batch"] = round(base_ms, 4)
    figures["ratio"] = round(base_ms / cpu_ms, 2)
    if torch.cuda.is_available():
        cuda_ms = ms_per_batch(policy, batch.to("cuda"), torch.Generator(device="cuda").manual_seed(0), args.repeats)
        print(f"views() on CUDA: {cuda_ms:.3f} ms per {BATCH_ROWS}-row batch")
        figures["augment_ms_per_batch_cuda"] = round(cuda_ms, 4)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
