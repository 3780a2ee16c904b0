"""engine.schema: inference round trip on events whose schema is known, and the Schema value object."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.schema import (
    POLICIES_FOR_TYPE,
    ColumnType as T,
    Policy as P,
    Role as R,
    Schema,
    SchemaError,
    infer_schema,
)

TUTORIAL = Path(__file__).resolve().parents[2] / "data" / "tutorial" / "ocsf_logs.parquet"
CLASSES = {3002: 3, 4001: 4, 4002: 4, 6003: 6, 1007: 1}  # class_uid -> category_uid
ACTIVITIES = {3002: [1, 2], 4001: [1, 2, 5, 6], 4002: [3, 6], 6003: [1, 2, 3, 4], 1007: [1, 2]}
T0_MS = 1_767_225_600_000  # 2026-01-01 in epoch ms


def _only(mask: np.ndarray, values) -> list:
    """values where mask holds, None elsewhere (fields a class does not have)."""
    return [v if m else None for v, m in zip(values, mask)]


def ocsf_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """Flattened (dotted) OCSF-shaped events across classes 3002/4001/4002/6003/1007."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(list(CLASSES), size=n)
    is_ = {c: classes == c for c in CLASSES}
    activity = np.array([rng.choice(ACTIVITIES[c]) for c in classes])
    failed = rng.random(n) < 0.2
    status_id = np.where(failed, 2, 1)
    users = [f"user{i}" for i in range(8)]
    web = is_[4002] | is_[6003]
    sessions = rng.integers(0, 40, size=n)
    cmd_lines = [f"/usr/bin/python3 /opt/jobs/nightly_task_{i}.py --verbose --retries 3" for i in range(10)]
    return pd.DataFrame({
        "time": T0_MS + np.sort(rng.integers(0, 86_400_000, size=n)),
        "class_uid": classes,
        "class_name": [{3002: "Authentication", 4001: "Network Activity", 4002: "HTTP Activity",
                        6003: "API Activity", 1007: "Process Activity"}[c] for c in classes],
        "category_uid": [CLASSES[c] for c in classes],
        "activity_id": activity,
        "activity_name": [f"activity {a}" for a in activity],
        "type_uid": classes * 100 + activity,
        "severity_id": rng.choice([1, 2, 3], size=n),
        "severity": rng.choice(["Informational", "Low", "Medium"], size=n),
        "status_id": status_id,
        "status": np.where(failed, "Failure", "Success"),
        "status_detail": _only(failed, rng.choice(["bad password", "timeout", "denied"], size=n)),
        "http_response.code": _only(web, np.where(failed, 503, 200).astype(float)),
        "message": [f"event {i} happened for user {rng.integers(1000)}" for i in range(n)],
        "raw_data": [json.dumps({"i": i, "x": float(v)})[::-1] for i, v in enumerate(rng.random(n))],
        "metadata.uid": [f"{i:032x}" for i in rng.integers(0, 2**62, size=n)],
        "metadata.version": "1.1.0",
        "metadata.product.name": rng.choice(["okta", "zeek", "nginx"], size=n),
        "metadata.original_time": pd.to_datetime(T0_MS + rng.integers(0, 86_400_000, size=n), unit="ms")
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "user.name": _only(is_[3002], rng.choice(users, size=n)),
        "actor.user.name": _only(is_[6003] | is_[1007], rng.choice(users, size=n)),
        "src_endpoint.ip": [f"10.0.0.{i}" for i in rng.integers(1, 30, size=n)],
        "dst_endpoint.hostname": rng.choice(["db1", "web1", "web2", "dc1"], size=n),
        "src_endpoint.port": rng.integers(49152, 65536, size=n),
        "dst_endpoint.port": rng.choice([22, 443, 3389, 8080], size=n),
        "duration": np.round(rng.lognormal(3.0, 2.0, size=n), 3),
        "traffic.bytes_in": _only(is_[4001], rng.integers(40, 10_000_000, size=n).astype(float)),
        "http_response.latency": _only(web, rng.gamma(2.0, 30.0, size=n)),
        "count": rng.integers(1, 5, size=n),
        "http_request.user_agent": _only(web, rng.choice(["curl/8.0", "Mozilla/5.0", "python-requests"], size=n)),
        "http_request.url.path": _only(web, rng.choice([f"/api/v1/items/{i}" for i in range(30)], size=n)),
        "auth_protocol_id": _only(is_[3002], rng.choice([1, 2, 99], size=n).astype(float)),
        "auth_protocol": _only(is_[3002], rng.choice(["NTLM", "Kerberos", "Other"], size=n)),
        "is_mfa": rng.random(n) < 0.5,
        "process.cmd_line": _only(is_[1007], rng.choice(cmd_lines, size=n)),
        "process.pid": rng.integers(100, 60_000, size=n),
        "actor.session.uid": [f"sess-{s:04d}" for s in sessions],
        "trace_id": [f"{i:016x}" for i in rng.integers(0, 2**62, size=n)],
        "observables": [json.dumps([{"name": "ip", "type_id": 2}])] * n,
        "observables.count": np.ones(n, dtype=np.int64),
        "unmapped.vendor_field": rng.choice(["a", "b", "c"], size=n),
        "unmapped.nothing": [None] * n,
        "custom_score": rng.lognormal(0.0, 3.0, size=n),
        "custom_seen_at": pd.to_datetime(T0_MS + rng.integers(0, 10**9, size=n), unit="ms").strftime("%Y-%m-%d %H:%M:%S"),
        "custom_epoch": T0_MS + rng.integers(0, 10**9, size=n),
        "_label.is_anomaly": rng.random(n) < 0.05,
        "_label.scenario": rng.choice(["normal", "brute_force", "exfil"], size=n),
    })


