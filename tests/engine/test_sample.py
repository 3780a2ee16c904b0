"""engine.sample: realistic, deterministic, labelled OCSF demo events and the ``generate`` command."""
from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone

import numpy as np
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest

from engine import cli, sample
from engine.errors import UserError

N = 3_000
CLASSES = {3002, 4001, 4002, 4003, 6003, 1007}
DAY_MS = 24 * sample.HOUR_MS


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return sample.generate_events(N, seed=11)


def normal(events: list[dict], class_uid: int | None = None) -> list[dict]:
    return [e for e in events if not e["_label"]["is_anomaly"] and (class_uid is None or e["class_uid"] == class_uid)]


def of_scenario(events: list[dict], scenario: str) -> list[dict]:
    return [e for e in events if e["_label"]["scenario"] == scenario]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_writes_byte_identical_files_and_other_seeds_differ(tmp_path):
    for suffix in (".jsonl", ".jsonl.gz", ".parquet"):
        a, b, c = (tmp_path / f"{name}{suffix}" for name in "abc")
        sample.write_events(sample.generate_events(N, seed=5), a)
        sample.write_events(sample.generate_events(N, seed=5), b)
        sample.write_events(sample.generate_events(N, seed=6), c)
        assert a.read_bytes() == b.read_bytes(), suffix
        assert a.read_bytes() != c.read_bytes(), suffix


def test_other_seeds_give_other_organisations_not_just_other_times():
    names = [{e["user"]["name"] for e in sample.generate_events(N, seed=s) if e["class_uid"] == 3002} for s in (1, 2)]
    assert names[0] != names[1]


def test_event_count_order_period_and_start(events):
    assert len(events) == N
    times = np.array([e["time"] for e in events])
    assert np.all(np.diff(times) >= 0)
    start = int(sample.DEFAULT_START.timestamp() * 1000)
    assert times.min() >= start and times.max() < start + sample.PERIOD_DAYS * DAY_MS
    assert times.max() - times.min() > 12 * DAY_MS  # spread over the two weeks, not bunched

    naive = sample.generate_events(200, seed=1, start=datetime(2024, 6, 3))
    begin = int(datetime(2024, 6, 3, tzinfo=timezone.utc).timestamp() * 1000)
    assert min(e["time"] for e in naive) >= begin


@pytest.mark.parametrize("bad", [0, 99, -5, 2.5, "1000", True])
def test_too_few_or_non_integer_events_are_refused(bad):
    with pytest.raises(UserError, match="n_events"):
        sample.generate_events(bad)


# ----------------------------------------------------------------------------- OCSF shape


def test_every_class_is_present_with_its_key_attributes(events):
    by_class = defaultdict(list)
    for e in events:
        by_class[e["class_uid"]].append(e)
    assert set(by_class) == CLASSES
    required = {
        3002: ("user", "src_endpoint", "dst_endpoint", "auth_protocol_id", "logon_type_id", "is_mfa", "is_remote", "service"),
        4001: ("src_endpoint", "dst_endpoint", "traffic", "connection_info"),
        4002: ("src_endpoint", "dst_endpoint", "http_request", "http_response"),
        4003: ("query", "answers", "rcode_id", "response_time"),
        6003: ("actor", "api", "src_endpoint", "resources", "http_response"),
        1007: ("process", "actor", "device"),
    }
    for class_uid, keys in required.items():
        for e in by_class[class_uid]:
            assert all(k in e for k in keys), (class_uid, [k for k in keys if k not in e])
    assert all(set(e["traffic"]) == {"bytes_in", "bytes_out", "packets_in", "packets_out"} for e in by_class[4001])
    assert all({"name", "pid"} <= set(e["process"]["parent_process"]) for e in by_class[1007])
    assert any("location" in e["src_endpoint"] for e in by_class[3002])


def test_classification_and_captions_agree(events):
    for e in events:
        assert e["type_uid"] == e["class_uid"] * 100 + e["activity_id"]
        class_name, category_uid = sample.CLASSES[e["class_uid"]]
        assert (e["class_name"], e["category_uid"]) == (class_name, category_uid)
        assert e["category_name"] == sample.CATEGORY_NAMES[category_uid]
        assert e["activity_name"] == sample.ACTIVITY_NAMES[e["class_uid"]][e["activity_id"]]
        assert e["type_name"] == f"{class_name}: {e['activity_name']}"
        assert e["severity"] == sample.SEVERITY_NAMES[e["severity_id"]]
    http = [e for e in events if e["class_uid"] == 4002]
    assert all(e["activity_id"] == sample.HTTP_ACTIVITY[e["http_request"]["http_method"]] for e in http)


