"""The column schema: one ColumnSpec per column (type, OCSF role, augmentation policy, reason).

Like pytorch-frame: a ``ColumnType`` enum, an immutable ``Schema`` that round-trips through JSON,
and overrides that return a new Schema. Inference (``infer_schema``) applies OCSF knowledge
first (engine.ocsf), then statistics.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.atomic import atomic_write_text
from engine.config import AugmentConfig, ConfigError
from engine.errors import UserError

SCHEMA_VERSION = 1


class ColumnType(str, Enum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TIMESTAMP = "timestamp"
    LABEL = "label"
    IGNORE = "ignore"


class Role(str, Enum):
    OUTCOME = "outcome"
    CLASSIFICATION = "classification"
    SEVERITY = "severity"
    IDENTITY = "identity"
    MEASURE = "measure"
    TIME = "time"
    CONTEXT = "context"
    ID = "id"
    TEXT = "text"
    LABEL = "label"


class Policy(str, Enum):
    PROTECTED = "protected"
    JITTER = "jitter"
    SWAP = "swap"
    MASK = "mask"
    TIME_JITTER = "time_jitter"
    NONE = "none"  # not an input, or the analyst chose to leave it untouched


# Which policies make sense for which column type (the UI offers these).
POLICIES_FOR_TYPE: dict[ColumnType, tuple[Policy, ...]] = {
    ColumnType.NUMERIC: (Policy.JITTER, Policy.PROTECTED, Policy.NONE),
    ColumnType.CATEGORICAL: (Policy.SWAP, Policy.MASK, Policy.PROTECTED, Policy.NONE),
    ColumnType.TIMESTAMP: (Policy.TIME_JITTER, Policy.PROTECTED, Policy.NONE),
    ColumnType.LABEL: (Policy.NONE,),
    ColumnType.IGNORE: (Policy.NONE,),
}


class SchemaError(UserError):
    """A schema file or override is invalid."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    role: Role
    policy: Policy
    reason: str
    protected: bool = False  # OCSF says augmentation must not touch it
    heavy_tailed: bool = False  # numeric measure spanning orders of magnitude: log1p before standardising
    outcome_family: bool = False  # status_id, status, status_code, http_response.code, severity_id ...
    missing_share: float = 0.0
    cardinality: int = 0
    examples: tuple[str, ...] = ()
    user_override: bool = False

    @property
    def is_input(self) -> bool:
        return self.type in (ColumnType.NUMERIC, ColumnType.CATEGORICAL, ColumnType.TIMESTAMP)

    @property
    def unsafe_override(self) -> bool:
        """The analyst made a protected field augmentable."""
        return self.protected and self.policy not in (Policy.PROTECTED, Policy.NONE)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["type"], data["role"], data["policy"] = self.type.value, self.role.value, self.policy.value
        data["examples"] = list(self.examples)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ColumnSpec":
        try:
            return cls(
                name=str(data["name"]),
                type=ColumnType(data["type"]),
                role=Role(data["role"]),
                policy=Policy(data.get("policy", Policy.NONE.value)),
                reason=str(data.get("reason", "")),
                protected=bool(data.get("protected", False)),
                heavy_tailed=bool(data.get("heavy_tailed", False)),
                outcome_family=bool(data.get("outcome_family", False)),
                missing_share=float(data.get("missing_share", 0.0)),
                cardinality=int(data.get("cardinality", 0)),
                examples=tuple(str(x) for x in data.get("examples", ())),
                user_override=bool(data.get("user_override", False)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SchemaError(f"invalid column entry {dict(data).get('name', '?')!r}: {exc}") from None


@dataclass(frozen=True)
class Schema:
    columns: tuple[ColumnSpec, ...]
    exclude_outcome: bool = False  # the outcome family is not a model input (still colours and scores)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"duplicate column names in schema: {dupes}")

    # -- lookups ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def is_input(self, column: ColumnSpec) -> bool:
        return column.is_input and not (self.exclude_outcome and column.outcome_family)

    def inputs(self, type: ColumnType) -> list[str]:
        """Model inputs of one type, in schema order (never labels, ignored or excluded outcome columns)."""
        return [c.name for c in self.columns if c.type == type and self.is_input(c)]

    @property
    def numeric(self) -> list[str]:
        return self.inputs(ColumnType.NUMERIC)

    @property
    def categorical(self) -> list[str]:
        return self.inputs(ColumnType.CATEGORICAL)

    @property
    def timestamp(self) -> list[str]:
        return self.inputs(ColumnType.TIMESTAMP)

    @property
    def labels(self) -> list[str]:
        return [c.name for c in self.columns if c.type == ColumnType.LABEL]

    @property
    def outcome_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.outcome_family]

    # -- overrides -------------------------------------------------------------------------
    def with_column(self, name: str, **changes: Any) -> "Schema":
        """A new Schema with one column changed (marked as the analyst's override)."""
        if name not in self:
            raise SchemaError(f"no column named {name!r} in the schema")
        changes = _coerce_enums(changes)
        if "type" in changes and "policy" not in changes:
            allowed = POLICIES_FOR_TYPE[changes["type"]]
            current = self[name].policy
            changes["policy"] = current if current in allowed else _default_policy_for(changes["type"], self[name].protected)
        if changes.get("type") == ColumnType.LABEL:
            changes.setdefault("role", Role.LABEL)
        new = replace(self[name], **changes, user_override=True)
        allowed = POLICIES_FOR_TYPE[new.type]
        if new.policy not in allowed:
            raise SchemaError(
                f"policy {new.policy.value!r} does not apply to {new.type.value} column {name!r}; "
                f"choose one of {[p.value for p in allowed]}"
            )
        return replace(self, columns=tuple(new if c.name == name else c for c in self.columns))

    def with_exclude_outcome(self, flag: bool) -> "Schema":
        return replace(self, exclude_outcome=bool(flag))

    def with_augment(self, augment: AugmentConfig) -> "Schema":
        return replace(self, augment=augment)

    def restricted_to(self, names: Iterable[str]) -> "Schema":
        """The schema of the columns present in a frame (a schema saved on one file, applied to another)."""
        keep = set(names)
        return replace(self, columns=tuple(c for c in self.columns if c.name in keep))

    # -- JSON ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "exclude_outcome": self.exclude_outcome,
            "augment": dataclasses.asdict(self.augment),
            "columns": [c.to_json() for c in self.columns],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Schema":
        if not isinstance(data, Mapping) or "columns" not in data:
            raise SchemaError("not a schema: expected a JSON object with a 'columns' list")
        try:
            augment = AugmentConfig(**data.get("augment", {}))
        except (TypeError, ConfigError) as exc:
            raise SchemaError(f"invalid augment settings in schema: {exc}") from None
        return cls(
            columns=tuple(ColumnSpec.from_json(c) for c in data["columns"]),
            exclude_outcome=bool(data.get("exclude_outcome", False)),
            augment=augment,
        )

    @classmethod
    def loads(cls, text: str) -> "Schema":
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from None

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.dumps())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Schema":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"{path}: cannot read schema ({exc.strerror or exc})") from None
        try:
            return cls.loads(text)
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc}") from None


