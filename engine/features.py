"""Feature encoding: DataFrame -> TabularTensors (raw stage) -> model inputs.

Two stages on purpose. ``FeatureEncoder.transform`` produces the *raw stage*
(``TabularTensors``: raw numeric values, vocabulary indices, seconds of the week) that
augmentation works on, so numeric jitter stays multiplicative on raw values and time jitter
shifts seconds. ``FeatureEncoder.model_inputs`` then turns that into what the model sees
(log1p for heavy-tailed columns, standardisation, missing indicators, cyclic time features)
in pure torch on the tensors' device.

Preprocessing follows the scikit-learn contract: ``__init__`` stores parameters, ``fit``
learns the attributes ending in ``_``, ``transform`` refuses to run unfitted. Everything fitted
round-trips through plain JSON (``to_json`` / ``from_json``), never a Python object dump.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from engine.errors import UserError
from engine.schema import Schema

logger = logging.getLogger(__name__)

ENCODER_VERSION = 1

# Reserved vocabulary indices: the model's MASK token and the bucket for rare/unseen values.
MASK_INDEX = 0
UNKNOWN_INDEX = 1
N_RESERVED = 2
MASK_TEXT = "<MASK>"
UNKNOWN_TEXT = "<UNKNOWN>"
MISSING_TEXT = "<NA>"  # a missing categorical value is a vocabulary value like any other

DAY_S = 86_400
WEEK_S = 7 * DAY_S
# 1970-01-01 (epoch 0) was a Thursday: epoch 0 lies 3 days after the Monday that starts its week.
EPOCH_SECONDS_INTO_WEEK = 3 * DAY_S
# Epoch numbers below this are seconds, above are milliseconds (1e11 s is the year 5138, 1e11 ms is March 1973).
EPOCH_SECONDS_LIMIT = 1e11

# A standard deviation below this means a constant column: scale by 1 instead (as scikit-learn
# does), so a value unseen in fit gives its raw offset rather than an enormous z-score.
MIN_STD = 1e-6
# Standardised values are clipped here so a pathological value (or a jittered value that
# overflowed float32) can never feed inf or NaN into the model.
STANDARDISED_CLIP = 1e4

NOT_FITTED_MESSAGE = "FeatureEncoder is not fitted: call fit() first"


class EncoderError(UserError):
    """A saved encoder is invalid, or the data cannot be encoded."""


# ---------------------------------------------------------------------------------------------
# The raw stage
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TabularTensors:
    """One batch of encoded rows before the model's own preprocessing.

    Shape:
        numeric: float32 [N, Dn] raw values (bytes as bytes), NaN = missing.
        categorical: int64 [N, Dc] vocabulary indices; 0 = MASK/PAD (never produced by
            transform), 1 = UNKNOWN (rare or unseen value).
        time: float32 [N, Dt] seconds since Monday 00:00 UTC of the event's week, in
            [0, 604800); NaN = missing.
    Any of Dn, Dc, Dt may be 0 (a tensor of shape [N, 0]), so N is always known.
    """

    numeric: Tensor
    categorical: Tensor
    time: Tensor

    def __post_init__(self) -> None:
        parts = {"numeric": self.numeric, "categorical": self.categorical, "time": self.time}
        for name, tensor in parts.items():
            if tensor.ndim != 2:
                raise ValueError(f"TabularTensors.{name} must be 2-D [N, D], got shape {tuple(tensor.shape)}")
        rows = {name: tensor.shape[0] for name, tensor in parts.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"TabularTensors parts disagree on the number of rows: {rows}")

    def __len__(self) -> int:
        return self.numeric.shape[0]

    @property
    def device(self) -> torch.device:
        return self.numeric.device

    def to(self, device: torch.device | str) -> "TabularTensors":
        return TabularTensors(
            numeric=self.numeric.to(device),
            categorical=self.categorical.to(device),
            time=self.time.to(device),
        )

    def take(self, index: Tensor | slice) -> "TabularTensors":
        """Rows selected by a slice, an index tensor or a boolean mask."""
        return TabularTensors(numeric=self.numeric[index], categorical=self.categorical[index], time=self.time[index])


# ---------------------------------------------------------------------------------------------
# Column conversions (vectorised: per column, never per row)
# ---------------------------------------------------------------------------------------------
def _float_texts(values: np.ndarray) -> np.ndarray:
    """Floats as canonical text: integral values without '.0' ("443"), others as numpy's shortest repr."""
    texts = values.astype(str).astype(object)
    as_float = values.astype(np.float64)
    integral = np.isfinite(as_float) & (np.floor(as_float) == as_float) & (np.abs(as_float) < 2**63)
    texts[integral] = as_float[integral].astype(np.int64).astype(str)
    return texts