def test_metadata_and_observables(events):
    uids = [e["metadata"]["uid"] for e in events]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in uids)
    for e in events:
        meta = e["metadata"]
        assert meta["version"] == "1.1.0" and meta["product"]["name"] and meta["product"]["vendor_name"] and meta["log_name"]
        assert e["observables"] and all(set(o) == {"name", "type_id", "value"} for o in e["observables"])
        first = e["observables"][0]
        path, value = first["name"].split("."), e
        for key in path:  # an observable repeats a value that is in the event
            value = value[key] if not isinstance(value, list) else value[0][key]
        assert value == first["value"]


def test_value_types_never_change_within_a_field(events):
    """pyarrow's JSON reader (the fast ingest path) fails when a field flips between number and string."""
    types: dict[str, set[str]] = defaultdict(set)

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            for v in value:
                walk(prefix + "[]", v)
        elif value is not None:
            types[prefix].add(type(value).__name__)

    for e in events:
        walk("", e)
    assert {path: t for path, t in types.items() if len(t) > 1} == {}


# ----------------------------------------------------------------------------- outcomes


def test_outcome_family_is_consistent_on_every_event(events):
    for e in events:
        ok = e["status_id"] == 1
        assert e["status_id"] in (1, 2)
        assert e["status"] == ("Success" if ok else "Failure")
        assert (e["severity_id"] == 1) if ok else (e["severity_id"] >= 2), e
        assert isinstance(e["status_code"], str) and e["status_code"]
        assert ok or e["status_detail"]  # a failure always says why
        if "http_response" in e:
            assert (e["http_response"]["code"] < 400) == ok
            if e["class_uid"] == 4002:
                assert e["status_code"] == str(e["http_response"]["code"])
        if e["class_uid"] == 4001:
            assert (e["activity_id"] in (4, 5)) == (not ok)
        if e["class_uid"] == 4003:
            assert (e["rcode_id"] == 0) == ok and (e["answers"] != []) == ok
        if e.get("exit_code") not in (None, 0):
            assert not ok


@pytest.mark.parametrize("class_uid", sorted(CLASSES))
def test_each_class_fails_a_few_percent_of_the_time(events, class_uid):
    rows = normal(events, class_uid)
    failure_rate = np.mean([e["status_id"] == 2 for e in rows])
    assert 0.01 <= failure_rate <= 0.08, failure_rate


# ----------------------------------------------------------------------------- realism


def test_bytes_and_durations_are_heavy_tailed(events):
    flows = normal(events, 4001)
    bytes_out = np.array([e["traffic"]["bytes_out"] for e in flows if e["status_id"] == 1])
    assert np.percentile(bytes_out, 99) / np.median(bytes_out) > 20
    latency = np.array([e["http_response"]["latency"] for e in normal(events, 4002)])
    assert np.percentile(latency, 99) / np.median(latency) > 5
    assert len(np.unique(bytes_out)) > 0.9 * len(bytes_out)  # continuous, not a handful of constants


