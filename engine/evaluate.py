"""Does a label separate in the embedding space, and what looks anomalous? scikit-learn does the maths.

- ``scorecard``: silhouette (cosine), kNN accuracy (k=10, 5-fold stratified CV; balanced accuracy
  too), Davies-Bouldin (on L2-normalised embeddings) and perturbation stability, each with a traffic
  light against the tutorial series' thresholds (Part 5), computed in the full embedding space.
- ``raw_features_baseline``: the "raw encoded features" representation to score the same way.
- ``knn_score`` / ``lof_score`` / ``isolation_forest_score`` + ``anomaly_metrics`` (Part 6).
- ``contrast``: what is different about a selection of events; ``neighbours``: nearest events.

Cosine geometry: for L2-normalised vectors the euclidean distance is sqrt(2 - 2 cos), a monotone
function of the cosine distance, so neighbour searches run as euclidean on normalised rows, which
takes scikit-learn's fast GEMM-based path and returns exactly the cosine neighbours.

Measured on 72,000 x 256 with 2 shared cores (bench/umap_strategy.py --evaluate): scorecard
~10-12 s (silhouette and kNN on a 20,000-event sample), the exact neighbour graph 35-46 s
(~1.3 TFLOP; build it once, then kNN and LOF scores take < 0.1 s), Isolation Forest ~1.6 s.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import UserError
from engine.project import as_embedding_matrix, l2_normalise, stratified_sample

log = logging.getLogger(__name__)

# Tutorial series thresholds (Part 5): a metric past GOOD is "good", past FAIR "fair", else "poor".
SILHOUETTE_GOOD = 0.5
SILHOUETTE_FAIR = 0.25  # Kaufman & Rousseeuw: 0.26-0.50 is weak but real structure
DAVIES_BOULDIN_GOOD = 1.0  # lower is better
DAVIES_BOULDIN_FAIR = 2.0
KNN_ACCURACY_GOOD = 0.85
KNN_ACCURACY_FAIR = 0.70
STABILITY_GOOD = 0.92
STABILITY_FAIR = 0.80
GOOD, FAIR, POOR = "good", "fair", "poor"

KNN_K = 10
KNN_FOLDS = 5
DEFAULT_MAX_POINTS = 20_000
MAX_SCORECARD_CLASSES = 200  # more distinct values than this: group the label first (top values + other)
RARE_SHARE = 0.01  # a class below 1% of events is called out in the verdict

ANOMALY_K = 20
IFOREST_TREES = 200

# The raw-features baseline: one-hot columns per categorical and in total (then "infrequent").
RAW_MAX_VALUES_PER_COLUMN = 32
RAW_MAX_ONEHOT_WIDTH = 512

CONTRAST_TOP_N = 20
CONTRAST_MAX_DISTINCT_NUMERIC_AS_CATEGORY = 20  # status_id, class_uid...: values, not quantities
CONTRAST_ID_LIKE_SHARE = 0.5  # a column with distinct values on over half its rows is an ID: skip it
CONTRAST_MIN_COUNT = 2  # a value must occur this often in the selection to be called over-represented
NA_VALUE = "<NA>"


# --------------------------------------------------------------------------- scorecard


@dataclass(frozen=True)
class Scorecard:
    """Separation metrics for one label in one representation; None means "could not be computed" (see reasons)."""

    silhouette: float | None
    knn_accuracy: float | None
    davies_bouldin: float | None
    stability: float | None
    knn_balanced_accuracy: float | None = None
    silhouette_balanced: float | None = None  # mean of per-class mean silhouettes: every class counts once
    n_events: int = 0
    n_labelled: int = 0
    n_sampled: int = 0
    classes: tuple[tuple[str, int], ...] = ()  # (label value, events), largest first
    reasons: tuple[tuple[str, str], ...] = ()  # (metric, why it is None)
    notes: tuple[str, ...] = ()
    knn_k: int = KNN_K

    @property
    def lights(self) -> dict[str, str | None]:
        """Traffic light per scorecard metric.

        The kNN light follows *balanced* accuracy: with 73 failures among 27,084 events, always
        answering "success" scores 0.997 plain accuracy while telling nothing apart; balanced
        accuracy (mean recall per class) sits at chance (0.5) for that and only passes 0.85 when
        the rare class is found too. Silhouette keeps the plain mean: it does not reward ignoring
        a rare class (mixed-in rare points pull the majority's silhouette towards 0).
        """
        return {
            "silhouette": traffic_light("silhouette", self.silhouette),
            "knn_accuracy": traffic_light("knn_accuracy", self.knn_balanced_accuracy),
            "davies_bouldin": traffic_light("davies_bouldin", self.davies_bouldin),
            "stability": traffic_light("stability", self.stability),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "silhouette": _json_float(self.silhouette),
            "knn_accuracy": _json_float(self.knn_accuracy),
            "davies_bouldin": _json_float(self.davies_bouldin),
            "stability": _json_float(self.stability),
            "knn_balanced_accuracy": _json_float(self.knn_balanced_accuracy),
            "silhouette_balanced": _json_float(self.silhouette_balanced),
            "lights": self.lights,
            "thresholds": THRESHOLDS,
            "n_events": self.n_events,
            "n_labelled": self.n_labelled,
            "n_sampled": self.n_sampled,
            "knn_k": self.knn_k,
            "classes": [{"label": label, "count": count} for label, count in self.classes],
            "reasons": dict(self.reasons),
            "notes": list(self.notes),
        }


THRESHOLDS = {
    "silhouette": {"good": SILHOUETTE_GOOD, "fair": SILHOUETTE_FAIR, "higher_is_better": True},
    "knn_accuracy": {"good": KNN_ACCURACY_GOOD, "fair": KNN_ACCURACY_FAIR, "higher_is_better": True,
                     "light_uses": "knn_balanced_accuracy"},
    "davies_bouldin": {"good": DAVIES_BOULDIN_GOOD, "fair": DAVIES_BOULDIN_FAIR, "higher_is_better": False},
    "stability": {"good": STABILITY_GOOD, "fair": STABILITY_FAIR, "higher_is_better": True},
}


def traffic_light(metric: str, value: float | None) -> str | None:
    """"good" past the tutorial threshold, "fair" inside the fair band, "poor" beyond; None for None."""
    if value is None or not math.isfinite(value):
        return None
    limits = THRESHOLDS[metric]
    if limits["higher_is_better"]:
        return GOOD if value > limits["good"] else FAIR if value > limits["fair"] else POOR
    return GOOD if value < limits["good"] else FAIR if value < limits["fair"] else POOR


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _present(values: Any, n: int, what: str, per: str) -> tuple[np.ndarray, pd.Series]:
    """(mask of rows with a value, those values) for a per-row array that must have ``n`` entries."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    if len(series) != n:
        raise UserError(f"{what} has {len(series)} values but there are {n} {per}")
    series = series.reset_index(drop=True)
    keep = ~series.isna().to_numpy()
    return keep, series[keep]


def _clean_labels(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a label, label text per such row). Integer-valued floats print as integers (1, not 1.0)."""
    keep, kept = _present(labels, n, "labels", "embeddings")
    kept = kept.infer_objects()
    if pd.api.types.is_float_dtype(kept) and len(kept) and (kept % 1 == 0).all():
        kept = kept.astype(np.int64)  # an integer column that held NaN arrives as floats
    return np.flatnonzero(keep), kept.astype(str).to_numpy()


def stability(embeddings: Any, perturbed: Any) -> float:
    """Mean cosine similarity between each event's embedding and its perturbed twin's (same row order)."""
    a = as_embedding_matrix(embeddings)
    b = as_embedding_matrix(perturbed, what="perturbed embeddings")
    if a.shape != b.shape:
        raise UserError(f"perturbed embeddings have shape {b.shape} but embeddings have shape {a.shape}")
    return float(np.mean(np.sum(l2_normalise(a) * l2_normalise(b), axis=1)))


def scorecard(
    embeddings: Any,
    labels: Any,
    *,
    perturbed: Any = None,
    max_points: int = DEFAULT_MAX_POINTS,
    seed: int = 0,
) -> Scorecard:
    """Score how well ``labels`` separate in ``embeddings`` (rows aligned; NaN labels are dropped).

    Silhouette and kNN run on a stratified sample of at most ``max_points`` labelled events (rare
    classes kept whole, see engine.project.stratified_sample) so a 72,000-event scorecard stays in
    seconds; Davies-Bouldin and stability use every event. A metric that cannot be computed (one
    class, no labels, a label with too many values) is None with a reason, never an exception.
    """
    emb = as_embedding_matrix(embeddings)
    n = emb.shape[0]
    stab = stability(emb, perturbed) if perturbed is not None else None
    rows, text = _clean_labels(labels, n)
    values, counts = np.unique(text, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    classes = tuple((str(values[i]), int(counts[i])) for i in order)
    common = dict(stability=stab, n_events=n, n_labelled=len(rows), classes=classes)
    if stab is None:
        common["reasons"] = (("stability", "no perturbed embeddings given"),)

    why = _why_unscorable(len(rows), len(values))
    if why:
        reasons = tuple((m, why) for m in ("silhouette", "knn_accuracy", "davies_bouldin")) + common.pop("reasons", ())
        return Scorecard(None, None, None, reasons=reasons, **common)

    codes = np.searchsorted(values, text)
    normed = l2_normalise(emb[rows])
    sample = stratified_sample(codes, max_points, seed)
    sil, sil_balanced = _silhouettes(normed[sample], codes[sample])
    knn, knn_balanced, notes = _knn_cv(normed[sample], codes[sample], seed)
    db = _davies_bouldin(normed, codes)
    log.info("scorecard: %d labelled events, %d classes, silhouette/kNN on %d", len(rows), len(values), len(sample))
    return Scorecard(sil, knn, db, knn_balanced_accuracy=knn_balanced, silhouette_balanced=sil_balanced,
                     n_sampled=len(sample), notes=notes, **common)


def _why_unscorable(n_labelled: int, n_classes: int) -> str | None:
    if n_labelled == 0:
        return "no event has a label value"
    if n_classes < 2:
        return f"only one label value among {n_labelled} labelled events: nothing to separate"
    if n_classes > MAX_SCORECARD_CLASSES:
        return f"the label has {n_classes} distinct values (more than {MAX_SCORECARD_CLASSES}): group it into fewer values first"
    if n_classes >= n_labelled:
        return "every labelled event has its own label value: nothing to separate"
    return None


def _silhouettes(normed: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import silhouette_samples

    per_event = silhouette_samples(normed, codes, metric="cosine")
    per_class = [per_event[codes == c].mean() for c in np.unique(codes)]
    return float(per_event.mean()), float(np.mean(per_class))


def _knn_cv(normed: np.ndarray, codes: np.ndarray, seed: int) -> tuple[float, float, tuple[str, ...]]:
    """Out-of-fold kNN predictions (cosine via euclidean on unit rows); folds and k shrink for tiny data."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(codes)
    counts = counts[counts > 0]
    folds = int(min(KNN_FOLDS, counts.max(), len(codes)))
    notes = []
    if folds < 2:
        return None, None, ("too few events per class for cross-validated kNN",)
    k = int(min(KNN_K, len(codes) - math.ceil(len(codes) / folds)))  # the smallest training fold must hold k
    if k < KNN_K:
        notes.append(f"kNN used k={k} (too few events for k={KNN_K})")
    small = int((counts < KNN_K).sum())
    if small:
        notes.append(f"{small} label value(s) have fewer than {KNN_K} events: kNN can rarely vote for them, "
                     "so balanced accuracy is pessimistic for those")
    classifier = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="euclidean")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # "least populated class has only 1 member": noted above
        predicted = cross_val_predict(classifier, normed, codes, cv=splitter)
    return float(accuracy_score(codes, predicted)), float(balanced_accuracy_score(codes, predicted)), tuple(notes)