def _scalar_text(value: Any) -> str:
    """Canonical text of one value of a mixed-type (object) column; called once per distinct value."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING_TEXT
        return str(_float_texts(np.asarray([value]))[0])
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _canonical_texts(uniques: pd.Index | np.ndarray) -> np.ndarray:
    """The distinct values of a column as canonical strings (object array aligned with ``uniques``)."""
    dtype = getattr(uniques, "dtype", None)
    if len(uniques) == 0:
        return np.empty(0, dtype=object)
    if pd.api.types.is_bool_dtype(dtype):
        return np.where(np.asarray(uniques, dtype=bool), "true", "false").astype(object)
    if pd.api.types.is_integer_dtype(dtype):
        return np.asarray(uniques).astype(str).astype(object)
    if pd.api.types.is_float_dtype(dtype):
        return _float_texts(np.asarray(uniques))
    if pd.api.types.is_string_dtype(dtype) and pd.api.types.infer_dtype(uniques, skipna=True) == "string":
        return np.asarray(uniques, dtype=object)
    return np.array([_scalar_text(v) for v in np.asarray(uniques, dtype=object)], dtype=object)


def _hashable_series(series: pd.Series) -> pd.Series:
    # Lists or dicts inside an object column (nested JSON that ingest did not flatten) are not
    # hashable; their text is their category. Rare path, so a per-row map is acceptable here.
    return series.map(lambda v: str(v) if isinstance(v, (list, dict, set)) else v)


def categorical_codes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, texts): per-row codes into ``texts``, the canonical strings of the distinct values.

    Missing values get code -1 (their text is ``"<NA>"``). Work is per distinct value, not per row.
    Note: an object column holding both 1 and True counts them as one value (Python hashes them equal).
    """
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:
        codes, uniques = pd.factorize(_hashable_series(series), use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), _canonical_texts(uniques)


def categorical_texts(series: pd.Series) -> np.ndarray:
    """Every row of a column as its canonical string: ints "443", bools "true"/"false", missing "<NA>"."""
    codes, texts = categorical_codes(series)
    table = np.append(texts, MISSING_TEXT).astype(object)
    return table[np.where(codes < 0, len(texts), codes)]


def numeric_values(series: pd.Series) -> np.ndarray:
    """float32 values; non-numeric text, missing, infinite or beyond float32 range -> NaN."""
    numbers = pd.to_numeric(series, errors="coerce")
    values = np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        values32 = values.astype(np.float32)
    values32[~np.isfinite(values32)] = np.nan
    return values32


def _epoch_seconds_of_numbers(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(values) < EPOCH_SECONDS_LIMIT, values, values / 1000.0)


def _epoch_seconds_of_datetimes(series: pd.Series) -> np.ndarray:
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)  # naive datetimes are taken as UTC
    seconds = (series - pd.Timestamp(0)) / pd.Timedelta(1, "s")
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


