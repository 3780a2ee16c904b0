"""engine.ingest: every format (and .gz), flattening, OCSF names, arrays, bad input, mixed types, streaming."""
from __future__ import annotations

import csv
import gzip
import io
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ingest_read
from engine.errors import UserError
from engine.ingest import IngestError, IngestReport, Problem, load, split_underscored

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
REPO_TUTORIAL = Path(__file__).resolve().parents[2] / "data" / "tutorial"
SHARED_DATA = Path("/work/shared/data")


# ---------------------------------------------------------------------------------------------
# Helpers: events in real OCSF shapes, written in each format
# ---------------------------------------------------------------------------------------------
def make_events(n: int, seed: int = 0) -> list[dict]:
    """Authentication (3002) and Network Activity (4001) events, nested as OCSF sends them."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        ok = rng.random() > 0.2
        event = {
            "class_uid": 3002 if i % 2 == 0 else 4001,
            "activity_id": 1,
            "severity_id": 1 if ok else 3,
            "time": 1_741_000_000_000 + i * 1_000,
            "status_id": 1 if ok else 2,
            "status": "Success" if ok else "Failure",
            "metadata": {"version": "1.1.0", "uid": f"uid-{i}", "product": {"name": "Zeek", "vendor_name": "Zeek"}},
            "src_endpoint": {"ip": f"10.0.{i % 7}.{rng.randrange(1, 255)}", "port": rng.randrange(1024, 65536)},
            "dst_endpoint": {"ip": "10.0.1.10", "port": 443},
            "traffic": {"bytes_in": rng.randrange(0, 100_000), "bytes_out": rng.randrange(0, 5_000)},
        }
        if i % 2 == 0:
            event["user"] = {"name": f"user{i % 5}", "domain": "CORP"}
            event["observables"] = [{"name": "user.name", "type_id": 4, "value": f"user{i % 5}"}]
        events.append(event)
    return events


def flat_row(event: dict, prefix: str = "") -> dict:
    row = {}
    for key, value in event.items():
        if isinstance(value, dict):
            row.update(flat_row(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            row[f"{prefix}{key}"] = json.dumps(value)
        else:
            row[f"{prefix}{key}"] = value
    return row


def write(path: Path, events: list[dict], fmt: str) -> Path:
    """Write events as jsonl / json / csv / parquet; a path ending .gz is gzip-compressed."""
    buffer = io.BytesIO()
    if fmt == "jsonl":
        buffer.write("".join(json.dumps(e) + "\n" for e in events).encode())
    elif fmt == "json":
        buffer.write(json.dumps(events, indent=2).encode())
    elif fmt == "csv":
        rows = [flat_row(e) for e in events]
        names = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
        buffer.write(text.getvalue().encode())
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(events), buffer)  # nested struct columns
    data = buffer.getvalue()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def jsonl_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def assert_plain_types(frame: pd.DataFrame) -> None:
    """Numbers as int64/float64, booleans as bool, everything else as text."""
    for name, dtype in frame.dtypes.items():
        ok = dtype in (np.int64, np.float64, np.bool_) or pd.api.types.is_string_dtype(dtype)
        assert ok, f"{name} has dtype {dtype}"
        if dtype == object:
            assert all(isinstance(v, str) for v in frame[name].dropna()), name


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_every_format_reads_the_same_events(tmp_path, fmt, compressed):
    events = make_events(40)
    path = write(tmp_path / f"events.{fmt}{'.gz' if compressed else ''}", events, fmt)

    frame, report = load(path)

    assert (report.format, report.compressed) == (fmt, compressed)
    assert (report.rows_read, report.rows_kept, report.rows_rejected) == (40, 40, 0)
    assert frame["time"].tolist() == [e["time"] for e in events]
    assert frame["time"].dtype == np.int64
    assert frame["src_endpoint.ip"].tolist() == [e["src_endpoint"]["ip"] for e in events]
    assert frame["src_endpoint.port"].tolist() == [e["src_endpoint"]["port"] for e in events]
    assert frame["metadata.product.name"].eq("Zeek").all()
    assert frame["user.name"].iloc[0] == "user0" and pd.isna(frame["user.name"].iloc[1])
    assert frame["observables.count"].tolist() == [1 if i % 2 == 0 else 0 for i in range(40)]
    assert frame.columns.is_unique
    assert_plain_types(frame)


def test_nested_objects_become_dotted_paths():
    frame, report = load(FIXTURES / "auth_network.jsonl")
    assert report.rows_kept == 6
    for path in ("src_endpoint.ip", "dst_endpoint.hostname", "metadata.product.vendor_name", "actor.user.name",
                 "actor.session.uid", "api.service.name", "http_request.url.path", "traffic.bytes_in", "cloud.account.uid"):
        assert path in frame.columns, path
    assert not any(c in frame.columns for c in ("src_endpoint", "metadata", "actor", "api"))
    assert frame.loc[5, "api.service.name"] == "s3.amazonaws.com"
    assert frame.loc[2, "traffic.bytes_in"] == 5876
    assert pd.isna(frame.loc[0, "traffic.bytes_in"])  # an authentication event has no traffic
    assert list(frame.columns[:3]) == ["class_uid", "class_name", "category_uid"]  # file order kept


def test_iso_strings_stay_text_and_epoch_time_stays_a_number():
    frame, _ = load(FIXTURES / "auth_network.jsonl")
    assert frame["time"].dtype == np.int64
    assert pd.api.types.is_string_dtype(frame["time_dt"])
    assert frame.loc[0, "time_dt"] == "2025-03-03T11:06:40Z"  # as written, not re-rendered by a parser


def test_json_array_single_object_and_sniffed_forms(tmp_path):
    frame, report = load(FIXTURES / "api_activity_array.json")
    assert (report.format, len(frame)) == ("json", 3)
    assert frame["http_response.code"].tolist() == [200, 504, 200]
    assert frame["error.message"].iloc[1] == "Database timeout"

    frame, report = load(FIXTURES / "vpcflow_refuse_single.json")
    assert len(frame) == 1 and frame.loc[0, "metadata.product.feature.name"] == "Flowlogs"
    assert frame.loc[0, "unmapped.log-status"] == "OK"

    lines_named_json = tmp_path / "really_lines.json"
    lines_named_json.write_bytes(jsonl_bytes(['{"class_uid": 4001}', '{"class_uid": 4002}']))
    frame, report = load(lines_named_json)
    assert report.format == "jsonl" and frame["class_uid"].tolist() == [4001, 4002]

    array_named_jsonl = tmp_path / "really_array.ndjson"
    array_named_jsonl.write_text('[{"class_uid": 6003}, {"class_uid": 6003}, {"class_uid": 3002}]')
    frame, report = load(array_named_jsonl)
    assert report.format == "json" and frame["class_uid"].tolist() == [6003, 6003, 3002]


def test_nested_struct_parquet_with_lists(tmp_path):
    table = pa.table({
        "class_uid": [3002, 3002],
        "user": [{"name": "alice", "account": {"type_id": 2}}, None],
        "metadata": [{"profiles": ["host", "cloud"], "version": "1.0.0"}, {"profiles": [], "version": "1.0.0"}],
        "seen": pa.array([1_700_000_000_000, None], pa.timestamp("ms")),
    })
    path = tmp_path / "auth.parquet"
    pq.write_table(table, path)
    frame, report = load(path)
    assert report.format == "parquet"
    assert frame["user.account.type_id"].tolist()[0] == 2 and pd.isna(frame["user.name"].iloc[1])
    assert frame["metadata.profiles"].tolist() == ['["host","cloud"]', "[]"]
    assert frame["metadata.profiles.count"].tolist() == [2, 0]
    assert frame["seen"].iloc[0].startswith("2023-11-14T22:13:20")
    assert_plain_types(frame)


# ---------------------------------------------------------------------------------------------
# OCSF names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, dotted", [
    ("src_endpoint_ip", "src_endpoint.ip"),
    ("http_response_code", "http_response.code"),
    ("actor_user_name", "actor.user.name"),
    ("http_request_user_agent", "http_request.user_agent"),
    ("http_request_url_path", "http_request.url.path"),
    ("metadata_product_vendor_name", "metadata.product.vendor_name"),
    ("status_id", "status_id"),
    ("class_uid", "class_uid"),
    ("bytes_in", "bytes_in"),
    ("activity_name", "activity_name"),
    ("logon_type_id", "logon_type_id"),
    ("src_endpoint.ip", "src_endpoint.ip"),
])
def test_underscore_names_split_only_at_known_objects(name, dotted):
    assert split_underscored(name) == dotted


def test_a_plain_column_named_like_an_object_blocks_the_split():
    assert split_underscored("service_version", scalar_names=frozenset({"service"})) == "service_version"
    assert split_underscored("service_version") == "service.version"


def test_underscored_csv_with_json_text_objects_has_one_column_per_field():
    frame, report = load(FIXTURES / "api_flat_underscored.csv")

    assert frame.columns.is_unique
    for gone in ("src_endpoint_ip", "http_response_code", "http_response", "metadata", "metadata_product_name", "actor_user_name"):
        assert gone not in frame.columns, gone
    assert frame["http_response.code"].tolist() == [200, 504, 200]  # the typed column kept
    assert frame["http_response.code"].dtype == np.int64
    assert frame["http_response.latency"].tolist() == [0.146, 30.0, 0.05]  # only in the JSON text
    assert frame["metadata.product.vendor_name"].eq("Demo").all()
    assert frame["actor.user.name"].tolist() == ["david.brown", "erin.moss", "david.brown"]
    for genuine in ("status_id", "class_uid", "logon_type_id", "bytes_in", "service"):
        assert genuine in frame.columns, genuine
    assert "src_endpoint_ip -> src_endpoint.ip" in report.renamed
    assert any(r.startswith("http_response.code: also in the JSON in http_response") for r in report.renamed)
    assert frame["resources.count"].tolist() == [1, 0, 2]


def test_raw_data_json_stays_text(tmp_path):
    path = tmp_path / "raw.jsonl"
    raw = json.dumps({"EventID": 4625, "Computer": "dc01"})
    path.write_bytes(jsonl_bytes([json.dumps({"class_uid": 3002, "raw_data": raw, "unmapped": raw})]))
    frame, _ = load(path)
    assert frame.loc[0, "raw_data"] == raw  # OCSF's copy of the original event stays as written
    assert frame.loc[0, "unmapped.EventID"] == 4625  # other JSON text is spread into columns


@pytest.mark.skipif(not (REPO_TUTORIAL / "ocsf_logs.parquet").exists(), reason="tutorial parquet not in this checkout")
def test_tutorial_parquet_normalised():
    frame, report = load(REPO_TUTORIAL / "ocsf_logs.parquet")
    assert report.rows_kept == 27_084 and frame.columns.is_unique
    assert frame["http_response.code"].dtype == np.float64  # typed column kept over the JSON copy
    assert not {"http_response_code", "http_response", "metadata", "src_endpoint", "resources_count"} & set(frame.columns)
    assert frame["resources.count"].dtype == np.int64
    assert frame["metadata.product.name"].notna().all()
    assert frame["status_id"].value_counts().to_dict()[2] == 73  # the 73 failures of the tutorial
    assert_plain_types(frame)


# ---------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------
def test_arrays_become_a_count_and_compact_json_text():
    frame, _ = load(FIXTURES / "auth_network.jsonl")
    assert frame["observables.count"].tolist() == [2, 1, 0, 0, 0, 0]
    assert frame["observables.count"].dtype == np.int64
    assert json.loads(frame.loc[0, "observables"]) == [
        {"name": "user.name", "type_id": 4, "value": "alice"},
        {"name": "src_endpoint.ip", "type_id": 2, "value": "10.0.0.5"},
    ]
    assert " " not in frame.loc[0, "observables"].replace("user.name", "")  # compact
    assert frame["metadata.profiles"].tolist()[:3] == ['["host","datetime"]', '["host"]', "[]"]
    assert json.loads(frame.loc[4, "answers"])[0]["rdata"] == "93.184.216.34"
    assert frame["resources.count"].tolist() == [0, 0, 0, 0, 0, 1]


def test_arrays_are_the_same_text_on_the_fast_and_the_careful_path(tmp_path):
    good = [json.dumps({"a": i, "tags": [{"k": "x", "v": i, "n": None}, {"k": 'q"uote'}]}) for i in range(3)]
    fast, careful = tmp_path / "fast.jsonl", tmp_path / "careful.jsonl"
    fast.write_bytes(jsonl_bytes(good))
    careful.write_bytes(jsonl_bytes(good + ["not json"]))  # one bad line sends the file the careful way
    frame_fast, _ = load(fast)
    frame_careful, _ = load(careful)
    assert frame_fast["tags"].tolist() == frame_careful["tags"].tolist()
    assert json.loads(frame_fast.loc[0, "tags"]) == [{"k": "x", "v": 0}, {"k": 'q"uote'}]


# ---------------------------------------------------------------------------------------------
# Bad rows: skipped, counted, located
# ---------------------------------------------------------------------------------------------
def test_bad_lines_are_skipped_with_their_line_numbers(tmp_path):
    path = tmp_path / "mixed_quality.jsonl"
    path.write_bytes(
        b'{"class_uid": 3002, "user": {"name": "alice"}}\n'
        b'{"class_uid": 3002, "user": {"name": "bo\n'  # 2: truncated
        b"\n"  # 3: blank, not a row
        b"Jan 01 12:00:00 sshd[42]: Accepted password\n"  # 4: garbage
        b"42\n"  # 5: a bare number
        b'{"class_uid": 3002, "user": {"name": "\xff\xfe"}}\n'  # 6: invalid UTF-8
        b"null\n"  # 7
        b'{"class_uid": 4001, "user": {"name": "carol"}}'  # 8: last line without newline
    )
    frame, report = load(path)
    assert (report.rows_read, report.rows_kept, report.rows_rejected) == (7, 2, 5)
    assert frame["user.name"].tolist() == ["alice", "carol"]
    assert [p.line for p in report.problems] == [2, 4, 5, 6, 7]
    reasons = [p.reason for p in report.problems]
    assert reasons[0].startswith("truncated JSON")
    assert reasons[1].startswith("invalid JSON")
    assert reasons[2] == "not a JSON object (got a number)"
    assert reasons[3] == "invalid UTF-8"
    assert reasons[4] == "not a JSON object (got null)"


def test_bad_lines_deep_in_a_large_file_are_found_by_line(tmp_path):
    lines = [json.dumps(flat) for flat in make_events(20_000, seed=3)]
    bad_at = {1_234: "{truncated", 9_999: "[1, 2, 3]", 17_500: '{"class_uid": '}
    for line_number, text in bad_at.items():
        lines[line_number - 1] = text
    path = tmp_path / "large.jsonl"
    path.write_bytes(jsonl_bytes(lines))
    frame, report = load(path)
    assert [p.line for p in report.problems] == sorted(bad_at)
    assert report.rows_kept == len(frame) == 20_000 - 3
    kept_lines = [n for n in range(1, 20_001) if n not in bad_at]
    assert frame["time"].tolist() == [1_741_000_000_000 + (n - 1) * 1_000 for n in kept_lines]


def test_large_file_is_streamed_in_chunks_without_losing_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_read, "CHUNK_BYTES", 64 << 10)  # ~180 chunks for 50k lines
    events = make_events(50_000, seed=5)
    lines = [json.dumps(e) for e in events]
    lines[49_990] = "garbage at the end"
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(lines), compresslevel=1))
    frame, report = load(path)
    assert report.rows_read == 50_000 and report.rows_kept == 49_999
    assert [p.line for p in report.problems] == [49_991]
    expected = [e["src_endpoint"]["port"] for i, e in enumerate(events) if i != 49_990]
    assert frame["src_endpoint.port"].tolist() == expected
    assert frame["observables.count"].sum() == sum(1 for i, e in enumerate(events) if "observables" in e and i != 49_990)


def test_csv_rows_with_wrong_field_counts_or_bad_utf8_are_rejected_by_line(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("class_uid,status_id,user_name\n3002,1,alice\n3002,2\n3002,1,bob\n3002,1,carol,extra\n")
    frame, report = load(short)
    assert frame["user.name"].tolist() == ["alice", "bob"]
    assert [(p.line, p.reason) for p in report.problems] == [(3, "expected 3 fields, got 2"), (5, "expected 3 fields, got 4")]

    bad_bytes = tmp_path / "bytes.csv"
    bad_bytes.write_bytes(b"class_uid,user_name\n3002,alice\n3002,\xff\xfe\n3002,bob\n")
    frame, report = load(bad_bytes)
    assert frame["user.name"].tolist() == ["alice", "bob"]
    assert [(p.line, p.reason) for p in report.problems] == [(3, "invalid UTF-8")]


def test_bad_elements_of_a_json_array_are_rejected_by_line(tmp_path):
    path = tmp_path / "array.json"
    path.write_text('[\n  {"class_uid": 3002},\n  7,\n  {"class_uid": 4001},\n  {"class_uid": \n')
    frame, report = load(path)
    assert frame["class_uid"].tolist() == [3002, 4001]
    assert [p.line for p in report.problems][:2] == [3, 5]
    assert report.problems[0].reason == "not a JSON object (got a number)"
    assert report.problems[1].reason.startswith("truncated JSON")
    assert report.rows_rejected == 2


# ---------------------------------------------------------------------------------------------
# Unreadable input: IngestError, one line, naming the file
# ---------------------------------------------------------------------------------------------
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def _truncated_gzip() -> bytes:
    data = gzip.compress(jsonl_bytes([json.dumps(e) for e in make_events(500)]))
    return data[: len(data) // 2]


BAD_INPUTS = {
    "empty.jsonl": (b"", "empty"),
    "blank.json": (b"  \n\n ", "empty"),
    "header_only.csv": (b"class_uid,status_id,src_endpoint_ip\n", "header but no data rows"),
    "random.jsonl": (bytes(random.Random(0).randrange(256) for _ in range(4096)), "binary"),
    "picture.csv": (PNG_HEADER + b"\x00" * 64, "PNG"),
    "events.txt": (b'{"class_uid": 3002}\n', "unknown file type"),
    "broken.jsonl.gz": (_truncated_gzip(), "gzip"),
    "plain.jsonl.gz": (b'{"class_uid": 3002}\n', "not gzip"),
    "all_bad.jsonl": (b"not json\nnor this\n{\n", "every row was rejected"),
    "not_really.parquet": (b"class_uid\n3002\n", "not a Parquet file"),
    "empty_array.json": (b"[]", "no JSON objects"),
}


@pytest.mark.parametrize("filename", list(BAD_INPUTS))
def test_unreadable_input_raises_one_line_error_naming_the_file(tmp_path, filename):
    content, expected = BAD_INPUTS[filename]
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(IngestError) as caught:
        load(path)
    message = str(caught.value)
    assert filename in message and expected in message
    assert "\n" not in message
    assert isinstance(caught.value, UserError)


def test_missing_file_raises_ingest_error(tmp_path):
    with pytest.raises(IngestError, match="nowhere.jsonl: file not found"):
        load(tmp_path / "nowhere.jsonl")


def test_every_row_rejected_names_the_first_problem(tmp_path):
    path = tmp_path / "numbers.jsonl"
    path.write_text("1\n2\n3\n")
    with pytest.raises(IngestError, match=r"numbers\.jsonl: every row was rejected \(3 read\); first: line 1: not a JSON object"):
        load(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from([("auth_network.jsonl", "f.jsonl"), ("api_activity_array.json", "f.json"),
                            ("api_flat_underscored.csv", "f.csv"), ("auth_network.jsonl", "f.json")]),
    cuts=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 40), st.binary(max_size=6)), min_size=1, max_size=6),
)
def test_damaged_files_never_raise_anything_but_ingest_error(source, cuts):
    """Bytes deleted, replaced or inserted anywhere: a consistent frame and report, or one IngestError line."""
    fixture, name = source
    data = bytearray((FIXTURES / fixture).read_bytes())
    for where, length, insert in cuts:
        at = int(where * len(data))
        data[at : at + length] = insert
    try:
        frame, report = load(io.BytesIO(bytes(data)), name=name)
    except IngestError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(name)
        return
    assert len(frame) == report.rows_kept == report.rows_read - report.rows_rejected
    assert frame.columns.is_unique
    assert_plain_types(frame)


# ---------------------------------------------------------------------------------------------
# Mixed types
# ---------------------------------------------------------------------------------------------
def test_mixed_type_column_is_coerced_or_kept_as_text_and_reported(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl_bytes([
        '{"traffic": {"bytes_in": 512}, "dst_endpoint": {"port": 443}, "tag": 1}',
        '{"traffic": {"bytes_in": "4.9k"}, "dst_endpoint": {"port": "443"}, "tag": "blue"}',
        '{"traffic": {"bytes_in": "1.2M"}, "dst_endpoint": {"port": 8443}, "tag": [1, 2]}',
        '{"traffic": {"bytes_in": "443"}, "dst_endpoint": {"port": null}, "tag": 2.5}',
    ]))
    frame, report = load(path)
    assert frame["traffic.bytes_in"].tolist() == [512, 4_900, 1_200_000, 443]
    assert frame["traffic.bytes_in"].dtype == np.int64
    assert frame["dst_endpoint.port"].tolist()[:3] == [443, 443, 8443] and pd.isna(frame["dst_endpoint.port"].iloc[3])
    assert frame["tag"].tolist() == ["1", "blue", "[1,2]", "2.5"]
    assert "tag.count" not in frame.columns  # not an array column: arrays only in one row
    coercions = " | ".join(report.coercions)
    assert "traffic.bytes_in: 3 text values coerced to numbers" in coercions
    assert "dst_endpoint.port: 1 text value coerced to numbers" in coercions
    assert "tag: mixed value types" in coercions and "kept as text" in coercions


def test_a_field_that_changes_type_between_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_read, "CHUNK_BYTES", 4 << 10)
    lines = [json.dumps({"dst_endpoint": {"port": 443}, "n": i}) for i in range(2_000)]
    lines += [json.dumps({"dst_endpoint": {"port": "8443"}, "n": i}) for i in range(2_000, 2_100)]
    path = tmp_path / "drift.jsonl"
    path.write_bytes(jsonl_bytes(lines))
    frame, report = load(path)
    assert frame["dst_endpoint.port"].tolist() == [443] * 2_000 + [8443] * 100
    assert any(c.startswith("dst_endpoint.port: 100 text values coerced") for c in report.coercions)
    assert frame["n"].tolist() == list(range(2_100))


def test_long_digit_strings_and_zero_padded_codes_stay_text(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("trace_id,zip,bytes_in\n181958587857711254581963225683264747715,02134,12\n5,00501,13\n")
    frame, _ = load(path)
    assert frame["trace_id"].tolist() == ["181958587857711254581963225683264747715", "5"]
    assert frame["zip"].tolist() == ["02134", "00501"]
    assert frame["bytes_in"].tolist() == [12, 13]


# ---------------------------------------------------------------------------------------------
# Sources and the report
# ---------------------------------------------------------------------------------------------
class UploadedFile(io.BytesIO):
    """Like Streamlit's UploadedFile: a BytesIO whose name is the original file name."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