def _davies_bouldin(normed: np.ndarray, codes: np.ndarray) -> float:
    from sklearn.metrics import davies_bouldin_score

    return float(davies_bouldin_score(normed, codes))


def verdict(card: Scorecard, label_name: str) -> str:
    """One plain sentence on what the scorecard means for ``label_name``."""
    lights = card.lights
    separation = [lights[m] for m in ("silhouette", "knn_accuracy", "davies_bouldin") if lights[m] is not None]
    if not separation:
        reason = dict(card.reasons).get("silhouette", "no metric could be computed")
        return f"Cannot judge whether {label_name} separates: {reason}."
    names = _class_phrase(card, label_name)
    points = {GOOD: 2, FAIR: 1, POOR: 0}
    mean = sum(points[light] for light in separation) / len(separation)
    if mean >= 1.5:
        sentence = f"{names} separate well in the embedding space."
    elif lights["knn_accuracy"] == GOOD:
        # Neighbourhoods are pure but the classes do not form compact clusters: say both, not an average.
        sentence = (f"{names} are told apart by their nearest neighbours (balanced kNN accuracy "
                    f"{card.knn_balanced_accuracy:.2f}) but do not form separate clusters (silhouette "
                    f"{card.silhouette:.2f}): on the map they sit side by side rather than apart.")
    elif mean >= 0.75:
        sentence = f"{names} partly separate: some neighbourhoods mix; compare with the baselines and check the augmentation page."
    else:
        sentence = f"{names} overlap: check the augmentation page (too aggressive augmentation blurs them)."
    rare = [(label, count) for label, count in card.classes if count < RARE_SHARE * card.n_labelled]
    if rare:
        label, count = rare[-1]
        sentence += f" {label} is rare ({count} of {card.n_labelled} events), so the kNN light uses balanced accuracy."
    if lights["stability"] == POOR:
        sentence += f" Embeddings move under 5% noise (stability {card.stability:.2f}): the model is not yet robust."
    return sentence