def _coerce_enums(changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    for key, kind in (("type", ColumnType), ("role", Role), ("policy", Policy)):
        if key in out and not isinstance(out[key], kind):
            try:
                out[key] = kind(out[key])
            except ValueError:
                raise SchemaError(f"{key} must be one of {[k.value for k in kind]}, got {out[key]!r}") from None
    return out


def _default_policy_for(type: ColumnType, protected: bool) -> Policy:
    if type in (ColumnType.LABEL, ColumnType.IGNORE):
        return Policy.NONE
    if protected:
        return Policy.PROTECTED
    return POLICIES_FOR_TYPE[type][0]


# ---------------------------------------------------------------------------------------------
# Inference: OCSF knowledge first (engine.ocsf), then statistics. Implemented below.
# ---------------------------------------------------------------------------------------------
# The imports live here so the data classes above stay independent of pandas and of OCSF knowledge.
import logging  # noqa: E402
import re  # noqa: E402
import time as _time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from engine import ocsf  # noqa: E402

logger = logging.getLogger(__name__)

# -- named thresholds --------------------------------------------------------------------------
UNIQUE_ID_RATIO = 0.95  # distinct / non-missing above this: an identifier, every row its own category
MIN_ROWS_FOR_UNIQUENESS = 20  # below this many values, "all distinct" says nothing
ENUM_MAX_CARDINALITY = 64  # integer codes (*_id, *_code) with at most this many values are enums
FLAG_MAX_CARDINALITY = 2  # any integer column with at most this many values is a flag
PORT_TOP_K = 100  # ports: the most common this many values...
PORT_MIN_TOP_SHARE = 0.9  # ...must cover this share of rows for service ports (22, 443, 3389 mean something)
FREE_TEXT_MIN_CHARS = 40  # strings at least this long on average read as text...
FREE_TEXT_UNIQUE_RATIO = 0.5  # ...and, when this share of them is distinct, as free text, not a category
HEAVY_TAIL_RATIO = 100.0  # p99 / median of the non-zero |values| above this: spans orders of magnitude
EPOCH_MS_MIN, EPOCH_MS_MAX = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01 in epoch ms
EPOCH_S_MIN, EPOCH_S_MAX = EPOCH_MS_MIN // 1000, EPOCH_MS_MAX // 1000  # the same in seconds (OCSF time fields only)
SAMPLE_SIZE = 200  # values looked at for JSON, text length and date checks
JSON_SHARE = 0.9  # share of sampled strings that must look like JSON for a JSON column
DATE_SHARE = 0.9  # share of sampled strings of an OCSF time field that must parse as dates
N_EXAMPLES = 3
EXAMPLE_MAX_CHARS = 60

ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?")
CODE_SUFFIXES = ("_id", "_code", "code", "_num")  # integer columns named like codes are enums when small

FAMILY_ROLES: dict[str | None, Role] = {
    ocsf.LABEL: Role.LABEL, ocsf.CLASSIFICATION: Role.CLASSIFICATION, ocsf.SEVERITY: Role.SEVERITY,
    ocsf.OUTCOME: Role.OUTCOME, ocsf.IDENTITY: Role.IDENTITY, ocsf.MEASURE: Role.MEASURE, ocsf.TIME: Role.TIME,
    ocsf.PORT: Role.CONTEXT, ocsf.MASKABLE: Role.CONTEXT, ocsf.ID: Role.ID, ocsf.TEXT: Role.TEXT,
    ocsf.DUPLICATE: Role.CONTEXT, ocsf.CONTEXT: Role.CONTEXT,
}
FAMILY_WORDS: dict[str | None, str] = {
    ocsf.CLASSIFICATION: "OCSF classification", ocsf.SEVERITY: "OCSF severity (outcome family)",
    ocsf.OUTCOME: "OCSF outcome", ocsf.IDENTITY: "OCSF identity", ocsf.MEASURE: "OCSF measure",
    ocsf.TIME: "OCSF time", ocsf.PORT: "OCSF port", ocsf.MASKABLE: "OCSF id-like context",
    ocsf.ID: "OCSF unique id", ocsf.TEXT: "OCSF free text", ocsf.DUPLICATE: "OCSF duplicate (repeats other fields)",
    ocsf.CONTEXT: "OCSF context", None: "not a known OCSF field",
}


@dataclass(frozen=True)
class ColumnStats:
    """What inference knows about one column: its OCSF path and family, and cheap statistics."""

    name: str
    path: str  # canonical dotted OCSF path
    family: str | None  # engine.ocsf family, None when OCSF says nothing
    kind: str  # bool | int | float | string | datetime | nested | mixed | empty
    n_values: int  # non-missing
    missing_share: float
    cardinality: int  # distinct non-missing values
    examples: tuple[str, ...]
    top_share: float = 0.0  # share of the non-missing values covered by the PORT_TOP_K most common ones
    mean_chars: float = 0.0  # strings: mean length over the sample
    json_kind: str | None = None  # strings: "object" | "array" when they are JSON
    iso_dates: bool = False  # strings: every sampled value is an ISO 8601 date/datetime
    date_share: float = 0.0  # strings of OCSF time fields: share of the sample that parses as dates
    minimum: float = float("nan")  # numeric kinds, over finite values
    maximum: float = float("nan")
    integral: bool = False  # numeric: every value is a whole number
    tail_ratio: float = 0.0  # numeric: p99 / median of the non-zero |values|

    @property
    def distinct_share(self) -> float:
        return self.cardinality / self.n_values if self.n_values else 0.0

    @property
    def constant(self) -> bool:
        """One state only: a single value and no missing, or nothing but missing."""
        return self.cardinality == 0 or (self.cardinality == 1 and self.missing_share == 0.0)

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def textual(self) -> bool:
        return self.kind in ("string", "mixed")

    @property
    def leaf(self) -> str:
        return self.path.rpartition(".")[2]


@dataclass(frozen=True)
class _Context:
    """What rules may know about the whole frame."""

    paths: frozenset[str]
    name_of_path: Mapping[str, str]
    labels: frozenset[str]
    activity_encodes_outcome: bool  # Network Activity rows with activity 4 Fail / 5 Refuse are present


@dataclass(frozen=True)
class _Verdict:
    type: ColumnType
    why: str  # what the rule saw, for a human
    rule: str  # the rule's name
    role: Role | None = None  # None: from the OCSF family, else from the type
    heavy_tailed: bool = False


# -- statistics ---------------------------------------------------------------------------------
def _sample_positions(notna: np.ndarray) -> np.ndarray:
    """Evenly spaced positions of non-missing values: deterministic, no random state."""
    positions = np.flatnonzero(notna)
    if len(positions) <= SAMPLE_SIZE:
        return positions
    return positions[np.linspace(0, len(positions) - 1, SAMPLE_SIZE).astype(np.int64)]


def _is_nested_value(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple, set, np.ndarray))


