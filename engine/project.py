"""2-D / 3-D pictures of embeddings: PCA (instant) and UMAP (the map), plus a cache on disk.

The explorer shows a PCA picture first (well under a second for 72,000 x 256), then the UMAP map.
Plain umap-learn on 72,000 points takes ~20-24 s warm on 2 idle cores, so ``umap_project`` fits
UMAP on a stratified sample (``UmapParams.fit_sample`` points, rare classes of the stratifying
label kept whole) and places every other point the way ``UMAP.transform`` does (with its slow
Python initialisation loop vectorised). Every event still gets a position; the sample only
decides which points shape the layout. ``bench/umap_strategy.py``
measures time and trustworthiness of this strategy against plain umap-learn on all points.

Seeding. A fixed ``random_state`` makes umap-learn run single-threaded (about half the speed), and
its parallel SGD is not bit-reproducible anyway (Hogwild updates race between threads). So by
default ``seed`` fixes the sample choice and the initial layout (PCA of the sample, computed
here) and umap-learn runs unseeded and in parallel. The same seed then gives a similar map, not
the same one: measured on 30,000 clustered points, cluster centres moved by a median 5% of the
map's width between two runs (the worst by 40%). That is the default because speed is what the
analyst waits on, and the projection cache shows a computed map again unchanged;
``UmapParams(exact=True)`` also seeds umap-learn, for bit-for-bit repeatable maps (checked by
hand on 400 points) at about half the speed.

When unseeded, umap-learn draws from NumPy's global generator; this module never seeds or touches it.

Numba. The first UMAP fit in a process pays ~30 s of JIT whatever the on-disk cache holds, and
``transform`` has a first-call cost of its own; ``warm_up_numba`` pays both in the background at
app start. umap-learn's parallel kernels must not run from two threads at once (numba's thread
pool is not re-entrant), so every UMAP call here holds one module-level lock.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.errors import UserError

log = logging.getLogger(__name__)

UMAP_METRICS = ("cosine", "euclidean")
DEFAULT_N_NEIGHBORS = 15
DEFAULT_MIN_DIST = 0.1
# Sample UMAP is fitted on before transform() places the rest, and the SGD epochs of each step.
# Measured on 72,000 x 64 clustered points, 2 shared cores (bench/umap_strategy.py): 15,000 points,
# 100 fit epochs and 20 transform epochs took ~10 CPU-seconds (7.5-10.7 s wall, other users on the
# cores) with trustworthiness 0.932 vs 0.941 for plain umap-learn on all points (35-54 s wall in
# the same runs); umap-learn's own budgets (200 + 30 epochs) cost 35% more CPU for no gain in
# trustworthiness (0.928), as the PCA start already puts clusters in place.
DEFAULT_FIT_SAMPLE = 15_000
MIN_UMAP_POINTS = 10
MIN_FIT_SAMPLE = 100
# umap-learn switches from exact nearest neighbours to NN-descent (and, in transform, to the search
# index) at 4,096 points; a warm-up below that leaves the large-data code paths uncompiled.
WARM_UP_POINTS = 4_500
WARM_UP_TRANSFORM_POINTS = 300
# Strata beyond this many (a near-unique colour column) make stratification meaningless.
MAX_STRATA = 200
# A class whose proportional share of a sample falls below this keeps min(its size, this) members,
# so all 73 failures among 27,084 events are in a 20,000-event sample instead of ~54 of them.
RARE_CLASS_FLOOR = 500
FINGERPRINT_SAMPLE_ROWS = 1_024
FIT_EPOCHS_SAMPLED = 100
# Epochs for placing new points: umap-learn gives 100 up to 10,000 new points, else 30; 20 measured as good.
TRANSFORM_EPOCHS_FEW_POINTS = 100
TRANSFORM_EPOCHS = 20
TRANSFORM_MANY_POINTS = 10_000
INIT_MAX_COORD = 10.0  # umap-learn scales its own initialisations to this range
INIT_NOISE = 1e-4

_UMAP_LOCK = threading.RLock()
_WARM_LOCK = threading.Lock()
_warm = False


# --------------------------------------------------------------------------- input checks


def as_embedding_matrix(emb: Any, *, what: str = "embeddings") -> np.ndarray:
    """A C-contiguous float32 [N, d] copy of ``emb``, or UserError naming what is wrong with it."""
    array = np.asarray(emb)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"{what} must be a non-empty 2-D array [events, dims], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{what} must be numeric, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise UserError(f"{what} has {int(bad.sum())} rows with NaN or infinite values (first: row {int(np.argmax(bad))})")
    return array


def l2_normalise(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: cosine geometry as dot products."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


# --------------------------------------------------------------------------- sampling


def label_codes(labels: Any, n: int, *, what: str = "labels") -> np.ndarray:
    """Integer codes for any label array (strings, numbers, NaN); missing values get code -1."""
    values = pd.Series(np.asarray(labels, dtype=object) if not isinstance(labels, pd.Series) else labels.to_numpy())
    if len(values) != n:
        raise UserError(f"{what} has {len(values)} values but there are {n} embeddings")
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64)


def _water_fill(counts: np.ndarray, size: int) -> np.ndarray:
    """Largest equal cap per class so the total fits in size; leftovers go one each to the biggest classes."""
    lo, hi = 0, int(counts.max())
    while lo < hi:  # largest cap with sum(min(counts, cap)) <= size
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() <= size:
            lo = mid
        else:
            hi = mid - 1
    allocation = np.minimum(counts, lo)
    leftover = size - int(allocation.sum())
    for i in np.argsort(-counts, kind="stable")[:leftover]:
        if allocation[i] < counts[i]:
            allocation[i] += 1
    return allocation


def _proportional(available: np.ndarray, budget: int) -> np.ndarray:
    """Split budget proportionally to available, largest-remainder rounding, never above available."""
    if budget <= 0 or available.sum() == 0:
        return np.zeros_like(available)
    exact = available * (budget / available.sum())
    share = np.minimum(np.floor(exact).astype(np.int64), available)
    for i in np.argsort(-(exact - share), kind="stable"):
        if share.sum() >= budget:
            break
        if share[i] < available[i]:
            share[i] += 1
    return share


def stratified_sample(codes: np.ndarray, size: int, seed: int, *, floor: int = RARE_CLASS_FLOOR) -> np.ndarray:
    """Sorted row indices of a sample of at most ``size`` rows, stratified by integer label ``codes``.

    Proportional allocation, except that a class whose proportional share would fall below
    ``floor`` keeps min(its size, floor) members (all 73 failures of the tutorial data, not ~14),
    the other classes sharing the rest in proportion. When even the floors do not fit, every class
    gets an equal cap. With one class, or more than MAX_STRATA classes, the sample is uniform.
    """
    n = len(codes)
    rng = np.random.default_rng(seed)
    if size >= n:
        return np.arange(n)
    classes, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    if len(classes) > MAX_STRATA or len(classes) < 2:
        return np.sort(rng.choice(n, size=size, replace=False))
    allocation = _allocate(counts, size, floor)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picked = [
        rng.choice(order[start:start + count], size=take, replace=False)
        for start, count, take in zip(starts, counts, allocation)
        if take > 0
    ]
    return np.sort(np.concatenate(picked))


def _allocate(counts: np.ndarray, size: int, floor: int) -> np.ndarray:
    floors = np.minimum(counts, floor)
    protected = np.zeros(len(counts), dtype=bool)
    while True:  # protecting a class shrinks the others' shares, which may push another below its floor
        free = ~protected
        budget = size - int(floors[protected].sum())
        if budget < 0 or not free.any():
            return _water_fill(counts, size)
        share = np.where(free, budget * counts / counts[free].sum(), np.inf)
        newly = free & (share < floors)
        if not newly.any():
            break
        protected |= newly
    allocation = np.where(protected, floors, 0)
    allocation[free] = _proportional(counts[free], budget)
    return allocation


def sample_rows(n: int, size: int, seed: int, labels: Any = None) -> np.ndarray:
    """Row indices to fit on: stratified by ``labels`` when given, uniform otherwise."""
    if size >= n:
        return np.arange(n)
    if labels is None:
        return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    return stratified_sample(label_codes(labels, n), size, seed)


# --------------------------------------------------------------------------- PCA


def pca_2d(emb: Any, n_components: int = 2) -> np.ndarray:
    """PCA of the embeddings to 2 or 3 dimensions, float32 [N, n_components].

    Uses the covariance-eigendecomposition solver: one d x d covariance (256 x 256) instead of an SVD
    of the N x d matrix, exact and deterministic, ~0.1 s for 72,000 x 256.
    """
    from sklearn.decomposition import PCA

    if n_components not in (2, 3):
        raise UserError(f"n_components must be 2 or 3, got n_components={n_components!r}")
    array = as_embedding_matrix(emb)
    n, d = array.shape
    if n < 2:
        return np.zeros((n, n_components), dtype=np.float32)
    k = min(n_components, d, n)
    coords = PCA(n_components=k, svd_solver="covariance_eigh").fit_transform(array).astype(np.float32)
    if k < n_components:  # fewer dims than asked (d == 1): pad so callers always get n_components columns
        coords = np.hstack([coords, np.zeros((n, n_components - k), dtype=np.float32)])
    return coords


# --------------------------------------------------------------------------- UMAP


@dataclass(frozen=True)
class UmapParams:
    """UMAP settings; ``to_dict()`` is what goes into the projection cache key."""

    n_components: int = 2
    n_neighbors: int = DEFAULT_N_NEIGHBORS
    min_dist: float = DEFAULT_MIN_DIST
    metric: str = "cosine"
    seed: int = 0
    fit_sample: int = DEFAULT_FIT_SAMPLE  # fit on this many points, transform() the rest
    exact: bool = False  # also seed umap-learn itself: bit-repeatable, single-threaded, ~2x slower (see module doc)

    def __post_init__(self) -> None:
        def check(ok: bool, rule: str, name: str) -> None:
            if not ok:
                raise UserError(f"{name} must be {rule}, got {name}={getattr(self, name)!r}")

        check(self.n_components in (2, 3), "2 or 3", "n_components")
        check(isinstance(self.n_neighbors, int) and 2 <= self.n_neighbors <= 200, "an integer in [2, 200]", "n_neighbors")
        check(isinstance(self.min_dist, (int, float)) and 0.0 <= self.min_dist <= 1.0, "in [0, 1]", "min_dist")
        check(self.metric in UMAP_METRICS, f"one of {UMAP_METRICS}", "metric")
        check(isinstance(self.seed, int) and self.seed >= 0, "a non-negative integer", "seed")
        check(isinstance(self.fit_sample, int) and self.fit_sample >= MIN_FIT_SAMPLE, f"an integer >= {MIN_FIT_SAMPLE}", "fit_sample")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _initial_layout(sample: np.ndarray, params: UmapParams) -> np.ndarray:
    """Deterministic start for the layout: PCA of the (normalised, for cosine) sample, scaled like umap-learn's."""
    base = l2_normalise(sample) if params.metric == "cosine" else sample
    coords = pca_2d(base, params.n_components).astype(np.float64)
    scale = np.abs(coords).max()
    coords = coords * (INIT_MAX_COORD / scale) if scale > 0 else coords
    # Tiny seeded noise: umap-learn needs distinct starting points (its own inits add the same).
    rng = np.random.default_rng(params.seed)
    return (coords + rng.normal(scale=INIT_NOISE, size=coords.shape)).astype(np.float32)