# column -> (type, role, policy, protected, outcome_family, heavy_tailed): the known answer
EXPECTED = {
    "time": (T.TIMESTAMP, R.TIME, P.TIME_JITTER, False, False, False),
    "class_uid": (T.CATEGORICAL, R.CLASSIFICATION, P.PROTECTED, True, False, False),
    "class_name": (T.IGNORE, R.CLASSIFICATION, P.NONE, True, False, False),
    "category_uid": (T.CATEGORICAL, R.CLASSIFICATION, P.PROTECTED, True, False, False),
    "activity_id": (T.CATEGORICAL, R.CLASSIFICATION, P.PROTECTED, True, True, False),  # 4001 refusals
    "activity_name": (T.IGNORE, R.CLASSIFICATION, P.NONE, True, False, False),
    "type_uid": (T.CATEGORICAL, R.CLASSIFICATION, P.PROTECTED, True, True, False),
    "severity_id": (T.CATEGORICAL, R.SEVERITY, P.PROTECTED, True, True, False),
    "severity": (T.IGNORE, R.SEVERITY, P.NONE, True, True, False),
    "status_id": (T.CATEGORICAL, R.OUTCOME, P.PROTECTED, True, True, False),
    "status": (T.IGNORE, R.OUTCOME, P.NONE, True, True, False),
    "status_detail": (T.CATEGORICAL, R.OUTCOME, P.PROTECTED, True, True, False),
    "http_response.code": (T.CATEGORICAL, R.OUTCOME, P.PROTECTED, True, True, False),
    "message": (T.IGNORE, R.TEXT, P.NONE, False, False, False),
    "raw_data": (T.IGNORE, R.TEXT, P.NONE, False, False, False),
    "metadata.uid": (T.IGNORE, R.ID, P.NONE, False, False, False),
    "metadata.version": (T.IGNORE, R.CONTEXT, P.NONE, False, False, False),
    "metadata.product.name": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "metadata.original_time": (T.TIMESTAMP, R.TIME, P.TIME_JITTER, False, False, False),
    "user.name": (T.CATEGORICAL, R.IDENTITY, P.PROTECTED, True, False, False),
    "actor.user.name": (T.CATEGORICAL, R.IDENTITY, P.PROTECTED, True, False, False),
    "src_endpoint.ip": (T.CATEGORICAL, R.IDENTITY, P.PROTECTED, True, False, False),
    "dst_endpoint.hostname": (T.CATEGORICAL, R.IDENTITY, P.PROTECTED, True, False, False),
    "src_endpoint.port": (T.IGNORE, R.CONTEXT, P.NONE, False, False, False),
    "dst_endpoint.port": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "duration": (T.NUMERIC, R.MEASURE, P.JITTER, False, False, True),
    "traffic.bytes_in": (T.NUMERIC, R.MEASURE, P.JITTER, False, False, True),
    "http_response.latency": (T.NUMERIC, R.MEASURE, P.JITTER, False, False, True),
    "count": (T.NUMERIC, R.MEASURE, P.JITTER, False, False, False),
    "http_request.user_agent": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "http_request.url.path": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "auth_protocol_id": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "auth_protocol": (T.IGNORE, R.CONTEXT, P.NONE, False, False, False),
    "is_mfa": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "process.cmd_line": (T.CATEGORICAL, R.CONTEXT, P.MASK, False, False, False),
    "process.pid": (T.IGNORE, R.ID, P.NONE, False, False, False),
    "actor.session.uid": (T.CATEGORICAL, R.CONTEXT, P.MASK, False, False, False),
    "trace_id": (T.IGNORE, R.ID, P.NONE, False, False, False),
    "observables": (T.IGNORE, R.CONTEXT, P.NONE, False, False, False),
    "observables.count": (T.IGNORE, R.MEASURE, P.NONE, False, False, False),  # constant 1 here
    "unmapped.vendor_field": (T.CATEGORICAL, R.CONTEXT, P.SWAP, False, False, False),
    "unmapped.nothing": (T.IGNORE, R.CONTEXT, P.NONE, False, False, False),
    "custom_score": (T.NUMERIC, R.MEASURE, P.JITTER, False, False, True),  # heavy by the data, not by OCSF
    "custom_seen_at": (T.TIMESTAMP, R.TIME, P.TIME_JITTER, False, False, False),
    "custom_epoch": (T.TIMESTAMP, R.TIME, P.TIME_JITTER, False, False, False),
    "_label.is_anomaly": (T.LABEL, R.LABEL, P.NONE, False, False, False),
    "_label.scenario": (T.LABEL, R.LABEL, P.NONE, False, False, False),
}
FIELDS = ("type", "role", "policy", "protected", "outcome_family", "heavy_tailed")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ocsf_frame()