def _class_phrase(card: Scorecard, label_name: str) -> str:
    labels = [label for label, _ in card.classes]
    if len(labels) == 2:
        return f"{labels[0]} and {labels[1]}"
    if len(labels) <= 4:
        return ", ".join(labels[:-1]) + f" and {labels[-1]}"
    return f"The {len(labels)} values of {label_name}"


# --------------------------------------------------------------------------- baselines


def raw_features_baseline(x_num: Any = None, x_cat: Any = None, *,
                          max_values_per_column: int = RAW_MAX_VALUES_PER_COLUMN,
                          max_onehot_width: int = RAW_MAX_ONEHOT_WIDTH) -> np.ndarray:
    """The "raw encoded features" representation, dense float32 [N, width], to score like an embedding.

    ``x_num`` [N, Dn]: raw numeric values, standardised per column (NaN -> 0, the column mean;
    constant columns -> 0). ``x_cat`` [N, Dc]: categorical values, integer codes or strings, one-hot
    encoded per column keeping its most frequent values (at most ``max_values_per_column``, fewer
    when ``max_onehot_width`` / Dc is smaller, so 40 columns stay ~500 wide) plus one "infrequent"
    column. Each one-hot block has norm 1 per row, like one standardised number, so numeric and
    categorical fields weigh alike under cosine. Dense because silhouette and kNN need it; the width
    cap keeps 72,000 events under ~150 MB.
    """
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    n = None
    if x_num is not None and np.asarray(x_num).size:
        num = np.asarray(x_num, dtype=np.float64)
        num = num.reshape(len(num), -1)
        n = len(num)
        num = np.where(np.isfinite(num), num, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns
            scaled = StandardScaler().fit_transform(num)
        parts.append(np.nan_to_num(scaled, nan=0.0).astype(np.float32))
    if x_cat is not None and np.asarray(x_cat).size:
        cat = np.asarray(x_cat)
        cat = cat.reshape(len(cat), -1)
        if n is not None and len(cat) != n:
            raise UserError(f"x_cat has {len(cat)} rows but x_num has {n}")
        if not np.issubdtype(cat.dtype, np.integer):
            cat = pd.DataFrame(cat).astype(str).fillna(NA_VALUE).to_numpy()
        per_column = max(1, min(max_values_per_column, max_onehot_width // cat.shape[1] - 1))
        encoder = OneHotEncoder(max_categories=per_column + 1, handle_unknown="infrequent_if_exist",
                                sparse_output=False, dtype=np.float32)
        parts.append(encoder.fit_transform(cat))
    if not parts:
        raise UserError("raw_features_baseline needs numeric or categorical features, got neither")
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


# --------------------------------------------------------------------------- anomalies


def _check_k(k: int, n: int, what: str) -> int:
    if n < 2:
        raise UserError(f"{what} needs at least 2 events, got {n}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"k must be a positive integer, got k={k!r}")
    return int(min(k, n - 1))


@dataclass(frozen=True)
class NeighbourGraph:
    """Each event's k nearest other events under cosine: indices [N, k] and cosine distances [N, k], nearest first.

    Computing it is the expensive part of kNN and LOF scoring (an exact N x N search: ~1.3 TFLOP for
    72,000 x 256, tens of seconds on 2 cores), so both scorers accept one built once.
    """

    indices: np.ndarray
    distances: np.ndarray

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def neighbour_graph(emb: Any, k: int = ANOMALY_K) -> NeighbourGraph:
    """Exact k nearest neighbours (self excluded) by brute force, chunked by scikit-learn."""
    from sklearn.neighbors import NearestNeighbors

    normed = l2_normalise(as_embedding_matrix(emb))
    n = len(normed)
    k = _check_k(k, n, "the neighbour graph")
    index = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="euclidean").fit(normed)
    chord, idx = index.kneighbors(normed)  # includes the event itself (or an exact duplicate of it)
    is_self = idx == np.arange(n)[:, None]
    # Drop the event itself where it was returned, else the farthest of the k+1 (it has exact duplicates).
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    chord = np.take_along_axis(chord, keep, axis=1)
    cosine = np.clip(chord.astype(np.float64) ** 2 / 2.0, 0.0, 2.0)  # chord^2 / 2 = 1 - cos
    return NeighbourGraph(np.take_along_axis(idx, keep, axis=1).astype(np.int64), cosine.astype(np.float32))


def _graph_for(emb: Any, k: int, graph: NeighbourGraph | None) -> tuple[NeighbourGraph, int]:
    if graph is None:
        graph = neighbour_graph(emb, k)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"k must be a positive integer, got k={k!r}")
    k = int(min(k, len(graph.indices) - 1))
    if graph.k < k:
        raise UserError(f"the neighbour graph holds {graph.k} neighbours per event but k={k} were asked for")
    return graph, k


def knn_score(emb: Any = None, k: int = ANOMALY_K, *, graph: NeighbourGraph | None = None) -> np.ndarray:
    """Mean cosine distance to the k nearest other events; higher = more anomalous. float64 [N].

    Pass ``graph`` (from ``neighbour_graph``) to reuse a neighbour search; ``emb`` is then not needed.
    """
    graph, k = _graph_for(emb, k, graph)
    return graph.distances[:, :k].astype(np.float64).mean(axis=1)


def lof_score(emb: Any = None, k: int = ANOMALY_K, *, graph: NeighbourGraph | None = None) -> np.ndarray:
    """Local Outlier Factor over cosine distances to the k nearest events; higher = more anomalous.

    scikit-learn's LocalOutlierFactor on the precomputed neighbour graph (each row: the event itself
    at distance 0, then its k neighbours), so a ``graph`` shared with ``knn_score`` is searched once.
    """
    import scipy.sparse
    from sklearn.neighbors import LocalOutlierFactor

    graph, k = _graph_for(emb, k, graph)
    n = len(graph.indices)
    columns = np.hstack([np.arange(n)[:, None], graph.indices[:, :k]])
    distances = np.hstack([np.zeros((n, 1)), graph.distances[:, :k].astype(np.float64)])
    sparse = scipy.sparse.csr_matrix((distances.ravel(), columns.ravel(), np.arange(0, n * (k + 1) + 1, k + 1)), shape=(n, n))
    lof = LocalOutlierFactor(n_neighbors=k, metric="precomputed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # duplicate points warning
        warnings.simplefilter("ignore", category=scipy.sparse.SparseEfficiencyWarning)
        lof.fit(sparse)
    return -lof.negative_outlier_factor_.astype(np.float64)


def isolation_forest_score(emb: Any, seed: int = 0, *, n_estimators: int = IFOREST_TREES) -> np.ndarray:
    """Isolation Forest anomaly score on the vectors as given; higher = more anomalous."""
    from sklearn.ensemble import IsolationForest

    x = as_embedding_matrix(emb, what="features")
    if len(x) < 2:
        raise UserError(f"isolation_forest_score needs at least 2 events, got {len(x)}")
    forest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(x)
    return -forest.score_samples(x).astype(np.float64)


_TRUE_TEXT = {"true", "1", "yes", "anomaly", "t", "y"}
_FALSE_TEXT = {"false", "0", "no", "normal", "f", "n"}


def _as_bool_labels(is_anomaly: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    keep, kept = _present(is_anomaly, n, "is_anomaly", "scores")
    numeric = pd.to_numeric(kept, errors="coerce")
    if numeric.notna().all():
        return np.flatnonzero(keep), numeric.to_numpy(dtype=np.float64) != 0
    text = kept.astype(str).str.strip().str.lower()
    unknown = sorted(set(text) - _TRUE_TEXT - _FALSE_TEXT)
    if unknown:
        raise UserError(f"is_anomaly must be true/false or 1/0, got values like {unknown[:3]}")
    return np.flatnonzero(keep), text.isin(_TRUE_TEXT).to_numpy()


def anomaly_metrics(scores: Any, is_anomaly: Any) -> dict[str, Any]:
    """AUROC and PR-AUC (average precision) of ``scores`` (higher = more anomalous) against a 0/1 label.

    Events without a label are dropped; with only one class present both are None with a reason.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.asarray(scores, dtype=np.float64).ravel()
    if not np.isfinite(s).all():
        raise UserError(f"anomaly scores contain {int((~np.isfinite(s)).sum())} NaN or infinite values")
    rows, y = _as_bool_labels(is_anomaly, len(s))
    result: dict[str, Any] = {"auroc": None, "pr_auc": None, "n": int(len(rows)), "n_anomalies": int(y.sum()),
                              "prevalence": _json_float(y.mean()) if len(y) else None, "reason": None}
    if len(y) == 0 or y.all() or not y.any():
        result["reason"] = "the anomaly label has only one class: AUROC and PR-AUC are undefined"
        return result
    result["auroc"] = _json_float(roc_auc_score(y, s[rows]))
    result["pr_auc"] = _json_float(average_precision_score(y, s[rows]))
    return result


# --------------------------------------------------------------------------- selection and neighbours


def neighbours(emb: Any, index: int, k: int = KNN_K) -> tuple[np.ndarray, np.ndarray]:
    """The k events most cosine-similar to event ``index`` (itself excluded): (indices, similarities), best first."""
    normed = l2_normalise(as_embedding_matrix(emb))
    n = len(normed)
    if not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise UserError(f"event index must be in [0, {n - 1}], got {index!r}")
    k = _check_k(k, n, "neighbours")
    sims = normed @ normed[index]
    sims[index] = -np.inf
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return top.astype(np.int64), sims[top].astype(np.float32)


CONTRAST_COLUMNS = ["column", "kind", "value", "share_selected", "share_overall", "lift",
                    "median_selected", "median_overall", "std_diff", "strength", "description"]


def contrast(frame: pd.DataFrame, selected_mask: Any, *, top_n: int = CONTRAST_TOP_N,
             categorical: Any = None) -> pd.DataFrame:
    """What is different about the selected events, strongest first (at most ``top_n`` rows).

    Categorical columns: values over-represented in the selection (share there vs share overall,
    lift = ratio); strength = (share_sel - share_all) / sqrt(share_all (1 - share_all)), the
    standardised difference of the value's indicator. Numeric columns: the median shift, strength
    = |median_sel - median_all| / spread, spread = IQR / 1.349 (robust to heavy tails) or the std
    when the IQR is 0. Both strengths are effect sizes on one scale, so they sort together.
    Numeric columns with few distinct values (status_id) count as categorical, as do the columns
    named in ``categorical``; ID-like columns (mostly unique values) are skipped.
    """
    mask = np.asarray(selected_mask)
    if mask.dtype != bool or mask.shape != (len(frame),):
        raise UserError(f"selected_mask must be a boolean array of length {len(frame)}, got {mask.dtype} {mask.shape}")
    n_selected = int(mask.sum())
    if n_selected == 0 or n_selected == len(frame):
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    forced = set(categorical or ())
    rows = []
    for column in frame.columns:
        series = frame[column].reset_index(drop=True)
        if column in forced or _is_categorical(series):
            rows.extend(_categorical_contrast(column, series, mask))
        else:
            rows.extend(_numeric_contrast(column, series, mask))
    result = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
    if result.empty:
        return result
    return result.sort_values("strength", ascending=False, kind="stable").head(top_n).reset_index(drop=True)


def _is_categorical(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return True
    return series.nunique(dropna=True) <= CONTRAST_MAX_DISTINCT_NUMERIC_AS_CATEGORY


def _categorical_contrast(column: str, series: pd.Series, mask: np.ndarray) -> list[dict]:
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")  # 504, not 504.0 (an integer code column that holds NaN)
    text = series.astype(object).where(series.notna(), NA_VALUE).astype(str)
    if text.nunique() > CONTRAST_ID_LIKE_SHARE * len(text):
        return []
    overall = text.value_counts(normalize=True)
    selected_counts = text[mask].value_counts()
    n_selected = int(mask.sum())
    min_count = min(CONTRAST_MIN_COUNT, n_selected)
    rows = []
    for value, count in selected_counts.items():
        share_sel, share_all = count / n_selected, float(overall[value])
        if count < min_count or share_sel <= share_all or share_all >= 1.0:
            continue
        strength = (share_sel - share_all) / math.sqrt(share_all * (1.0 - share_all))
        lift = share_sel / share_all
        rows.append({
            "column": column, "kind": "categorical", "value": value,
            "share_selected": share_sel, "share_overall": share_all, "lift": lift,
            "median_selected": None, "median_overall": None, "std_diff": None, "strength": strength,
            "description": f"{column} = {value}: {share_sel:.1%} of the selection vs {share_all:.1%} overall (x{lift:.1f})",
        })
    return rows


def _numeric_contrast(column: str, series: pd.Series, mask: np.ndarray) -> list[dict]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    everywhere, inside = values[~np.isnan(values)], values[mask & ~np.isnan(values)]
    if len(inside) == 0 or len(everywhere) < 2:
        return []
    q1, median_all, q3 = np.percentile(everywhere, [25, 50, 75])
    spread = (q3 - q1) / 1.349 if q3 > q1 else float(np.std(everywhere))
    if spread <= 0:
        return []
    median_sel = float(np.median(inside))
    std_diff = (median_sel - median_all) / spread
    if std_diff == 0:
        return []
    direction = "higher" if std_diff > 0 else "lower"
    return [{
        "column": column, "kind": "numeric", "value": None,
        "share_selected": None, "share_overall": None, "lift": None,
        "median_selected": median_sel, "median_overall": float(median_all), "std_diff": float(std_diff),
        "strength": abs(float(std_diff)),
        "description": f"{column} is {direction}: median {median_sel:.4g} in the selection vs {median_all:.4g} overall",
    }]
