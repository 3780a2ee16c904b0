"""The schema as an editable table, and the overrides an edited table implies.

Pure pandas (no streamlit), so the Data page's one branch worth testing is tested without a browser.
"""
from __future__ import annotations

import pandas as pd

from engine.schema import ColumnType, Role, Schema

EDITABLE = ("type", "role")
TABLE_COLUMNS = ["column", "type", "role", "input", "reason", "missing", "cardinality", "examples"]


def schema_frame(schema: Schema) -> pd.DataFrame:
    """One row per column: what the analyst reviews and edits."""
    rows = [
        {
            "column": c.name,
            "type": c.type.value,
            "role": c.role.value,
            "input": schema.is_input(c),
            "reason": c.reason,
            "missing": float(c.missing_share),
            "cardinality": int(c.cardinality),
            "examples": ", ".join(c.examples),
        }
        for c in schema.columns
    ]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def apply_edits(schema: Schema, edited: pd.DataFrame) -> Schema:
    """The schema with every changed type or role in ``edited`` applied as an override."""
    new = schema
    for row in edited.itertuples(index=False):
        spec = new[row.column]
        changes = {}
        if row.type != spec.type.value:
            changes["type"] = ColumnType(row.type)
        if row.role != spec.role.value:
            changes["role"] = Role(row.role)
        if changes:
            new = new.with_column(row.column, **changes)
    return new


TYPE_OPTIONS = [t.value for t in ColumnType]
ROLE_OPTIONS = [r.value for r in Role]