@pytest.fixture(scope="module")
def schema(frame) -> Schema:
    return infer_schema(frame)


def test_frame_and_expectations_cover_the_same_columns(frame):
    assert set(frame.columns) == set(EXPECTED)


@pytest.mark.parametrize("column", list(EXPECTED))
def test_infer_schema_recovers_the_known_schema(schema, column):
    spec = schema[column]
    got = tuple(getattr(spec, f) for f in FIELDS)
    assert got == EXPECTED[column], f"{spec.reason}\n" + ", ".join(
        f"{f}: got {g!r}, want {w!r}" for f, g, w in zip(FIELDS, got, EXPECTED[column]) if g != w)


def test_every_column_gets_a_spec_in_frame_order(frame, schema):
    assert schema.names == list(frame.columns)


def test_reasons_start_with_the_column_and_name_the_rule(schema):
    for spec in schema.columns:
        assert spec.reason.startswith(f"{spec.name}: "), spec.reason
        assert "(rule: " in spec.reason, spec.reason
    assert schema["status_id"].reason.startswith("status_id: OCSF outcome enum")
    assert "(rule: caption)" in schema["status"].reason and "status_id" in schema["status"].reason
    assert "(rule: constant)" in schema["metadata.version"].reason
    assert "(rule: label)" in schema["_label.scenario"].reason


def test_statistics_are_recorded(frame, schema):
    status_detail = schema["status_detail"]
    assert status_detail.missing_share == pytest.approx(frame["status_detail"].isna().mean())
    assert status_detail.cardinality == 3
    assert set(status_detail.examples) <= {"bad password", "timeout", "denied"} and len(status_detail.examples) == 3
    assert schema["unmapped.nothing"].missing_share == 1.0 and schema["unmapped.nothing"].cardinality == 0
    assert schema["class_uid"].cardinality == 5


def test_policies_fit_their_types(schema):
    for spec in schema.columns:
        assert spec.policy in POLICIES_FOR_TYPE[spec.type], spec.reason
        assert not spec.unsafe_override


def test_labels_are_never_inputs_and_user_labels_are_honoured(frame):
    schema = infer_schema(frame, labels=["unmapped.vendor_field"])
    assert schema["unmapped.vendor_field"].type == T.LABEL
    assert set(schema.labels) == {"_label.is_anomaly", "_label.scenario", "unmapped.vendor_field"}
    inputs = schema.numeric + schema.categorical + schema.timestamp
    assert not set(schema.labels) & set(inputs)