INFERRED_KINDS = {
    "string": "string", "boolean": "bool", "integer": "int", "floating": "float", "mixed-integer-float": "float",
    "decimal": "float", "datetime": "datetime", "datetime64": "datetime", "date": "datetime", "empty": "empty",
}


def _kind_of(series: pd.Series, sample: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if len(sample) == 0:
        return "empty"
    if any(_is_nested_value(v) for v in sample):
        return "nested"
    return INFERRED_KINDS.get(pd.api.types.infer_dtype(sample, skipna=True), "mixed")


def _counts(series: pd.Series, kind: str) -> pd.Series:
    """Value counts of the non-missing values (unhashable nested values are counted by their text)."""
    if kind == "nested":
        series = series.dropna().map(repr)
    try:
        return series.value_counts(dropna=True, sort=True)
    except TypeError:  # a stray unhashable value in an object column
        return series.dropna().map(repr).value_counts(sort=True)


def _example_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= EXAMPLE_MAX_CHARS else text[: EXAMPLE_MAX_CHARS - 1] + "…"


def _numeric_values(series: pd.Series, kind: str) -> np.ndarray:
    """float64 finite non-missing values."""
    if kind in ("int", "float") and pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def _numeric_stats(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {}
    magnitudes = np.abs(values[values != 0])
    tail_ratio = 0.0
    if len(magnitudes):
        median, p99 = np.quantile(magnitudes, [0.5, 0.99])
        with np.errstate(over="ignore"):  # p99 / a tiny median may overflow to inf: still "heavy"
            tail_ratio = float(p99 / median) if median > 0 else 0.0
    return {
        "minimum": float(values.min()), "maximum": float(values.max()),
        "integral": bool(np.all(values == np.round(values))), "tail_ratio": tail_ratio,
    }


def _json_kind(texts: list[str]) -> str | None:
    if not texts:
        return None
    stripped = [t.strip() for t in texts]
    objects = sum(t.startswith("{") and t.endswith("}") for t in stripped)
    arrays = sum(t.startswith("[") and t.endswith("]") for t in stripped)
    if objects >= JSON_SHARE * len(stripped):
        return "object"
    if arrays >= JSON_SHARE * len(stripped):
        return "array"
    return None


def _date_share(texts: list[str]) -> float:
    if not texts:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(pd.Series(texts), utc=True, errors="coerce", format="mixed")
    return float(parsed.notna().mean())


def _text_stats(sample: pd.Series, family: str | None) -> dict[str, Any]:
    texts = [str(v) for v in sample]
    if not texts:
        return {}
    return {
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "json_kind": _json_kind(texts),
        "iso_dates": all(ISO_DATETIME.fullmatch(t.strip()) for t in texts),
        "date_share": _date_share(texts) if family == ocsf.TIME else 0.0,
    }


def column_stats(name: str, series: pd.Series) -> ColumnStats:
    """The statistics rules look at: one value_counts, one missing mask, a small evenly spaced sample."""
    path = ocsf.canonical_path(name)
    family = ocsf.family_of(path)
    notna = series.notna().to_numpy(dtype=bool)
    sample = series.iloc[_sample_positions(notna)]
    kind = _kind_of(series, sample)
    counts = _counts(series, kind)
    n_values = int(notna.sum())
    extra: dict[str, Any] = {}
    if kind in ("int", "float"):
        extra = _numeric_stats(_numeric_values(series, kind))
    elif kind in ("string", "mixed"):
        extra = _text_stats(sample, family)
    return ColumnStats(
        name=name, path=path, family=family, kind=kind, n_values=n_values,
        missing_share=float(1.0 - n_values / len(series)) if len(series) else 1.0,
        cardinality=int(len(counts)),
        examples=tuple(_example_text(v) for v in counts.index[:N_EXAMPLES]),
        top_share=float(counts.iloc[:PORT_TOP_K].sum() / n_values) if n_values else 0.0,
        **extra,
    )


# -- rules: each looks at one kind of evidence and returns a verdict or None ---------------------
def _values(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"


def _rule_label(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.name in ctx.labels or s.path in ctx.labels:
        return _Verdict(ColumnType.LABEL, "named as a label by the user, never a model input", "label", role=Role.LABEL)
    if s.family == ocsf.LABEL:
        return _Verdict(ColumnType.LABEL, "label/annotation column (_label.*, anomaly*, is_anomaly), never a model input",
                        "label", role=Role.LABEL)
    return None


def _rule_empty(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.n_values == 0:
        return _Verdict(ColumnType.IGNORE, "all values missing", "empty")
    return None


def _rule_nested(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.kind == "nested":
        return _Verdict(ColumnType.IGNORE, "nested objects/arrays, not flattened: not an input", "nested")
    if s.json_kind == "object":
        return _Verdict(ColumnType.IGNORE, "JSON object text: its fields arrive as their own columns", "json")
    if s.json_kind == "array":
        return _Verdict(ColumnType.IGNORE, "JSON array text: its items are not typed (use its .count)", "json")
    return None


def _rule_constant(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.constant:
        return _Verdict(ColumnType.IGNORE, f"constant (only {s.examples[0]!r}): nothing to learn", "constant")
    return None


def _rule_caption(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    id_path = ocsf.caption_of(s.path, ctx.paths)
    if id_path is None:
        return None
    return _Verdict(ColumnType.IGNORE, f"caption duplicating {ctx.name_of_path[id_path]}: not an input", "caption")


def _rule_not_input(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.family not in (ocsf.ID, ocsf.TEXT, ocsf.DUPLICATE):
        return None
    return _Verdict(ColumnType.IGNORE, f"{FAMILY_WORDS[s.family]}: not an input by default", "ocsf-not-input")


def _looks_like_epoch(s: ColumnStats, *, seconds_too: bool) -> bool:
    in_ms = EPOCH_MS_MIN <= s.minimum and s.maximum <= EPOCH_MS_MAX
    in_s = seconds_too and EPOCH_S_MIN <= s.minimum and s.maximum <= EPOCH_S_MAX
    return s.numeric and (in_ms or in_s)


def _rule_time(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.kind == "datetime":
        return _Verdict(ColumnType.TIMESTAMP, "datetime values", "time", role=Role.TIME)
    if s.family == ocsf.TIME:
        if _looks_like_epoch(s, seconds_too=True):
            return _Verdict(ColumnType.TIMESTAMP, "OCSF time, epoch values in 2000-2100", "ocsf-time")
        if s.textual and (s.iso_dates or s.date_share >= DATE_SHARE):
            return _Verdict(ColumnType.TIMESTAMP, "OCSF time, date strings", "ocsf-time")
        return _Verdict(ColumnType.IGNORE, "OCSF time field but the values are not epoch ms/s in 2000-2100 nor dates",
                        "ocsf-time")
    if s.family is None and _looks_like_epoch(s, seconds_too=False):
        return _Verdict(ColumnType.TIMESTAMP, "numbers that are epoch milliseconds in 2000-2100", "epoch-ms", role=Role.TIME)
    if s.family is None and s.textual and s.iso_dates:
        return _Verdict(ColumnType.TIMESTAMP, "ISO 8601 date strings", "iso-date", role=Role.TIME)
    return None


def _is_free_text(s: ColumnStats) -> bool:
    return s.textual and s.mean_chars >= FREE_TEXT_MIN_CHARS and s.distinct_share > FREE_TEXT_UNIQUE_RATIO


def _rule_ocsf_enum(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.family not in (ocsf.CLASSIFICATION, ocsf.OUTCOME, ocsf.SEVERITY):
        return None
    words = FAMILY_WORDS[s.family]
    if _is_free_text(s):
        return _Verdict(ColumnType.IGNORE, f"{words} but free text ({s.cardinality} distinct long strings)", "free-text")
    return _Verdict(ColumnType.CATEGORICAL, f"{words} enum ({_values(s.cardinality)})", "ocsf-enum")


def _rule_port(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.family != ocsf.PORT:
        return None
    near_unique = s.n_values >= MIN_ROWS_FOR_UNIQUENESS and s.distinct_share > UNIQUE_ID_RATIO
    if s.top_share >= PORT_MIN_TOP_SHARE and not near_unique:
        return _Verdict(ColumnType.CATEGORICAL, f"OCSF port, {_values(s.cardinality)}, the top {PORT_TOP_K} cover "
                                                f"{s.top_share:.0%} of rows: service ports mean something", "port")
    return _Verdict(ColumnType.IGNORE, f"OCSF port, {_values(s.cardinality)}, the top {PORT_TOP_K} cover only "
                                       f"{s.top_share:.0%} of rows: ephemeral ports, a random number per connection", "port")


def _rule_identity(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.family != ocsf.IDENTITY:
        return None
    if s.n_values >= MIN_ROWS_FOR_UNIQUENESS and s.distinct_share > UNIQUE_ID_RATIO:
        return _Verdict(ColumnType.IGNORE, f"OCSF identity but unique per row ({s.distinct_share:.0%} distinct)", "unique-id")
    return _Verdict(ColumnType.CATEGORICAL, f"OCSF identity ({_values(s.cardinality)}); swapping creates false associations",
                    "ocsf-identity")


def _rule_boolean(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.kind == "bool":
        return _Verdict(ColumnType.CATEGORICAL, "boolean flag", "boolean")
    return None


def _rule_integer_code(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if not (s.numeric and s.integral) or s.family == ocsf.MEASURE:
        return None
    if s.leaf.endswith(CODE_SUFFIXES) and s.cardinality <= ENUM_MAX_CARDINALITY:
        return _Verdict(ColumnType.CATEGORICAL, f"integer code enum ({_values(s.cardinality)}), categorical although numeric",
                        "enum-code")
    if s.cardinality <= FLAG_MAX_CARDINALITY:
        return _Verdict(ColumnType.CATEGORICAL, f"integer flag ({_values(s.cardinality)})", "flag")
    return None


def _rule_measure(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if not s.numeric:
        return None
    ocsf_heavy = ocsf.is_heavy_tailed_measure(s.path)
    data_heavy = s.tail_ratio > HEAVY_TAIL_RATIO
    tail = ("heavy-tailed per OCSF" if ocsf_heavy else
            f"heavy-tailed (p99/median {s.tail_ratio:.0f} > {HEAVY_TAIL_RATIO:.0f})" if data_heavy else "")
    if ocsf.is_array_count(s.path, ctx.paths):
        what, rule = "array item count", "array-count"
    elif s.family == ocsf.MEASURE:
        what, rule = "OCSF measure", "ocsf-measure"
    else:
        what, rule = f"numbers ({_values(s.cardinality)})", "numeric"
    why = f"{what}, {tail}" if tail else what
    role = Role.MEASURE if s.family in (None, ocsf.MEASURE, ocsf.CONTEXT) else None
    return _Verdict(ColumnType.NUMERIC, why, rule, role=role, heavy_tailed=ocsf_heavy or data_heavy)


def _rule_unique_id(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if s.n_values >= MIN_ROWS_FOR_UNIQUENESS and s.distinct_share > UNIQUE_ID_RATIO:
        return _Verdict(ColumnType.IGNORE, f"unique id: {s.distinct_share:.0%} of values distinct", "unique-id", role=Role.ID)
    return None


def _rule_free_text(s: ColumnStats, ctx: _Context) -> _Verdict | None:
    if _is_free_text(s):
        return _Verdict(ColumnType.IGNORE, f"free text ({s.cardinality} distinct, {s.mean_chars:.0f} chars on average)",
                        "free-text", role=Role.TEXT)
    return None


def _rule_categorical(s: ColumnStats, ctx: _Context) -> _Verdict:
    words = FAMILY_WORDS[s.family]
    masked = "; masked rather than swapped" if s.family == ocsf.MASKABLE else ""
    return _Verdict(ColumnType.CATEGORICAL, f"{words} ({_values(s.cardinality)}){masked}", "categorical")


# The first rule with a verdict decides. OCSF knowledge comes before statistics.
RULES = (
    _rule_label, _rule_empty, _rule_nested, _rule_constant, _rule_caption, _rule_not_input, _rule_time,
    _rule_ocsf_enum, _rule_port, _rule_identity, _rule_boolean, _rule_integer_code, _rule_measure,
    _rule_free_text, _rule_unique_id,  # long unique strings are text; short ones are ids
)


def _decide(s: ColumnStats, ctx: _Context) -> _Verdict:
    for rule in RULES:
        verdict = rule(s, ctx)
        if verdict is not None:
            return verdict
    return _rule_categorical(s, ctx)


# -- assembling a ColumnSpec --------------------------------------------------------------------
def _policy_for(type: ColumnType, role: Role, family: str | None) -> Policy:
    if type in (ColumnType.LABEL, ColumnType.IGNORE):
        return Policy.NONE
    if family in ocsf.PROTECTED_FAMILIES:
        return Policy.PROTECTED
    if type == ColumnType.TIMESTAMP:
        return Policy.TIME_JITTER
    if type == ColumnType.NUMERIC:
        return Policy.JITTER
    if family == ocsf.MASKABLE or role == Role.ID:
        return Policy.MASK
    return Policy.SWAP


def _default_role(s: ColumnStats, type: ColumnType) -> Role:
    if s.family is not None:
        return FAMILY_ROLES[s.family]
    return Role.MEASURE if type == ColumnType.NUMERIC else Role.CONTEXT


def _is_outcome_family(s: ColumnStats, ctx: _Context) -> bool:
    if s.family in ocsf.OUTCOME_FAMILIES:
        return True
    return ctx.activity_encodes_outcome and s.path in ("activity_id", "type_uid")


def _reason(s: ColumnStats, verdict: _Verdict, type: ColumnType, policy: Policy, ctx: _Context) -> str:
    read_as = f" [read as {s.path}]" if s.path != s.name else ""
    outcome = ""
    if ctx.activity_encodes_outcome and s.path in ("activity_id", "type_uid"):
        outcome = "; also encodes the outcome (Network Activity 4 Fail, 5 Refuse)"
    decided = type.value if policy == Policy.NONE else f"{type.value}, {policy.value}"
    return f"{s.name}: {verdict.why}{outcome}{read_as} -> {decided} (rule: {verdict.rule})"


def _spec(s: ColumnStats, ctx: _Context) -> ColumnSpec:
    verdict = _decide(s, ctx)
    role = verdict.role or _default_role(s, verdict.type)
    policy = _policy_for(verdict.type, role, s.family)
    if verdict.rule == "array-count":
        policy = Policy.NONE  # "3.2 observables" is no event: item counts stay as they are (still an input)
    return ColumnSpec(
        name=s.name, type=verdict.type, role=role, policy=policy,
        reason=_reason(s, verdict, verdict.type, policy, ctx),
        protected=s.family in ocsf.PROTECTED_FAMILIES,
        heavy_tailed=verdict.heavy_tailed,
        outcome_family=_is_outcome_family(s, ctx),
        missing_share=round(s.missing_share, 6), cardinality=s.cardinality, examples=s.examples,
    )


def _activity_encodes_outcome(df: pd.DataFrame, name_of_path: Mapping[str, str]) -> bool:
    if "class_uid" not in name_of_path or "activity_id" not in name_of_path:
        return False
    classes = pd.to_numeric(df[name_of_path["class_uid"]], errors="coerce")
    activities = pd.to_numeric(df[name_of_path["activity_id"]], errors="coerce")
    return any(
        bool(((classes == class_uid) & activities.isin(list(failing))).any())
        for class_uid, failing in ocsf.OUTCOME_ACTIVITIES.items()
    )


def _context(df: pd.DataFrame, names: list[str], labels: Iterable[str]) -> _Context:
    name_of_path: dict[str, str] = {}
    for name in names:
        name_of_path.setdefault(ocsf.canonical_path(name), name)
    labels = frozenset(str(label) for label in labels)
    known = set(names) | set(name_of_path)
    missing = sorted(labels - known)
    if missing:
        raise SchemaError(f"label column(s) {missing} not in the data; columns are {names[:10]}{' ...' if len(names) > 10 else ''}")
    return _Context(
        paths=frozenset(name_of_path), name_of_path=name_of_path, labels=labels,
        activity_encodes_outcome=_activity_encodes_outcome(df, name_of_path),
    )


def infer_schema(df: pd.DataFrame, *, exclude_outcome: bool = False, labels: Iterable[str] = ()) -> Schema:
    """One ColumnSpec per column: OCSF knowledge first (engine.ocsf), then statistics.

    ``labels`` names extra label columns (never inputs); ``exclude_outcome`` keeps the outcome
    family typed (for colouring and scoring) but out of the model inputs.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"infer_schema needs a pandas DataFrame, got {type(df).__name__}")
    started = _time.perf_counter()
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise SchemaError(f"duplicate column names in the data: {dupes}")
    ctx = _context(df, names, labels)
    columns = tuple(_spec(column_stats(name, df.iloc[:, i]), ctx) for i, name in enumerate(names))
    logger.info("inferred a schema for %d columns x %d rows in %.2f s", len(columns), len(df), _time.perf_counter() - started)
    return Schema(columns=columns, exclude_outcome=bool(exclude_outcome))