class OneWayStream(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_file_like_sources_use_their_name_for_the_format():
    events = make_events(10)
    data = gzip.compress(jsonl_bytes([json.dumps(e) for e in events]))
    upload = UploadedFile(data, "events.jsonl.gz")
    upload.read()  # already read once (a preview): load starts from the beginning
    frame, report = load(upload)
    assert (report.source, report.format, report.compressed, len(frame)) == ("events.jsonl.gz", "jsonl", True, 10)

    csv_bytes = b"class_uid,src_endpoint_ip\n3002,10.0.0.1\n"
    frame, report = load(io.BytesIO(csv_bytes), name="upload.csv")
    assert report.format == "csv" and frame["src_endpoint.ip"].tolist() == ["10.0.0.1"]

    frame, report = load(OneWayStream(jsonl_bytes([json.dumps(e) for e in events])), name="piped.ndjson")
    assert report.format == "jsonl" and frame["time"].tolist() == [e["time"] for e in events]

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(events), buffer)
    frame, report = load(UploadedFile(buffer.getvalue(), "auth.parquet"))
    assert report.format == "parquet" and frame["src_endpoint.ip"].tolist() == [e["src_endpoint"]["ip"] for e in events]


def test_bad_upload_error_names_the_upload():
    with pytest.raises(IngestError, match=r"^photo\.csv: looks like a PNG image"):
        load(UploadedFile(PNG_HEADER + b"\x00" * 100, "photo.csv"))