def _make_reducer(params: UmapParams, n_fit: int, init: np.ndarray | str, *, sampled: bool):
    import umap  # deferred: importing umap pulls in numba (~2 s)

    # Fitting everything: umap-learn's own epoch budget (500 up to 10,000 points, 200 above).
    # A fit sample gets FIT_EPOCHS_SAMPLED: the transform step refines the picture anyway.
    n_epochs = FIT_EPOCHS_SAMPLED if sampled else None
    return umap.UMAP(
        n_components=params.n_components,
        n_neighbors=min(params.n_neighbors, n_fit - 1),
        min_dist=params.min_dist,
        metric=params.metric,
        init=init,
        n_epochs=n_epochs,
        random_state=params.seed if params.exact else None,
        n_jobs=1 if params.exact else -1,
    )


def _graph_init(graph, fitted: np.ndarray) -> np.ndarray:
    """Starting positions for new points: the weighted mean of their fitted neighbours' positions.

    The same rule as umap-learn's ``init_graph_transform`` (a point with a weight-1 neighbour, an
    exact duplicate, starts on it), vectorised: umap-learn's version loops over rows in Python with
    a sparse slice each, ~10 s of the 60,000-point transform on this machine. A point without any
    neighbour (umap-learn leaves NaN, which never recovers) starts at the centre of the map.
    """
    import scipy.sparse

    graph = scipy.sparse.csr_matrix(graph, dtype=np.float64)
    graph.eliminate_zeros()
    sums = np.asarray(graph.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    start = (scipy.sparse.diags(scale) @ graph @ fitted.astype(np.float64)).astype(np.float32)
    rows = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
    exact = np.flatnonzero(graph.data == 1.0)
    exact_rows, first = np.unique(rows[exact], return_index=True)
    start[exact_rows] = fitted[graph.indices[exact[first]]]
    start[sums == 0] = fitted.mean(axis=0)
    return start


def _transform(reducer, points: np.ndarray, seed: int) -> np.ndarray:
    """``reducer.transform(points)`` with the slow Python initialisation replaced by ``_graph_init``.

    umap-learn computes the new points' neighbour graph (``transform_mode="graph"``, its public
    switch); the rest mirrors the tail of umap-learn 0.5.12's ``UMAP.transform``: drop weak edges,
    sample edges by weight, and run the same SGD with the fitted points held fixed.
    """
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import make_epochs_per_sample

    reducer.transform_mode = "graph"
    try:
        graph = reducer.transform(points).tocoo()
    finally:
        reducer.transform_mode = "embedding"
    fitted = np.asarray(reducer.embedding_, dtype=np.float32)
    start = _graph_init(graph, fitted)
    n_epochs = TRANSFORM_EPOCHS_FEW_POINTS if graph.shape[0] <= TRANSFORM_MANY_POINTS else TRANSFORM_EPOCHS
    graph.data[graph.data < graph.data.max() / float(n_epochs)] = 0.0
    graph.eliminate_zeros()
    rng_state = np.random.default_rng(seed).integers(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 3).astype(np.int64)
    return optimize_layout_euclidean(
        start, fitted.copy(), graph.row, graph.col, n_epochs, graph.shape[1],
        make_epochs_per_sample(graph.data, n_epochs), reducer._a, reducer._b, rng_state,
        reducer.repulsion_strength, reducer._initial_alpha / 4.0, reducer.negative_sample_rate,
        reducer.random_state is None,
    )


def _quietly(call, *args):
    with warnings.catch_warnings():
        # umap-learn warns about n_jobs/random_state trade-offs and sklearn renames we chose knowingly.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        return call(*args)


def umap_project(emb: Any, params: UmapParams = UmapParams(), *, labels: Any = None) -> np.ndarray:
    """UMAP coordinates for every row of ``emb``, float32 [N, n_components], rows in input order.

    Fits on at most ``params.fit_sample`` rows (stratified by ``labels`` when given: pass the column
    the map will be coloured by, and put its name in the cache key) and places the others with
    ``transform``. With N <= fit_sample this is plain umap-learn on all points.
    """
    array = as_embedding_matrix(emb)
    n = array.shape[0]
    if n < MIN_UMAP_POINTS:
        raise UserError(f"UMAP needs at least {MIN_UMAP_POINTS} events, got {n}")
    fit_rows = sample_rows(n, params.fit_sample, params.seed, labels)
    sample = array[fit_rows]
    init = _initial_layout(sample, params)
    started = time.perf_counter()
    with _UMAP_LOCK:
        reducer = _make_reducer(params, len(fit_rows), init, sampled=len(fit_rows) < n)
        fitted = _quietly(reducer.fit_transform, sample)
        if len(fit_rows) == n:
            coords = fitted
        else:
            rest = np.setdiff1d(np.arange(n), fit_rows, assume_unique=True)
            coords = np.empty((n, params.n_components), dtype=np.float32)
            coords[fit_rows] = fitted
            coords[rest] = _quietly(_transform, reducer, array[rest], params.seed)
    log.info("UMAP of %d points (fit on %d) in %.1f s", n, len(fit_rows), time.perf_counter() - started)
    return np.asarray(coords, dtype=np.float32)


def warm_up_numba(seed: int = 0) -> float:
    """Compile umap-learn's numba kernels (fit above 4,096 points, then transform) so later maps start at once.

    Idempotent and thread-safe: the first caller compiles, concurrent callers wait for it, later
    callers return at once. Returns the seconds this call spent (0.0 when already warm). Compiles the
    default parallel path; ``UmapParams(exact=True)`` maps still pay their own first-call JIT.
    """
    global _warm
    with _WARM_LOCK:
        if _warm:
            return 0.0
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        # Clustered points, not uniform noise: realistic neighbour graphs exercise the same code paths.
        centres = rng.normal(size=(8, 16)).astype(np.float32) * 4
        points = centres[rng.integers(0, 8, WARM_UP_POINTS + WARM_UP_TRANSFORM_POINTS)]
        points += rng.normal(size=points.shape).astype(np.float32)
        fit_part, transform_part = points[:WARM_UP_POINTS], points[WARM_UP_POINTS:]
        params = UmapParams(seed=seed, fit_sample=WARM_UP_POINTS)
        with _UMAP_LOCK:
            reducer = _make_reducer(params, WARM_UP_POINTS, _initial_layout(fit_part, params), sampled=True)
            _quietly(reducer.fit_transform, fit_part)
            _quietly(_transform, reducer, transform_part, seed)
        _warm = True
        elapsed = time.perf_counter() - started
        log.info("numba warm-up for UMAP done in %.1f s", elapsed)
        return elapsed


def is_warm() -> bool:
    """True once ``warm_up_numba`` has finished in this process."""
    return _warm


# --------------------------------------------------------------------------- cache


def data_fingerprint(data: Any, *, rows_to_hash: int = FINGERPRINT_SAMPLE_ROWS) -> str:
    """A cheap, stable identity for an embedding array or an events frame.

    Shape, dtype (or column names and dtypes) and the bytes of up to ``rows_to_hash`` evenly spaced
    rows plus the last row: milliseconds for 72,000 x 256, and any re-embedding (new checkpoint,
    new data) changes the sampled rows. A change confined to unsampled rows goes unnoticed: that is
    the price of being cheap, so callers also key on the run and checkpoint.
    """
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(data, pd.DataFrame):
        n = len(data)
        rows = _strided_rows(n, rows_to_hash)
        header = [list(data.shape), [str(c) for c in data.columns], [str(t) for t in data.dtypes]]
        digest.update(json.dumps(header).encode())
        picked = data.iloc[rows]
        try:
            hashed = pd.util.hash_pandas_object(picked, index=False).to_numpy()
        except TypeError:  # unhashable cells (lists, dicts): hash their text
            hashed = pd.util.hash_pandas_object(picked.astype(str), index=False).to_numpy()
        digest.update(hashed.tobytes())
    else:
        array = np.asarray(data)
        digest.update(json.dumps([list(array.shape), array.dtype.str]).encode())
        if array.ndim > 0 and array.shape[0] > 0:
            digest.update(np.ascontiguousarray(array[_strided_rows(array.shape[0], rows_to_hash)]).tobytes())
    return digest.hexdigest()


def _strided_rows(n: int, count: int) -> np.ndarray:
    if n == 0:
        return np.arange(0)
    step = max(1, n // count)
    return np.unique(np.concatenate([np.arange(0, n, step), [n - 1]]))


def checkpoint_identity(path: str | os.PathLike) -> str:
    """Name, size and modification time of a checkpoint file: changes when training rewrites it."""
    stat = Path(path).stat()
    return f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns}"


_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ProjectionKey:
    """What a cached projection depends on; any part changing means a different entry."""

    run_id: str
    checkpoint: str  # use checkpoint_identity(): "best" alone does not change when training continues
    data_fingerprint: str
    method: str  # "pca" | "umap"
    params: str  # canonical JSON of the method's parameters (build with ProjectionKey.make)

    @classmethod
    def make(cls, run_id: str, checkpoint: str, data_fingerprint: str, method: str, params: Mapping[str, Any]) -> "ProjectionKey":
        for name, value in params.items():
            if not isinstance(value, _JSON_SCALARS):
                raise UserError(f"projection parameter {name!r} must be a plain JSON value, got {type(value).__name__}")
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"projection parameter {name!r} must be finite, got {value!r}")
        canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
        return cls(str(run_id), str(checkpoint), str(data_fingerprint), str(method), canonical)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "checkpoint": self.checkpoint, "data_fingerprint": self.data_fingerprint,
                "method": self.method, "params": json.loads(self.params)}

    def digest(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]