def test_unknown_label_column_is_a_user_error(frame):
    with pytest.raises(SchemaError, match="no_such_column"):
        infer_schema(frame, labels=["no_such_column"])


def test_not_a_frame_is_a_user_error():
    with pytest.raises(SchemaError, match="DataFrame"):
        infer_schema([{"a": 1}])


def test_tutorial_labels_by_name():
    df = pd.DataFrame({"anomaly_type": ["x", None, "y"] * 10, "is_anomaly": [0, 1, 0] * 10, "status_id": [1, 2, 1] * 10})
    schema = infer_schema(df)
    assert schema.labels == ["anomaly_type", "is_anomaly"]


def test_exclude_outcome_drops_the_family_from_inputs_but_keeps_it_typed(frame, schema):
    excluded = infer_schema(frame, exclude_outcome=True)
    assert excluded.exclude_outcome and not schema.exclude_outcome
    family = set(excluded.outcome_columns)
    assert {"status_id", "status", "status_detail", "http_response.code", "severity_id", "severity"} <= family
    inputs = set(excluded.numeric + excluded.categorical + excluded.timestamp)
    assert not family & inputs
    assert excluded["status_id"].type == T.CATEGORICAL  # still typed, for colouring and scoring
    assert "status_id" in schema.categorical  # and an input when not excluded
    assert excluded.names == schema.names


def test_activity_is_not_outcome_family_without_network_refusals(frame):
    no_refusals = frame[~((frame["class_uid"] == 4001) & frame["activity_id"].isin([4, 5]))]
    schema = infer_schema(no_refusals)
    assert not schema["activity_id"].outcome_family and not schema["type_uid"].outcome_family


def test_underscore_flattened_names_get_the_same_knowledge():
    df = pd.DataFrame({
        "http_response_code": [200.0, 503.0, None] * 20,
        "actor_user_name": ["alice", "bob", "carol"] * 20,
        "actor_user_uid": ["u1", "u2", "u3"] * 20,
        "src_endpoint_port": list(range(50000, 50060)),
        "http_request_user_agent": ["curl", "firefox", "curl"] * 20,
    })
    schema = infer_schema(df)
    assert schema["http_response_code"].outcome_family and schema["http_response_code"].type == T.CATEGORICAL
    assert schema["actor_user_name"].role == R.IDENTITY  # not mistaken for a caption of actor_user_uid
    assert schema["actor_user_name"].type == T.CATEGORICAL
    assert schema["src_endpoint_port"].type == T.IGNORE  # a new port on every row: ephemeral
    assert schema["http_request_user_agent"].policy == P.SWAP
    assert "[read as http_response.code]" in schema["http_response_code"].reason


def test_ephemeral_ports_are_ignored_and_service_ports_categorical():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"src_endpoint.port": rng.integers(49152, 65536, 2000), "dst_endpoint.port": rng.choice([22, 443], 2000)})
    schema = infer_schema(df)
    assert schema["src_endpoint.port"].type == T.IGNORE and "ephemeral" in schema["src_endpoint.port"].reason
    assert schema["dst_endpoint.port"].type == T.CATEGORICAL


def test_heavy_tail_from_the_data_and_not_for_narrow_measures():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"wide": rng.lognormal(0, 3, 1000), "narrow": rng.normal(100, 5, 1000),
                       "mostly_zero": np.where(rng.random(1000) < 0.8, 0.0, rng.normal(50, 5, 1000))})
    schema = infer_schema(df)
    assert schema["wide"].heavy_tailed and "p99/median" in schema["wide"].reason
    assert not schema["narrow"].heavy_tailed and not schema["mostly_zero"].heavy_tailed
    assert {schema[c].type for c in df.columns} == {T.NUMERIC}


def test_free_text_and_unique_strings_are_ignored_but_repeated_commands_are_kept():
    n = 300
    df = pd.DataFrame({
        "note": [f"a long free text note number {i} about something that happened" for i in range(n)],
        "request_key": [f"k{i}" for i in range(n)],
        "process.cmd_line": [f"/bin/sh -c 'run step {i % 12} of the nightly batch job'" for i in range(n)],
        "process.name": ["sh", "bash", "python"] * 100,
    })
    schema = infer_schema(df)
    assert schema["note"].type == T.IGNORE and "(rule: free-text)" in schema["note"].reason
    assert schema["request_key"].type == T.IGNORE and "(rule: unique-id)" in schema["request_key"].reason
    assert schema["process.cmd_line"].type == T.CATEGORICAL and schema["process.cmd_line"].policy == P.MASK
    unique_commands = df.assign(**{"process.cmd_line": [f"/bin/sh -c 'run step {i} of the nightly batch job'" for i in range(n)]})
    assert infer_schema(unique_commands)["process.cmd_line"].type == T.IGNORE