def test_diurnal_and_weekly_rhythm(events):
    people = [e for e in normal(events) if not e.get("user", e.get("actor", {}).get("user", {})).get("name", "").startswith("svc-")]
    start = int(sample.DEFAULT_START.timestamp() * 1000)
    offset = np.array([e["time"] - start for e in people])
    hour, day = (offset // sample.HOUR_MS) % 24, offset // DAY_MS
    weekday = day % 7 < 5
    per_work_hour = np.sum(weekday & (hour >= 9) & (hour < 17)) / (8 * 10)
    per_night_hour = np.sum(weekday & (hour < 5)) / (5 * 10)
    assert per_work_hour > 10 * per_night_hour
    per_weekday = weekday.sum() / 10
    per_weekend_day = (~weekday).sum() / 4
    assert per_weekday > 3 * per_weekend_day


def test_users_have_habits(events):
    sso = [e for e in normal(events, 3002) if e["auth_protocol"] == "SAML"]
    countries = defaultdict(set)
    for e in sso:
        countries[e["user"]["name"]].add(e["src_endpoint"]["location"]["country"])
    assert len(countries) > 30
    assert all(len(c) == 1 for c in countries.values())  # everyone logs on from home
    activity = Counter(e.get("user", e.get("actor", {}).get("user", {}))["name"]
                       for e in normal(events) if e["class_uid"] in (3002, 6003, 1007))
    assert max(activity.values()) >= 3 * np.median(list(activity.values()))  # some people are much busier


# ----------------------------------------------------------------------------- anomalies


def test_every_event_is_labelled_and_anomalies_are_one_to_three_percent(events):
    for e in events:
        label = e["_label"]
        assert isinstance(label["is_anomaly"], bool) and isinstance(label["scenario"], str)
        assert label["is_anomaly"] == (label["scenario"] != sample.NORMAL)
    counts = sample.scenario_counts(events)
    assert set(counts) == {sample.NORMAL, *sample.SCENARIOS} and len(sample.SCENARIOS) >= 6
    assert all(counts[name] > 0 for name in sample.SCENARIOS)
    share = 1 - counts[sample.NORMAL] / len(events)
    assert 0.01 <= share <= 0.03, share


def test_password_spray_is_one_foreign_address_against_many_accounts(events):
    spray = of_scenario(events, "password_spray")
    by_ip = Counter(e["src_endpoint"]["ip"] for e in spray)
    ip, attempts = by_ip.most_common(1)[0]
    assert len({e["user"]["name"] for e in spray if e["src_endpoint"]["ip"] == ip}) >= 0.8 * attempts
    assert np.mean([e["status_id"] == 2 for e in spray]) > 0.9
    assert {e["src_endpoint"]["location"]["country"] for e in spray} <= set(sample.ATTACK_COUNTRIES)


def test_new_country_login_comes_from_a_country_the_user_never_uses(events):
    home = {e["user"]["name"]: e["src_endpoint"]["location"]["country"] for e in normal(events, 3002) if e["auth_protocol"] == "SAML"}
    odd = of_scenario(events, "new_country_login")
    assert odd and all(e["class_uid"] == 3002 for e in odd)
    assert all(e["src_endpoint"]["location"]["country"] != home.get(e["user"]["name"]) for e in odd)


def test_exfiltration_sends_far_more_than_normal_flows_to_a_rare_destination(events):
    normal_out = np.array([e["traffic"]["bytes_out"] for e in normal(events, 4001)])
    flows = [e for e in of_scenario(events, "data_exfiltration") if e["class_uid"] == 4001]
    assert flows and min(e["traffic"]["bytes_out"] for e in flows) > np.percentile(normal_out, 99.5)
    normal_destinations = {e["dst_endpoint"]["ip"] for e in normal(events, 4001)}
    assert all(e["dst_endpoint"]["ip"] not in normal_destinations for e in flows)


def test_port_scan_is_many_refused_ports_from_one_source(events):
    scan = of_scenario(events, "port_scan")
    assert all(e["class_uid"] == 4001 for e in scan)
    assert len({e["dst_endpoint"]["port"] for e in scan}) > 0.5 * len(scan)
    assert np.mean([e["activity_id"] in (4, 5) for e in scan]) > 0.8
    assert len({e["src_endpoint"]["ip"] for e in scan}) == 1


def test_suspicious_lineage_has_word_spawning_encoded_powershell(events):
    chain = of_scenario(events, "suspicious_process_lineage")
    assert any(e["process"]["parent_process"]["name"] == "winword.exe" and e["process"]["name"] == "powershell.exe"
               and " -enc " in e["process"]["cmd_line"] for e in chain)
    launched = {e["process"]["pid"] for e in chain}
    assert any(e["process"]["parent_process"]["pid"] in launched for e in chain)  # a real tree, not loose events
    assert not any(e["process"]["parent_process"]["name"] == "winword.exe" for e in normal(events, 1007))


def test_offhours_privileged_api_calls_happen_at_night_by_non_admins(events):
    calls = of_scenario(events, "offhours_privileged_api")
    assert any(e["api"]["operation"] == "CreateUser" for e in calls)
    hours = {(e["time"] // sample.HOUR_MS) % 24 for e in calls}
    assert hours <= {1, 2, 3, 4, 5}
    privileged = {row[1] for row in sample.API_OPERATIONS if row[4]}
    normal_privileged_hours = [(e["time"] // sample.HOUR_MS) % 24 for e in normal(events, 6003) if e["api"]["operation"] in privileged]
    assert all(7 <= h < 22 for h in normal_privileged_hours)  # admins do this in the day


def test_latency_storm_is_gateway_timeouts_and_huge_latency(events):
    storm = of_scenario(events, "latency_storm")
    assert all(e["class_uid"] == 4002 for e in storm)
    assert np.mean([e["http_response"]["code"] == 504 for e in storm]) > 0.5
    assert np.median([e["http_response"]["latency"] for e in storm]) > 20 * np.median(
        [e["http_response"]["latency"] for e in normal(events, 4002)])
    assert len({e["dst_endpoint"]["hostname"] for e in storm}) == 1


# ----------------------------------------------------------------------------- files


def read_back(path) -> list[dict]:
    name = str(path)
    if name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".parquet"])
def test_file_round_trip(tmp_path, events, suffix):
    path = tmp_path / f"events{suffix}"
    sample.write_events(events, path)
    back = read_back(path)
    assert len(back) == len(events)
    for i in (0, len(events) // 2, len(events) - 1):
        assert back[i]["time"] == events[i]["time"] and back[i]["class_uid"] == events[i]["class_uid"]
        assert back[i]["_label"] == events[i]["_label"]
        assert back[i]["metadata"]["uid"] == events[i]["metadata"]["uid"]
    dns = next(i for i, e in enumerate(events) if e["class_uid"] == 4003 and e["answers"])
    assert back[dns]["answers"][0]["rdata"] == events[dns]["answers"][0]["rdata"]  # nested lists survive
    assert [name for name in tmp_path.iterdir()] == [path]  # no temp file left behind


def test_parquet_keeps_nested_structs(tmp_path, events):
    path = tmp_path / "events.parquet"
    sample.write_events(events, path)
    schema = pq.read_schema(path)
    assert str(schema.field("src_endpoint").type).startswith("struct<")
    assert str(schema.field("_label").type) == "struct<is_anomaly: bool, scenario: string>"


def test_jsonl_reads_with_pyarrow_json(tmp_path, events):
    path = tmp_path / "events.jsonl"
    sample.write_events(events, path)
    table = pa_json.read_json(path)
    assert table.num_rows == len(events)
    assert table.column("_label").combine_chunks().field("is_anomaly").to_pylist().count(True) == sum(
        e["_label"]["is_anomaly"] for e in events)


def test_unknown_extension_is_a_user_error_and_writes_nothing(tmp_path, events):
    with pytest.raises(UserError, match=r"events\.csv"):
        sample.write_events(events[:5], tmp_path / "events.csv")
    assert list(tmp_path.iterdir()) == []


def test_generate_file_reports_what_it_wrote(tmp_path):
    result = sample.generate_file(tmp_path / "demo.jsonl.gz", n_events=500, seed=2)
    assert result.events == 500 and (tmp_path / "demo.jsonl.gz").exists()
    assert result.anomalies == sum(result.scenarios.values()) > 0
    assert set(result.scenarios) == set(sample.SCENARIOS)


# ----------------------------------------------------------------------------- command line


def test_cli_generate_json(tmp_path, capsys):
    out = tmp_path / "demo.parquet"
    assert cli.main(["generate", "--events", "1000", "--seed", "4", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"events", "out", "seconds", "anomalies", "scenarios"} <= set(doc)
    assert doc["events"] == 1000 and doc["out"] == str(out)
    assert doc["anomalies"] == sum(doc["scenarios"].values()) and set(doc["scenarios"]) == set(sample.SCENARIOS)
    assert pq.read_metadata(out).num_rows == 1000


@pytest.mark.parametrize("argv", [["--out", "demo.csv"], ["--out", "demo.jsonl", "--events", "10"]])
def test_cli_generate_bad_input_exits_2_with_one_line(tmp_path, capsys, argv):
    argv = [a if not a.startswith("demo") else str(tmp_path / a) for a in argv]
    assert cli.main(["generate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
