"""The UI's pure helpers: schema table edits, policy edits and their guard, row picking, config diffs."""
from __future__ import annotations

import pandas as pd
import pytest

from engine.augment import AugmentationPolicy
from engine.config import RunConfig
from engine.errors import UserError
from engine.features import FeatureEncoder
from engine.ingest import load
from engine.schema import ColumnType, Policy, infer_schema
from ui.augment_view import apply_changes, pick_rows, policy_changes, policy_table, unsafe_changes
from ui.run_table import config_diff
from ui.schema_table import apply_edits, schema_frame


@pytest.fixture(scope="module")
def demo(small_events_file):
    frame, _ = load(small_events_file)
    schema = infer_schema(frame)
    return frame, schema


def test_schema_table_round_trip_applies_only_edited_rows(demo):
    frame, schema = demo
    table = schema_frame(schema)
    assert list(table["column"]) == schema.names
    assert apply_edits(schema, table) == schema  # no edit, same schema
    edited = table.copy()
    edited.loc[edited["column"] == "duration", "type"] = "label"
    new = apply_edits(schema, edited)
    assert new["duration"].type == ColumnType.LABEL and new["duration"].user_override
    assert "duration" not in new.numeric and "duration" in schema.numeric
    assert [c for c in new.names if new[c] != schema[c]] == ["duration"]


def test_making_a_protected_field_augmentable_is_flagged_for_confirmation(demo):
    frame, schema = demo
    policy = AugmentationPolicy.from_schema(schema, FeatureEncoder(schema).fit(frame))
    table = policy_table(policy)
    table.loc[table["field"] == "status_id", "policy"] = "swap"
    table.loc[table["field"] == "duration", "policy"] = "protected"
    changes = policy_changes(policy, table)
    assert changes == {"status_id": Policy.SWAP, "duration": Policy.PROTECTED}
    assert unsafe_changes(policy, changes) == ["status_id"]  # protecting a field needs no confirmation
    new = apply_changes(schema, changes)
    assert new["status_id"].unsafe_override and not schema["status_id"].unsafe_override


def test_a_policy_that_does_not_fit_the_type_is_refused(demo):
    frame, schema = demo
    policy = AugmentationPolicy.from_schema(schema, FeatureEncoder(schema).fit(frame))
    table = policy_table(policy)
    table.loc[table["field"] == "duration", "policy"] = "swap"
    with pytest.raises(UserError, match="duration"):
        policy_changes(policy, table)


def test_pick_rows_by_number_filter_and_random(demo):
    frame, _ = demo
    assert list(pick_rows(frame, "rows", seed=0, n=5, rows_text="3, 1").index) == [3, 1]
    with pytest.raises(UserError, match="between 0"):
        pick_rows(frame, "rows", seed=0, n=5, rows_text=f"{len(frame)}")
    failures = pick_rows(frame, "filter", seed=0, n=5, column="status_id", value="2")
    assert len(failures) == 5 and (failures["status_id"] == 2).all()
    with pytest.raises(UserError, match="no event has"):
        pick_rows(frame, "filter", seed=0, n=5, column="status_id", value="42")
    a, b = (pick_rows(frame, "random", seed=s, n=5) for s in (1, 2))
    assert len(a) == 5 and list(a.index) != list(b.index)
    assert list(pick_rows(frame, "random", seed=1, n=5).index) == list(a.index)


def test_config_diff_lists_only_differing_fields():
    base = RunConfig()
    other = base.with_overrides({"d_model": 128, "lr": 0.002})
    diff = config_diff({"a": base, "b": other})
    assert sorted(diff.index) == ["d_model", "lr"]
    assert diff.loc["d_model"].tolist() == ["256", "128"]
    assert config_diff({"a": base, "b": base}).empty
