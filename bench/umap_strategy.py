"""Scratch benchmark: our UMAP strategy (fit on a stratified sample, transform the rest) vs plain umap-learn.

    .venv/bin/python bench/umap_strategy.py [--points 72000] [--dim 64] [--variants] [--evaluate]

Synthetic clustered embeddings (make_blobs, 30 centres of uneven size and spread). In one process:
numba warm-up (the cold JIT), the PCA first picture, our strategy, plain umap-learn fitted on all
points (warm, unseeded = its fastest), and trustworthiness (k=10, cosine) of both maps on the same
random 5,000 points. ``--variants`` adds spectral init and other sample sizes; ``--evaluate`` times
the scorecard and anomaly scorers on 72,000 x 256. The last line is one JSON document of figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import project  # noqa: E402

TRUST_POINTS = 5_000
TRUST_K = 10


def clustered_embeddings(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(30, 0.7))  # uneven cluster sizes, some rare
    sizes = np.maximum(1, np.round(weights * n).astype(int))
    sizes[-1] += n - sizes.sum()
    spreads = rng.uniform(2.0, 5.0, size=30)
    x, y = make_blobs(n_samples=sizes, n_features=dim, cluster_std=spreads, center_box=(-10, 10), random_state=seed)
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def trust(x: np.ndarray, coords: np.ndarray, rows: np.ndarray) -> float:
    from sklearn.manifold import trustworthiness

    return float(trustworthiness(x[rows], coords[rows], n_neighbors=TRUST_K, metric="cosine"))


CPU_SECONDS: dict[str, float] = {}  # process CPU time of the last timed call: less sensitive to other users of the cores


def timed(call, *args, **kwargs):
    started, cpu = time.perf_counter(), time.process_time()
    result = call(*args, **kwargs)
    CPU_SECONDS["last"] = time.process_time() - cpu
    return result, time.perf_counter() - started


def strategy_with_init(x, labels, params: project.UmapParams, init_kind: str):
    """Our strategy, but with umap-learn's own spectral init instead of our PCA init (a variant)."""
    rows = project.sample_rows(len(x), params.fit_sample, params.seed, labels)
    reducer = project._make_reducer(params, len(rows), init_kind, sampled=True)
    coords = np.empty((len(x), params.n_components), dtype=np.float32)
    coords[rows] = project._quietly(reducer.fit_transform, x[rows])
    rest = np.setdiff1d(np.arange(len(x)), rows)
    coords[rest] = project._quietly(project._transform, reducer, x[rest], params.seed)
    return coords


def bench_umap(args) -> dict:
    x, labels = clustered_embeddings(args.points, args.dim, args.seed)
    rows = np.random.default_rng(args.seed + 1).choice(len(x), size=min(TRUST_POINTS, len(x)), replace=False)
    figures: dict = {"points": len(x), "dim": args.dim}

    figures["warm_up_s"] = round(timed(project.warm_up_numba)[1], 2)
    print(f"numba warm-up (cold JIT):          {figures['warm_up_s']:6.2f} s")

    _, figures["first_picture_s"] = timed(project.pca_2d, x)
    print(f"PCA first picture:                 {figures['first_picture_s']:6.2f} s")

    params = project.UmapParams(seed=args.seed, fit_sample=args.fit_sample)
    coords, figures["full_map_s"] = timed(project.umap_project, x, params, labels=labels)
    figures["full_map_cpu_s"] = round(CPU_SECONDS["last"], 2)
    figures["trustworthiness"] = trust(x, coords, rows)
    print(f"ours (fit {args.fit_sample}, transform rest): {figures['full_map_s']:6.2f} s  "
          f"({figures['full_map_cpu_s']:.1f} CPU-s)  trust {figures['trustworthiness']:.4f}")

    if args.variants:
        for size in (12_000, 20_000):
            p = project.UmapParams(seed=args.seed, fit_sample=size)
            c, s = timed(project.umap_project, x, p, labels=labels)
            figures[f"fit{size}_s"], figures[f"fit{size}_trust"] = round(s, 2), trust(x, c, rows)
            print(f"ours, fit {size}:                   {s:6.2f} s  trust {figures[f'fit{size}_trust']:.4f}")
        c, s = timed(strategy_with_init, x, labels, params, "spectral")
        figures["spectral_init_s"], figures["spectral_init_trust"] = round(s, 2), trust(x, c, rows)
        print(f"ours, spectral init:               {s:6.2f} s  trust {figures['spectral_init_trust']:.4f}")

    import umap

    plain = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine")
    plain_coords, figures["plain_umap_s"] = timed(project._quietly, plain.fit_transform, x)
    figures["plain_umap_cpu_s"] = round(CPU_SECONDS["last"], 2)
    figures["plain_umap_trustworthiness"] = trust(x, plain_coords, rows)
    print(f"plain umap-learn on all points:    {figures['plain_umap_s']:6.2f} s  "
          f"({figures['plain_umap_cpu_s']:.1f} CPU-s)  trust {figures['plain_umap_trustworthiness']:.4f}")
    return figures


def bench_evaluate(args) -> dict:
    from engine import evaluate

    rng = np.random.default_rng(args.seed)
    x, labels = clustered_embeddings(args.points, 256, args.seed)
    x += rng.normal(scale=0.5, size=x.shape).astype(np.float32)
    figures: dict = {}
    shared: dict = {}
    for name, call in (
        ("scorecard_s", lambda: evaluate.scorecard(x, labels, perturbed=x * 1.01)),
        ("neighbour_graph_s", lambda: shared.setdefault("graph", evaluate.neighbour_graph(x))),
        ("knn_score_from_graph_s", lambda: evaluate.knn_score(graph=shared["graph"])),
        ("lof_score_from_graph_s", lambda: evaluate.lof_score(graph=shared["graph"])),
        ("isolation_forest_s", lambda: evaluate.isolation_forest_score(x, seed=0)),
    ):
        _, figures[name] = timed(call)
        print(f"{name:22s} {figures[name]:6.2f} s  ({len(x)} x 256)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=72_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--fit-sample", type=int, default=project.DEFAULT_FIT_SAMPLE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", action="store_true", help="also try other sample sizes and spectral init")
    parser.add_argument("--evaluate", action="store_true", help="time the scorecard and anomaly scorers instead")
    args = parser.parse_args()
    figures = bench_evaluate(args) if args.evaluate else bench_umap(args)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