def _parse_datetime_texts(series: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    leftover = parsed.isna() & series.notna()
    if leftover.any():  # not ISO 8601: let pandas guess, only for these values
        parsed[leftover] = pd.to_datetime(series[leftover], utc=True, errors="coerce", format="mixed")
    return _epoch_seconds_of_datetimes(parsed)


def epoch_seconds(series: pd.Series) -> np.ndarray:
    """float64 seconds since 1970-01-01 UTC from epoch ms/s numbers, datetimes or date strings; NaN = missing."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _epoch_seconds_of_datetimes(series)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return _epoch_seconds_of_numbers(series.to_numpy(dtype=np.float64, na_value=np.nan))
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    seconds = _epoch_seconds_of_numbers(numbers)
    needs_parsing = np.isnan(numbers) & series.notna().to_numpy()
    if needs_parsing.any():
        seconds[needs_parsing] = _parse_datetime_texts(series[needs_parsing])
    return seconds


def seconds_of_week(series: pd.Series) -> np.ndarray:
    """float32 seconds since Monday 00:00 UTC of each event's week, in [0, 604800); NaN = missing."""
    seconds = epoch_seconds(series)
    seconds = np.where(np.isfinite(seconds), seconds, np.nan)
    into_week = np.mod(seconds + EPOCH_SECONDS_INTO_WEEK, WEEK_S).astype(np.float32)
    # float32 rounding can turn 604799.97 into 604800.0: wrap it back to the week's start.
    into_week[into_week >= WEEK_S] -= WEEK_S
    return into_week


def signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DeviceConstants:
    mean: Tensor  # float32 [Dn]
    std: Tensor  # float32 [Dn]
    heavy: Tensor  # bool [Dn]
    indicator_columns: Tensor  # int64 [n_indicators]: numeric positions that get a missing indicator


class FeatureEncoder:
    """Learns vocabularies and numeric statistics from a frame; encodes frames into TabularTensors.

    Fitted attributes (scikit-learn style, set by ``fit`` or ``from_json``):
        numeric_columns_, categorical_columns_, time_columns_: model inputs by type, schema order.
        input_columns_: all of them in schema order (``decode`` uses it).
        vocab_: {col: [str]}, most frequent first; value i has index i + 2.
        category_probs_: {col: float64 array [len(vocab) + 2]}, the empirical distribution over
            indices in the fitted data (index 0 always 0; index 1 holds the rare values' share).
        heavy_tailed_, has_missing_: {numeric col: bool}.
        mean_, std_: float64 arrays [Dn] of the transformed (signed log1p where heavy-tailed) values.
    """

    def __init__(self, schema: Schema, *, min_frequency: int = 5, max_categories: int = 10_000) -> None:
        self.schema = schema
        self.min_frequency = min_frequency
        self.max_categories = max_categories

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame) -> "FeatureEncoder":
        self._check_params()
        if self.schema is None:
            raise RuntimeError("this FeatureEncoder was restored from JSON without a schema: build a new one to fit")
        if len(df) == 0:
            raise EncoderError("cannot fit the feature encoder on a frame with no rows")
        schema = self.schema
        self.numeric_columns_ = list(schema.numeric)
        self.categorical_columns_ = list(schema.categorical)
        self.time_columns_ = list(schema.timestamp)
        chosen = set(self.numeric_columns_) | set(self.categorical_columns_) | set(self.time_columns_)
        self.input_columns_ = [name for name in schema.names if name in chosen]
        _warn_missing_columns(df, self.input_columns_, "fit")

        self.vocab_, self.category_probs_ = {}, {}
        for col in self.categorical_columns_:
            self.vocab_[col], self.category_probs_[col] = self._fit_vocabulary(_column(df, col))

        self.heavy_tailed_ = {col: bool(schema[col].heavy_tailed) for col in self.numeric_columns_}
        self.has_missing_, means, stds = {}, [], []
        for col in self.numeric_columns_:
            values = numeric_values(_column(df, col)).astype(np.float64)
            self.has_missing_[col] = bool(np.isnan(values).any())
            mean, std = _mean_std(signed_log1p(values) if self.heavy_tailed_[col] else values)
            means.append(mean)
            stds.append(std)
        self.mean_ = np.asarray(means, dtype=np.float64)
        self.std_ = np.asarray(stds, dtype=np.float64)
        self._reset_caches()
        logger.info(
            "fitted feature encoder on %d rows: %d numeric, %d categorical, %d time columns",
            len(df), len(self.numeric_columns_), len(self.categorical_columns_), len(self.time_columns_),
        )
        return self

    def _check_params(self) -> None:
        if not isinstance(self.min_frequency, int) or self.min_frequency < 1:
            raise EncoderError(f"min_frequency must be an integer >= 1, got min_frequency={self.min_frequency!r}")
        if not isinstance(self.max_categories, int) or self.max_categories < 0:
            raise EncoderError(f"max_categories must be an integer >= 0, got max_categories={self.max_categories!r}")

    def _fit_vocabulary(self, series: pd.Series) -> tuple[list[str], np.ndarray]:
        codes, texts = categorical_codes(series)
        counts = np.bincount(codes[codes >= 0], minlength=len(texts))
        counts_by_text = pd.Series(np.append(counts, np.count_nonzero(codes < 0)), index=np.append(texts, MISSING_TEXT))
        # Several raw values can share one text (1 and "1"); ties broken by text for a stable order.
        counts_by_text = counts_by_text.groupby(level=0, sort=True).sum()
        counts_by_text = counts_by_text[counts_by_text > 0].sort_values(ascending=False, kind="stable")
        kept = counts_by_text[counts_by_text >= self.min_frequency].iloc[: self.max_categories]
        vocab = [str(text) for text in kept.index]
        probs = np.zeros(len(vocab) + N_RESERVED, dtype=np.float64)
        total = float(len(series))
        probs[N_RESERVED:] = kept.to_numpy(dtype=np.float64) / total
        probs[UNKNOWN_INDEX] = float(counts_by_text.sum() - kept.sum()) / total
        return vocab, probs

    # -- transform ---------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame) -> TabularTensors:
        self._check_fitted()
        _warn_missing_columns(df, self.input_columns_, "transform")
        n_rows = len(df)
        numeric = np.empty((n_rows, len(self.numeric_columns_)), dtype=np.float32)
        for j, col in enumerate(self.numeric_columns_):
            numeric[:, j] = numeric_values(_column(df, col))
        categorical = np.empty((n_rows, len(self.categorical_columns_)), dtype=np.int64)
        for j, col in enumerate(self.categorical_columns_):
            categorical[:, j] = self._encode_categorical(col, _column(df, col))
        time = np.empty((n_rows, len(self.time_columns_)), dtype=np.float32)
        for j, col in enumerate(self.time_columns_):
            time[:, j] = seconds_of_week(_column(df, col))
        return TabularTensors(
            numeric=torch.from_numpy(numeric), categorical=torch.from_numpy(categorical), time=torch.from_numpy(time)
        )

    def _encode_categorical(self, col: str, series: pd.Series) -> np.ndarray:
        codes, texts = categorical_codes(series)
        vocab_index = self._vocab_index(col)
        index_of_text = vocab_index.get_indexer(np.append(texts, MISSING_TEXT))  # -1 = not in vocab
        index_of_text = np.where(index_of_text < 0, UNKNOWN_INDEX, index_of_text + N_RESERVED)
        # The last entry is the index of "<NA>": missing rows (code -1) are pointed at it explicitly.
        return index_of_text[np.where(codes < 0, len(texts), codes)]

    def _vocab_index(self, col: str) -> pd.Index:
        if col not in self._vocab_indexes:
            self._vocab_indexes[col] = pd.Index(self.vocab_[col], dtype=object)
        return self._vocab_indexes[col]

    # -- model inputs ------------------------------------------------------------------------
    def model_inputs(self, t: TabularTensors) -> tuple[Tensor, Tensor]:
        """(x_num float32 [N, n_model_numeric], x_cat int64 [N, Dc]) on t's device, in pure torch.

        x_num columns: standardised numeric (signed log1p first where heavy-tailed, 0 where
        missing), then one 0/1 missing indicator per numeric column that had missing values in
        fit, then sin/cos of hour-of-day and sin/cos of day-of-week per time column (0 if missing).
        """
        self._check_fitted()
        consts = self._constants_on(t.numeric.device)
        numeric = t.numeric.to(torch.float32)
        missing = torch.isnan(numeric)
        logged = torch.where(consts.heavy, torch.sign(numeric) * torch.log1p(numeric.abs()), numeric)
        standardised = ((logged - consts.mean) / consts.std).clamp(-STANDARDISED_CLIP, STANDARDISED_CLIP)
        standardised = torch.where(missing, torch.zeros_like(standardised), standardised)
        indicators = missing.index_select(1, consts.indicator_columns).to(torch.float32)
        x_num = torch.cat([standardised, indicators, _cyclic_time_features(t.time.to(torch.float32))], dim=1)
        return x_num, t.categorical

    def _constants_on(self, device: torch.device) -> _DeviceConstants:
        key = str(device)
        consts = self._device_constants.get(key)
        if consts is None:
            consts = _DeviceConstants(
                mean=torch.tensor(self.mean_, dtype=torch.float32, device=device),
                std=torch.tensor(self.std_, dtype=torch.float32, device=device),
                heavy=torch.tensor([self.heavy_tailed_[c] for c in self.numeric_columns_], dtype=torch.bool, device=device),
                indicator_columns=torch.tensor(
                    [j for j, c in enumerate(self.numeric_columns_) if self.has_missing_[c]], dtype=torch.int64, device=device
                ),
            )
            self._device_constants[key] = consts
        return consts

    @property
    def n_model_numeric(self) -> int:
        self._check_fitted()
        n_indicators = sum(self.has_missing_[c] for c in self.numeric_columns_)
        return len(self.numeric_columns_) + n_indicators + 4 * len(self.time_columns_)

    @property
    def cardinalities(self) -> list[int]:
        self._check_fitted()
        return [len(self.vocab_[c]) + N_RESERVED for c in self.categorical_columns_]

    def model_feature_names(self) -> list[str]:
        """Names of x_num's columns, in order."""
        self._check_fitted()
        names = list(self.numeric_columns_)
        names += [f"{c}__missing" for c in self.numeric_columns_ if self.has_missing_[c]]
        for c in self.time_columns_:
            names += [f"{c}__hour_sin", f"{c}__hour_cos", f"{c}__dow_sin", f"{c}__dow_cos"]
        return names

    # -- decoding ----------------------------------------------------------------------------
    def decode_categorical(self, col: str, idx: np.ndarray | Tensor | Sequence[int]) -> np.ndarray:
        """Vocabulary indices -> strings; 0 -> "<MASK>", 1 -> "<UNKNOWN>"."""
        self._check_fitted()
        if col not in self.vocab_:
            raise KeyError(f"{col!r} is not a categorical input of this encoder")
        if isinstance(idx, Tensor):
            idx = idx.detach().cpu().numpy()
        idx = np.asarray(idx, dtype=np.int64)
        table = self._decode_table(col)
        if idx.size and (idx.min() < 0 or idx.max() >= len(table)):
            raise IndexError(f"index out of range for {col!r}: valid indices are 0..{len(table) - 1}")
        return table[idx]

    def _decode_table(self, col: str) -> np.ndarray:
        if col not in self._decode_tables:
            self._decode_tables[col] = np.array([MASK_TEXT, UNKNOWN_TEXT, *self.vocab_[col]], dtype=object)
        return self._decode_tables[col]

    def decode(self, t: TabularTensors) -> pd.DataFrame:
        """Human-readable raw values: numeric floats (None if missing), categorical strings,
        time as seconds-of-week floats (None if missing); columns in schema order."""
        self._check_fitted()
        parts: dict[str, np.ndarray] = {}
        numeric = t.numeric.detach().cpu().numpy().astype(np.float64)
        for j, col in enumerate(self.numeric_columns_):
            parts[col] = _floats_or_none(numeric[:, j])
        categorical = t.categorical.detach().cpu().numpy()
        for j, col in enumerate(self.categorical_columns_):
            parts[col] = self.decode_categorical(col, categorical[:, j])
        time = t.time.detach().cpu().numpy().astype(np.float64)
        for j, col in enumerate(self.time_columns_):
            parts[col] = _floats_or_none(time[:, j])
        return pd.DataFrame({col: pd.Series(parts[col], dtype=object) for col in self.input_columns_}, index=pd.RangeIndex(len(t)))

    # -- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "version": ENCODER_VERSION,
            "params": {"min_frequency": self.min_frequency, "max_categories": self.max_categories},
            "numeric_columns": list(self.numeric_columns_),
            "categorical_columns": list(self.categorical_columns_),
            "time_columns": list(self.time_columns_),
            "input_columns": list(self.input_columns_),
            "vocab": {c: list(v) for c, v in self.vocab_.items()},
            "category_probs": {c: [float(p) for p in probs] for c, probs in self.category_probs_.items()},
            "heavy_tailed": dict(self.heavy_tailed_),
            "has_missing": dict(self.has_missing_),
            "mean": [float(m) for m in self.mean_],
            "std": [float(s) for s in self.std_],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FeatureEncoder":
        """A fitted encoder from ``to_json()`` output. It has no schema, so it can transform but not refit."""
        if not isinstance(data, Mapping) or "vocab" not in data:
            raise EncoderError("not a feature encoder: expected a JSON object with a 'vocab' entry")
        if data.get("version") != ENCODER_VERSION:
            raise EncoderError(f"unsupported feature encoder version {data.get('version')!r} (expected {ENCODER_VERSION})")
        try:
            params = data["params"]
            encoder = cls(None, min_frequency=int(params["min_frequency"]), max_categories=int(params["max_categories"]))  # type: ignore[arg-type]
            encoder.numeric_columns_ = [str(c) for c in data["numeric_columns"]]
            encoder.categorical_columns_ = [str(c) for c in data["categorical_columns"]]
            encoder.time_columns_ = [str(c) for c in data["time_columns"]]
            encoder.input_columns_ = [str(c) for c in data["input_columns"]]
            encoder.vocab_ = {c: [str(v) for v in data["vocab"][c]] for c in encoder.categorical_columns_}
            encoder.category_probs_ = {
                c: np.asarray(data["category_probs"][c], dtype=np.float64) for c in encoder.categorical_columns_
            }
            encoder.heavy_tailed_ = {c: bool(data["heavy_tailed"][c]) for c in encoder.numeric_columns_}
            encoder.has_missing_ = {c: bool(data["has_missing"][c]) for c in encoder.numeric_columns_}
            encoder.mean_ = np.asarray(data["mean"], dtype=np.float64)
            encoder.std_ = np.asarray(data["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise EncoderError(f"invalid feature encoder JSON: missing or bad entry {exc}") from None
        encoder._check_restored()
        encoder._reset_caches()
        return encoder

    def _check_restored(self) -> None:
        n_numeric = len(self.numeric_columns_)
        if self.mean_.shape != (n_numeric,) or self.std_.shape != (n_numeric,):
            raise EncoderError(f"invalid feature encoder JSON: mean/std must have {n_numeric} entries")
        for col in self.categorical_columns_:
            if len(self.category_probs_[col]) != len(self.vocab_[col]) + N_RESERVED:
                raise EncoderError(f"invalid feature encoder JSON: category_probs of {col!r} do not match its vocab")

    # -- state -------------------------------------------------------------------------------
    def _reset_caches(self) -> None:
        self._device_constants: dict[str, _DeviceConstants] = {}
        self._vocab_indexes: dict[str, pd.Index] = {}
        self._decode_tables: dict[str, np.ndarray] = {}

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "std_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(NOT_FITTED_MESSAGE)

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"FeatureEncoder(min_frequency={self.min_frequency}, max_categories={self.max_categories}, unfitted)"
        return (
            f"FeatureEncoder(numeric={len(self.numeric_columns_)}, categorical={len(self.categorical_columns_)}, "
            f"time={len(self.time_columns_)}, n_model_numeric={self.n_model_numeric})"
        )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _column(df: pd.DataFrame, col: str) -> pd.Series:
    """The column, or an all-missing one when the frame lacks it."""
    if col in df.columns:
        return df[col]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _warn_missing_columns(df: pd.DataFrame, columns: Sequence[str], stage: str) -> None:
    absent = [c for c in columns if c not in df.columns]
    if absent:
        logger.warning("%s: %d input column(s) absent from the frame, treated as all missing: %s", stage, len(absent), absent[:10])


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    mean, std = float(finite.mean()), float(finite.std())
    return mean, (std if std >= MIN_STD else 1.0)


def _cyclic_time_features(seconds: Tensor) -> Tensor:
    """[N, Dt] seconds of the week -> [N, 4 * Dt]: per column hour sin, hour cos, day-of-week sin, cos."""
    missing = torch.isnan(seconds)
    hour_angle = torch.remainder(seconds, DAY_S) * (2 * math.pi / DAY_S)
    week_angle = torch.remainder(seconds, WEEK_S) * (2 * math.pi / WEEK_S)
    features = torch.stack(
        [torch.sin(hour_angle), torch.cos(hour_angle), torch.sin(week_angle), torch.cos(week_angle)], dim=2
    )  # [N, Dt, 4]
    features = torch.where(missing.unsqueeze(2), torch.zeros_like(features), features)
    return features.reshape(seconds.shape[0], 4 * seconds.shape[1])


def _floats_or_none(values: np.ndarray) -> np.ndarray:
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out
