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
