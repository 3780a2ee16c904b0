"""Augmentation page helpers: the encoder for the current data, the policy table, the highlighted preview."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.augment import AugmentationPolicy, Preview
from engine.errors import UserError
from engine.features import FeatureEncoder
from engine.schema import POLICIES_FOR_TYPE, ColumnType, Policy, Schema
from ui.state import Dataset

CHANGED_STYLE = "background-color: #fde68a; font-weight: 600"
BADGES = {"safe": "✓ safe", "protected": "🔒 protected", "overridden": "⚠ unsafe: protection overridden"}


def fitted_encoder(data: Dataset, schema: Schema) -> FeatureEncoder:
    """The encoder for this data and these inputs, fitted once per session and input set."""
    key = (data.source, data.rows, tuple(schema.numeric), tuple(schema.categorical), tuple(schema.timestamp))
    cache = st.session_state.setdefault("_encoder_cache", {})
    if key not in cache:
        cache.clear()
        cache[key] = FeatureEncoder(schema).fit(data.frame)
    return cache[key]


def badge(field) -> str:
    if field.overridden:
        return BADGES["overridden"]
    return BADGES["protected"] if field.protected else BADGES["safe"]


def policy_table(policy: AugmentationPolicy) -> pd.DataFrame:
    return pd.DataFrame(
        [{"field": f.name, "type": f.type.value, "policy": f.policy.value, "badge": badge(f), "reason": f.reason}
         for f in policy.fields],
        columns=["field", "type", "policy", "badge", "reason"],
    )


def policy_changes(policy: AugmentationPolicy, edited: pd.DataFrame) -> dict[str, Policy]:
    """{field: new policy} for every row whose policy the analyst changed (invalid choices raise UserError)."""
    changes = {}
    for row in edited.itertuples(index=False):
        current = policy[row.field]
        if row.policy != current.policy.value:
            new = Policy(row.policy)
            if new not in POLICIES_FOR_TYPE[ColumnType(row.type)]:
                allowed = ", ".join(p.value for p in POLICIES_FOR_TYPE[ColumnType(row.type)])
                raise UserError(f"{row.field}: policy {new.value!r} does not apply to a {row.type} field (choose {allowed})")
            changes[row.field] = new
    return changes


def unsafe_changes(policy: AugmentationPolicy, changes: dict[str, Policy]) -> list[str]:
    """Fields whose change would make a protected field augmentable: these need an explicit confirmation."""
    return [name for name, new in changes.items()
            if policy[name].protected and not policy[name].overridden and new not in (Policy.PROTECTED, Policy.NONE)]


def apply_changes(schema: Schema, changes: dict[str, Policy]) -> Schema:
    for name, new in changes.items():
        schema = schema.with_column(name, policy=new)
    return schema


def pick_rows(frame: pd.DataFrame, mode: str, *, seed: int, n: int, rows_text: str = "", column: str | None = None,
              value: str | None = None) -> pd.DataFrame:
    """The events to preview: a random sample, given row numbers, or rows where a column has a value."""
    if mode == "rows":
        try:
            wanted = [int(x) for x in rows_text.replace(";", ",").split(",") if x.strip()]
        except ValueError:
            raise UserError(f"row numbers must be integers separated by commas, got {rows_text!r}") from None
        bad = [r for r in wanted if not 0 <= r < len(frame)]
        if bad:
            raise UserError(f"row numbers must be between 0 and {len(frame) - 1}, got {bad}")
        if not wanted:
            raise UserError("type one or more row numbers, e.g. 0, 17, 4096")
        return frame.iloc[wanted]
    pool = frame
    if mode == "filter" and column is not None:
        texts = frame[column].astype("string").fillna("<NA>")
        pool = frame[(texts == value).to_numpy()]
        if pool.empty:
            raise UserError(f"no event has {column} = {value!r}")
    rng = np.random.default_rng(seed)
    take = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return pool.iloc[np.sort(take)]


def event_table(preview: Preview, position: int, fields: list[str], only_changed: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One event, transposed: a row per input field, columns original / view 1 / view 2."""
    cols = [f for f in fields if f in preview.original.columns]
    table = pd.DataFrame({
        "original": preview.original.iloc[position][cols].astype(str),
        "view 1": preview.view1.iloc[position][cols].astype(str),
        "view 2": preview.view2.iloc[position][cols].astype(str),
    })
    changed = pd.DataFrame({
        "original": False,
        "view 1": preview.changed1.iloc[position][cols].astype(bool),
        "view 2": preview.changed2.iloc[position][cols].astype(bool),
    })
    if only_changed:
        keep = changed["view 1"] | changed["view 2"]
        table, changed = table[keep], changed[keep]
    return table, changed


def highlight(table: pd.DataFrame, changed: pd.DataFrame):
    """A Styler with the changed cells highlighted."""
    styles = changed.replace({True: CHANGED_STYLE, False: ""}).astype(str)
    return table.style.apply(lambda _: styles, axis=None)
