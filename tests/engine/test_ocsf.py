"""engine.ocsf: path patterns, field families, captions, underscore names, enums, outcome labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine import ocsf


@pytest.mark.parametrize(
    "path, pattern, expected",
    [
        ("src_endpoint.hostname", "**.hostname", True),
        ("http_request.url.hostname", "**.hostname", True),
        ("hostname", "**.hostname", True),  # the prefix may be empty
        ("src_endpoint.hostname_alias", "**.hostname", False),
        ("user.name", "**.user.**", True),
        ("actor.user.name", "**.user.**", True),
        ("actor.user.groups.name", "**.user.**", True),
        ("http_request.user_agent", "**.user.**", False),  # a segment, not a prefix of one
        ("start_time", "**.*_time", True),
        ("actor.session.created_time", "**.*_time", True),
        ("timezone_offset", "**.*_time", False),
        ("error", "error*.**", True),
        ("error.message", "error*.**", True),
        ("error_code", "error*.**", True),
        ("http_response.error", "error*.**", False),  # root attribute only
        ("http_response.code", "http_response.code", True),
        ("http_response.codes", "http_response.code", False),
        ("http_response_code", "http_response.code", False),  # dots are literal; canonical_path handles underscores
    ],
)
def test_matches_glob_semantics(path, pattern, expected):
    assert ocsf.matches(path, pattern) is expected


@pytest.mark.parametrize(
    "path, family",
    [
        ("_label.is_anomaly", ocsf.LABEL),
        ("_label.scenario", ocsf.LABEL),
        ("anomaly.type", ocsf.LABEL),
        ("is_anomaly", ocsf.LABEL),
        ("class_uid", ocsf.CLASSIFICATION),
        ("type_uid", ocsf.CLASSIFICATION),
        ("activity_id", ocsf.CLASSIFICATION),
        ("class_name", ocsf.CLASSIFICATION),
        ("severity_id", ocsf.SEVERITY),
        ("risk_level_id", ocsf.SEVERITY),
        ("status_id", ocsf.OUTCOME),
        ("status", ocsf.OUTCOME),
        ("status_detail", ocsf.OUTCOME),
        ("http_response.code", ocsf.OUTCOME),
        ("http_response.status", ocsf.OUTCOME),
        ("rcode_id", ocsf.OUTCOME),
        ("disposition_id", ocsf.OUTCOME),
        ("level", ocsf.OUTCOME),
        ("error.message", ocsf.OUTCOME),
        ("user.name", ocsf.IDENTITY),
        ("actor.user.uid", ocsf.IDENTITY),  # a user id identifies a person: identity, not a unique row id
        ("src_endpoint.ip", ocsf.IDENTITY),
        ("dst_endpoint.hostname", ocsf.IDENTITY),
        ("device.name", ocsf.IDENTITY),
        ("duration", ocsf.MEASURE),
        ("traffic.bytes_in", ocsf.MEASURE),
        ("traffic.packets_out", ocsf.MEASURE),
        ("http_response.latency", ocsf.MEASURE),
        ("http_request.length", ocsf.MEASURE),
        ("file.size", ocsf.MEASURE),
        ("response_time", ocsf.TIME),  # DNS Activity response_time is a timestamp in OCSF 1.x
        ("exit_code", ocsf.OUTCOME),
        ("count", ocsf.MEASURE),
        ("answers.count", ocsf.MEASURE),
        ("time", ocsf.TIME),
        ("start_time", ocsf.TIME),
        ("metadata.original_time", ocsf.TIME),
        ("src_endpoint.port", ocsf.PORT),
        ("actor.session.uid", ocsf.MASKABLE),
        ("process.cmd_line", ocsf.MASKABLE),
        ("metadata.uid", ocsf.ID),
        ("trace_id", ocsf.ID),
        ("process.pid", ocsf.ID),
        ("resources.uid", ocsf.ID),
        ("message", ocsf.TEXT),
        ("raw_data", ocsf.TEXT),
        ("observables", ocsf.DUPLICATE),
        ("http_request.user_agent", ocsf.CONTEXT),
        ("http_request.url.path", ocsf.CONTEXT),
        ("file.name", ocsf.CONTEXT),
        ("metadata.product.name", ocsf.CONTEXT),
        ("unmapped.vendor_field", ocsf.CONTEXT),
        ("my_custom_thing", None),
    ],
)
def test_family_of(path, family):
    assert ocsf.family_of(path) == family


def test_outcome_and_protection_flags_follow_the_family():
    assert ocsf.is_outcome_family("status_id") and ocsf.is_outcome_family("severity_id")
    assert not ocsf.is_outcome_family("class_uid")
    assert ocsf.is_protected("class_uid") and ocsf.is_protected("user.name") and ocsf.is_protected("status")
    assert not ocsf.is_protected("http_request.user_agent") and not ocsf.is_protected("duration")


@pytest.mark.parametrize(
    "path, heavy", [("duration", True), ("traffic.bytes_in", True), ("http_response.latency", True),
                    ("file.size", True), ("count", False), ("answers.count", False)],
)
def test_heavy_tailed_measures(path, heavy):
    assert ocsf.is_heavy_tailed_measure(path) is heavy


@pytest.mark.parametrize(
    "path, paths, expected",
    [
        ("status", ["status", "status_id"], "status_id"),
        ("status", ["status"], None),  # no id present: the caption is the only carrier
        ("class_name", ["class_name", "class_uid"], "class_uid"),
        ("activity_name", ["activity_name", "activity_id"], "activity_id"),
        ("severity", ["severity", "severity_id"], "severity_id"),
        ("auth_protocol", ["auth_protocol", "auth_protocol_id"], "auth_protocol_id"),
        ("connection_info.direction", ["connection_info.direction", "connection_info.direction_id"],
         "connection_info.direction_id"),
        ("connection_info.direction", ["connection_info.direction", "direction_id"], None),  # other object
        ("actor.user.name", ["actor.user.name", "actor.user.uid"], None),  # .name is not a caption of .uid
        ("status_id", ["status_id"], None),
    ],
)
def test_caption_of(path, paths, expected):
    assert ocsf.caption_of(path, paths) == expected


@pytest.mark.parametrize(
    "name, path",
    [
        ("http_response_code", "http_response.code"),
        ("actor_user_name", "actor.user.name"),
        ("actor_session_uid", "actor.session.uid"),
        ("http_request_user_agent", "http_request.user_agent"),
        ("http_request_url_path", "http_request.url.path"),
        ("metadata_product_vendor_name", "metadata.product.vendor_name"),
        ("src_endpoint_port", "src_endpoint.port"),
        ("dst_endpoint_svc_name", "dst_endpoint.svc_name"),
        ("api_service_name", "api.service.name"),
        ("anomaly_type", "anomaly.type"),
        ("_label_is_anomaly", "_label.is_anomaly"),
        ("response_time", "response_time"),
        ("status_id", "status_id"),
        ("class_uid", "class_uid"),
        ("is_anomaly", "is_anomaly"),
        ("host_name", "host_name"),
        ("src_endpoint.ip", "src_endpoint.ip"),  # dotted names are already canonical
        ("traffic.bytes_in", "traffic.bytes_in"),
    ],
)
def test_canonical_path(name, path):
    assert ocsf.canonical_path(name) == path


def test_find_column_matches_both_spellings():
    assert ocsf.find_column(["a", "http_response_code"], "http_response.code") == "http_response_code"
    assert ocsf.find_column(["http_response.code"], "http_response.code") == "http_response.code"
    assert ocsf.find_column(["status"], "status_id") is None


def test_enum_names():
    assert [ocsf.status_name(i) for i in (0, 1, 2, 99)] == ["Unknown", "Success", "Failure", "Other"]
    assert ocsf.severity_name(5) == "Critical" and ocsf.severity_name(6) == "Fatal"
    assert ocsf.category_name(3) == "Identity & Access Management"
    assert {ocsf.class_name(c) for c in (1001, 1007, 3001, 3002, 4001, 4002, 4003, 6003)} == {
        "File System Activity", "Process Activity", "Account Change", "Authentication",
        "Network Activity", "HTTP Activity", "DNS Activity", "API Activity"}
    assert ocsf.activity_name(4001, 5) == "Refuse" and ocsf.activity_name(3002, 1) == "Logon"
    assert ocsf.activity_name(6003, 99) == "Other" and ocsf.class_name(9999) == "Class 9999"


def test_outcome_label_from_status_id_first():
    df = pd.DataFrame({"status_id": [1, 2, 99], "http_response.code": [500, 200, 500]})
    assert ocsf.outcome_label(df).tolist() == ["Success", "Failure", "Other"]


def test_outcome_label_falls_back_when_status_id_is_unknown_or_missing():
    df = pd.DataFrame({
        "status_id": [0, np.nan, np.nan, 0, np.nan],
        "status": [None, "Failed", None, None, None],
        "http_response.code": [503, np.nan, 302, np.nan, np.nan],
    })
    assert ocsf.outcome_label(df).tolist() == ["Failure", "Failure", "Success", "Other", "Other"]


def test_outcome_label_on_underscore_columns_and_network_refusals():
    df = pd.DataFrame({"class_uid": [4001, 4001, 3002], "activity_id": [5, 1, 5]}, index=[10, 11, 12])
    labels = ocsf.outcome_label(df)
    assert labels.index.tolist() == [10, 11, 12]
    assert labels.tolist() == ["Failure", "Other", "Other"]
    df = pd.DataFrame({"http_response_code": [404.0, 200.0]})
    assert ocsf.outcome_label(df).tolist() == ["Failure", "Success"]


def test_outcome_label_without_any_evidence_is_other():
    assert ocsf.outcome_label(pd.DataFrame({"x": [1, 2]})).tolist() == ["Other", "Other"]
    assert ocsf.outcome_label(pd.DataFrame()).tolist() == []