def test_report_to_dict_is_json_ready(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(jsonl_bytes(['{"a": 1}', "oops", '{"a": "2k"}']))
    _, report = load(path)
    document = json.loads(json.dumps(report.to_dict()))
    assert isinstance(report, IngestReport) and report.problems == (Problem(2, report.problems[0].reason),)
    assert {"rows_read", "rows_kept", "rows_rejected", "problems", "coercions", "renamed", "seconds", "format"} <= set(document)
    assert document["problems"] == [{"line": 2, "reason": report.problems[0].reason}]
    assert (document["rows_read"], document["rows_kept"], document["rows_rejected"]) == (3, 2, 1)
    assert document["seconds"] >= 0


def test_problem_list_is_capped_but_counts_stay_exact(tmp_path):
    path = tmp_path / "noisy.jsonl"
    path.write_bytes(jsonl_bytes(["junk"] * 1_500 + ['{"a": 1}']))
    _, report = load(path)
    assert report.rows_rejected == 1_500 and len(report.problems) == 1_000
    assert report.to_dict()["problems_truncated"] is True


# ---------------------------------------------------------------------------------------------
# Real files (skip cleanly where the shared data is absent)
# ---------------------------------------------------------------------------------------------
SHARED_FILES = sorted(p for p in SHARED_DATA.glob("*/*") if p.suffix in (".json", ".parquet")) if SHARED_DATA.exists() else []


@pytest.mark.skipif(not SHARED_FILES, reason="/work/shared/data is not present")
@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.name)
def test_reads_every_shared_data_file(path):
    frame, report = load(path)
    assert report.rows_kept == len(frame) > 0 and report.rows_rejected == 0
    assert frame.columns.is_unique
    assert "time" in frame.columns and frame["time"].dtype == np.int64
    assert not any(isinstance(v, (dict, list)) for column in frame for v in frame[column].dropna().head(5))
    if path.suffix == ".json":
        assert len(frame) == 1  # one event per example file
    assert_plain_types(frame)