def test_time_field_with_implausible_values_is_ignored():
    df = pd.DataFrame({"start_time": [1, 2, 3, 4] * 10, "end_time": ["soon", "later", "never", "now"] * 10})
    schema = infer_schema(df)
    assert schema["start_time"].type == T.IGNORE and schema["end_time"].type == T.IGNORE
    assert "not epoch" in schema["start_time"].reason


def test_datetime_dtype_and_epoch_seconds_in_ocsf_time_fields_are_timestamps():
    df = pd.DataFrame({"seen": pd.date_range("2024-01-01", periods=50, freq="h"),
                       "end_time": 1_700_000_000 + np.arange(50) * 60})
    schema = infer_schema(df)
    assert schema["seen"].type == T.TIMESTAMP and schema["end_time"].type == T.TIMESTAMP


def test_nested_python_objects_are_ignored():
    df = pd.DataFrame({"observables_raw": [[{"a": 1}], [], [{"b": 2}]], "device_info": [{"x": 1}, {"x": 2}, None]})
    schema = infer_schema(df)
    assert schema["observables_raw"].type == T.IGNORE and schema["device_info"].type == T.IGNORE


# -- the Schema value object ------------------------------------------------------------------
def test_schema_json_round_trip_equals_the_original(schema):
    assert Schema.from_json(schema.to_json()) == schema
    assert Schema.loads(schema.dumps()) == schema
    assert Schema.loads(json.dumps(json.loads(schema.dumps()))) == schema


def test_schema_save_and_load(tmp_path, schema):
    path = schema.save(tmp_path / "schema.json")
    assert Schema.load(path) == schema


def test_with_column_returns_a_new_schema_and_leaves_the_old_one_unchanged(schema):
    before = schema.to_json()
    changed = schema.with_column("duration", policy="protected")
    assert changed is not schema and changed["duration"].policy == P.PROTECTED and changed["duration"].user_override
    assert schema["duration"].policy == P.JITTER and not schema["duration"].user_override
    assert schema.to_json() == before


def test_with_column_to_label_removes_it_from_inputs(schema):
    assert "metadata.product.name" in schema.categorical
    relabelled = schema.with_column("metadata.product.name", type="label")
    assert "metadata.product.name" not in relabelled.categorical
    assert "metadata.product.name" in relabelled.labels and relabelled["metadata.product.name"].policy == P.NONE


def test_unsafe_override_of_a_protected_field_is_flagged(schema):
    assert schema.with_column("status_id", policy="swap")["status_id"].unsafe_override


# -- robustness ------------------------------------------------------------------------------
NAMES = ["status_id", "status", "time", "duration", "user.name", "src_endpoint.port", "_label.x", "message",
         "class_uid", "x", "y_id", "z", "count", "start_time", "metadata.uid"]
CELLS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["{\"a\": 1}", "[1, 2]", "2024-01-01T00:00:00Z", "Success"]),
)


@st.composite
def small_frames(draw) -> pd.DataFrame:
    n_rows = draw(st.integers(0, 12))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(["int", "float", "str", "bool", "mixed"]))
        if kind == "int":
            values = draw(st.lists(st.one_of(st.none(), st.integers(-(10**13), 10**13)), min_size=n_rows, max_size=n_rows))
        elif kind == "float":
            values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n_rows, max_size=n_rows))
        elif kind == "str":
            values = draw(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=n_rows, max_size=n_rows))
        elif kind == "bool":
            values = draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n_rows, max_size=n_rows))
        else:
            values = draw(st.lists(CELLS, min_size=n_rows, max_size=n_rows))
        columns[name] = pd.Series(values, dtype=object if kind == "mixed" else None)
    return pd.DataFrame(columns, index=range(n_rows))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_frames(), st.booleans())