class ProjectionCache:
    """Projections on disk (``<method>-<digest>.npy`` + ``.json`` metadata; plain arrays, allow_pickle=False), e.g. in a run folder.

    ``get`` returns the array only when the stored metadata matches the whole key, so a changed run,
    checkpoint, data fingerprint, method or parameter is a miss. Writes are atomic; at most
    ``max_entries`` projections are kept (oldest dropped first).
    """

    def __init__(self, directory: str | os.PathLike, *, max_entries: int = 64) -> None:
        self.directory = Path(directory)
        self.max_entries = max_entries

    def _paths(self, key: ProjectionKey) -> tuple[Path, Path]:
        stem = f"{_safe(key.method)}-{key.digest()}"
        return self.directory / f"{stem}.npy", self.directory / f"{stem}.json"

    def get(self, key: ProjectionKey) -> np.ndarray | None:
        array_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("key") != key.to_json():
                return None
            array = np.load(array_path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # a damaged entry is a miss, not a crash
            log.warning("ignoring unreadable cached projection %s: %s", array_path.name, exc)
            return None
        if list(array.shape) != meta.get("shape") or array.dtype.str != meta.get("dtype"):
            log.warning("ignoring cached projection %s: shape or dtype differs from its metadata", array_path.name)
            return None
        return array

    def put(self, key: ProjectionKey, array: np.ndarray) -> Path:
        array = np.ascontiguousarray(array)
        array_path, meta_path = self._paths(key)
        buffer = BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(array_path, buffer.getvalue())
        meta = {"key": key.to_json(), "shape": list(array.shape), "dtype": array.dtype.str, "created": time.time()}
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
        self._prune()
        return array_path

    def clear(self) -> None:
        for path in self.directory.glob("*.json"):
            self._remove(path)

    def _prune(self) -> None:
        entries = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        for path in entries[: max(0, len(entries) - self.max_entries)]:
            self._remove(path)

    @staticmethod
    def _remove(meta_path: Path) -> None:
        for path in (meta_path, meta_path.with_suffix(".npy")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:32] or "projection"