def test_infer_schema_never_crashes_and_covers_every_column(df, exclude_outcome):
    schema = infer_schema(df, exclude_outcome=exclude_outcome)
    assert schema.names == list(df.columns)
    for spec in schema.columns:
        assert spec.policy in POLICIES_FOR_TYPE[spec.type]
        assert spec.reason.startswith(f"{spec.name}: ")
        assert 0.0 <= spec.missing_share <= 1.0 and spec.cardinality >= 0 and len(spec.examples) <= 3
    assert Schema.from_json(json.loads(schema.dumps())) == schema


# -- real data -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tutorial() -> pd.DataFrame:
    if not TUTORIAL.exists():
        pytest.skip(f"{TUTORIAL} is not in this checkout")
    return pd.read_parquet(TUTORIAL)


def test_tutorial_parquet(tutorial):
    schema = infer_schema(tutorial)
    assert schema.names == list(tutorial.columns)
    status_id = schema["status_id"]
    assert (status_id.type, status_id.protected, status_id.outcome_family) == (T.CATEGORICAL, True, True)
    assert schema["anomaly_type"].type == T.LABEL and "anomaly_type" in schema.labels
    for unique_id in ("trace_id", "actor_session_uid", "resource_uid"):
        assert schema[unique_id].type == T.IGNORE, schema[unique_id].reason
    for json_text in ("metadata", "actor", "http_request", "http_response", "resources"):
        assert schema[json_text].type == T.IGNORE and "JSON" in schema[json_text].reason
    assert schema["message"].type == T.IGNORE and schema["status"].type == T.IGNORE
    assert schema["class_uid"].type == T.IGNORE  # constant 6003 in this file
    assert schema["http_response_code"].outcome_family and schema["http_response_latency"].type == T.NUMERIC
    assert schema["actor_user_name"].policy == P.PROTECTED and schema["src_endpoint_port"].type == T.IGNORE
    assert schema["time"].type == T.TIMESTAMP

    excluded = schema.with_exclude_outcome(True)
    inputs = set(excluded.numeric + excluded.categorical + excluded.timestamp)
    redundant_outcome = {"status_id", "status_code", "http_response_code", "http_response_status", "level", "severity_id"}
    assert redundant_outcome <= set(excluded.outcome_columns) and not redundant_outcome & inputs
    assert inputs, "something must be left to learn from"


def test_tutorial_parquet_through_ingest(tutorial):
    ingest = pytest.importorskip("engine.ingest", reason="engine.ingest not built yet")
    df, _report = ingest.load(TUTORIAL)
    schema = infer_schema(df)
    assert schema.names == list(df.columns)
    outcome = {c for c in schema.outcome_columns if schema[c].type == T.CATEGORICAL}
    assert {"status_id"} <= outcome
    assert all(schema[c].type == T.LABEL for c in schema.names if c.startswith(("anomaly", "_label")))


def test_generated_demo_events_when_the_generator_exists():
    sample = pytest.importorskip("engine.sample", reason="engine.sample not built yet")
    df = pd.json_normalize(sample.generate_events(1_000, seed=3))  # dotted paths; arrays stay lists
    schema = infer_schema(df)
    assert schema.names == list(df.columns)
    assert {"_label.is_anomaly", "_label.scenario"} <= set(schema.labels)
    assert (schema["status_id"].type, schema["status_id"].policy) == (T.CATEGORICAL, P.PROTECTED)
    assert schema["class_uid"].type == T.CATEGORICAL and schema["class_uid"].role == R.CLASSIFICATION
    assert schema["time"].type == T.TIMESTAMP
    for column in schema.names:
        spec = schema[column]
        if column.startswith("traffic.bytes"):
            assert spec.type == T.NUMERIC and spec.heavy_tailed, spec.reason
        if column in ("class_name", "status", "severity", "activity_name", "message", "metadata.uid"):
            assert spec.type == T.IGNORE, spec.reason
        if isinstance(df[column].dropna().iloc[0] if df[column].notna().any() else None, list):
            assert spec.type == T.IGNORE, spec.reason


def test_array_item_counts_are_inputs_left_unaugmented():
    frame = pd.DataFrame({"observables.count": [1, 2, 3, 2] * 25, "observables": ["[]"] * 100,
                          "duration": [float(i * 7 % 97 + 1) for i in range(100)]})
    schema = infer_schema(frame)
    count = schema["observables.count"]
    assert count.type == T.NUMERIC and "observables.count" in schema.numeric
    assert count.policy == P.NONE and "array item count" in count.reason
    assert schema["duration"].policy == P.JITTER
