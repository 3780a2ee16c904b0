"""OCSF knowledge as data, plus the small lookups that schema inference and the UI need.

Facts come from the OCSF schema 1.x (Apache-2.0) as summarised in the team's OCSF.md: enum
captions, which attributes form the outcome family, which are classification, identity,
measures, time, context, and which are not model inputs by default.

Paths are dotted OCSF attribute paths (``actor.user.name``). Files flattened with underscores
(``http_response_code``) are mapped back to dotted paths by :func:`canonical_path` before any
lookup, so the knowledge works on both shapes. Patterns use a small glob language:

* ``*`` matches within one path segment (``*_time``, ``error*``),
* a leading ``**.`` matches any prefix of whole segments, including none (``**.hostname``),
* a trailing ``.**`` matches any suffix of whole segments, including none (``user.**``).

This module knows nothing of pandas beyond :func:`outcome_label`, and nothing of the Schema:
engine.schema turns the families below into roles and policies.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------------------------
STATUS_IDS: dict[int, str] = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
SEVERITY_IDS: dict[int, str] = {
    0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal", 99: "Other",
}
CATEGORY_NAMES: dict[int, str] = {
    1: "System Activity", 2: "Findings", 3: "Identity & Access Management",
    4: "Network Activity", 5: "Discovery", 6: "Application Activity",
}
CLASS_NAMES: dict[int, str] = {
    1001: "File System Activity", 1007: "Process Activity", 3001: "Account Change", 3002: "Authentication",
    4001: "Network Activity", 4002: "HTTP Activity", 4003: "DNS Activity", 6003: "API Activity",
}
ACTIVITY_NAMES: dict[int, dict[int, str]] = {
    1001: {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 5: "Rename", 6: "Set Attributes", 7: "Set Security",
           8: "Get Attributes", 9: "Get Security", 10: "Encrypt", 11: "Decrypt", 12: "Mount", 13: "Unmount", 14: "Open"},
    1007: {1: "Launch", 2: "Terminate", 3: "Open", 4: "Inject", 5: "Set User ID"},
    3001: {1: "Create", 2: "Enable", 3: "Password Change", 4: "Password Reset", 5: "Disable", 6: "Delete",
           7: "Attach Policy", 8: "Detach Policy", 9: "Lock"},
    3002: {1: "Logon", 2: "Logoff", 3: "Authentication Ticket", 4: "Service Ticket Request", 5: "Renew",
           6: "Preauth", 7: "Account Switch"},
    4001: {1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic", 7: "Listen"},
    4002: {1: "Connect", 2: "Delete", 3: "Get", 4: "Head", 5: "Options", 6: "Post", 7: "Put", 8: "Trace"},
    4003: {1: "Query", 2: "Response", 6: "Traffic"},
    6003: {1: "Create", 2: "Read", 3: "Update", 4: "Delete"},
}
# Activities that are themselves outcomes (OCSF.md: in 4001, 4 Fail and 5 Refuse are outcomes).
OUTCOME_ACTIVITIES: dict[int, frozenset[int]] = {4001: frozenset({4, 5})}
# Unknown (0) and Other (99) are shared by every enum.
COMMON_ENUM_NAMES: dict[int, str] = {0: "Unknown", 99: "Other"}


def class_name(class_uid: int) -> str:
    return CLASS_NAMES.get(int(class_uid), f"Class {int(class_uid)}")


def category_name(category_uid: int) -> str:
    return CATEGORY_NAMES.get(int(category_uid), f"Category {int(category_uid)}")


def activity_name(class_uid: int, activity_id: int) -> str:
    activity_id = int(activity_id)
    names = ACTIVITY_NAMES.get(int(class_uid), {})
    return names.get(activity_id) or COMMON_ENUM_NAMES.get(activity_id, f"Activity {activity_id}")


def status_name(status_id: int) -> str:
    return STATUS_IDS.get(int(status_id), f"Status {int(status_id)}")


def severity_name(severity_id: int) -> str:
    return SEVERITY_IDS.get(int(severity_id), f"Severity {int(severity_id)}")


# ---------------------------------------------------------------------------------------------
# Field families. Order matters: a path belongs to the FIRST family whose patterns match it.
# ---------------------------------------------------------------------------------------------
LABEL = "label"                    # annotations for colouring and evaluation, never inputs
CLASSIFICATION = "classification"  # what kind of event: protected
SEVERITY = "severity"              # outcome family, severity flavour: protected
OUTCOME = "outcome"                # how it ended: protected
IDENTITY = "identity"              # who/which host: protected by default (swaps create false associations)
MEASURE = "measure"                # counts and amounts: jitter
TIME = "time"                      # epoch ms: time jitter
PORT = "port"                      # categorical when few service ports, else ephemeral noise
MASKABLE = "maskable"              # id-like context: mask rather than swap
ID = "id"                          # unique ids: not inputs
TEXT = "text"                      # free text and raw copies: not inputs
DUPLICATE = "duplicate"            # repeats other fields (observables): not inputs
CONTEXT = "context"                # safe to swap

LABEL_PATTERNS = ("_label", "_label.**", "is_anomaly", "anomaly", "anomaly.**")
CLASSIFICATION_PATTERNS = (
    "class_uid", "category_uid", "activity_id", "type_uid",
    "class_name", "category_name", "activity_name", "type_name",
)
SEVERITY_PATTERNS = ("severity_id", "severity", "risk_level*", "risk_score")
OUTCOME_PATTERNS = (
    "status_id", "status", "status_code", "status_detail",
    "http_response.code", "http_response.status",
    "rcode_id", "rcode", "action_id", "action", "disposition_id", "disposition",
    "level", "error*.**", "api.response.code", "api.response.error*.**",
    "exit_code",  # a process's non-zero exit is its failure
)
IDENTITY_PATTERNS = (
    "**.user.**", "user", "**.ip", "**.hostname", "**.mac", "**.email_addr",
    "device.name", "src_endpoint.name", "dst_endpoint.name", "src_endpoint.domain", "dst_endpoint.domain",
)
HEAVY_TAILED_MEASURE_PATTERNS = (
    "duration", "**.duration", "traffic.**", "**.*bytes*", "**.*packets*", "**.latency",
    "**.length", "**.*_length", "**.size", "**.*_size",
)
MEASURE_PATTERNS = HEAVY_TAILED_MEASURE_PATTERNS + ("count", "**.count")
TIME_PATTERNS = ("time", "**.time", "**.*_time", "**.time_dt", "**.*_time_dt", "metadata.original_time")
PORT_PATTERNS = ("**.port",)
MASKABLE_PATTERNS = ("**.session.uid", "**.session.uuid", "**.cmd_line")
ID_PATTERNS = (
    "metadata.uid", "metadata.correlation_uid", "**.uid", "*_uid", "**.uuid",
    "trace_id", "span_id", "**.trace_id", "**.span_id", "trace.**", "span.**", "**.pid", "**.tid",
)
TEXT_PATTERNS = ("message", "raw_data", "**.raw_data", "**.desc", "description")
DUPLICATE_PATTERNS = ("observables", "observables.**", "enrichments", "enrichments.**")
CONTEXT_PATTERNS = (
    "http_request.**", "**.url.**", "file.**", "**.session.**", "metadata.**", "unmapped.**",
    "connection_info.**", "api.**", "process.**", "service.**", "device.**", "query.**",
    "src_endpoint.**", "dst_endpoint.**", "cloud.**", "auth_protocol*", "logon_type*", "is_*", "timezone_offset",
)

FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (LABEL, LABEL_PATTERNS),
    (CLASSIFICATION, CLASSIFICATION_PATTERNS),
    (SEVERITY, SEVERITY_PATTERNS),
    (OUTCOME, OUTCOME_PATTERNS),
    (IDENTITY, IDENTITY_PATTERNS),
    (MEASURE, MEASURE_PATTERNS),  # before TIME; DNS response_time is a timestamp in OCSF 1.x (a TIME field)
    (TIME, TIME_PATTERNS),
    (PORT, PORT_PATTERNS),
    (MASKABLE, MASKABLE_PATTERNS),
    (ID, ID_PATTERNS),
    (TEXT, TEXT_PATTERNS),
    (DUPLICATE, DUPLICATE_PATTERNS),
    (CONTEXT, CONTEXT_PATTERNS),
)
OUTCOME_FAMILIES = frozenset({OUTCOME, SEVERITY})
PROTECTED_FAMILIES = frozenset({CLASSIFICATION, SEVERITY, OUTCOME, IDENTITY})
NOT_INPUT_FAMILIES = frozenset({LABEL, ID, TEXT, DUPLICATE})


@lru_cache(maxsize=None)
def _compile(pattern: str) -> re.Pattern[str]:
    body = pattern
    prefix = suffix = ""
    if body.startswith("**."):
        prefix, body = r"(?:[^.]+\.)*", body[3:]
    if body.endswith(".**"):
        suffix, body = r"(?:\.[^.]+)*", body[:-3]
    core = "".join("[^.]*" if ch == "*" else re.escape(ch) for ch in body)
    return re.compile(prefix + core + suffix)


def matches(path: str, pattern: str) -> bool:
    """Whether a dotted path matches one glob pattern (see the module docstring)."""
    return _compile(pattern).fullmatch(path) is not None


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    return any(matches(path, p) for p in patterns)


@lru_cache(maxsize=4096)
def family_of(path: str) -> str | None:
    """The OCSF family of a dotted path (first match in FAMILIES order), None if OCSF says nothing."""
    for family, patterns in FAMILIES:
        if matches_any(path, patterns):
            return family
    return None


def is_outcome_family(path: str) -> bool:
    return family_of(path) in OUTCOME_FAMILIES


def is_protected(path: str) -> bool:
    return family_of(path) in PROTECTED_FAMILIES


def is_heavy_tailed_measure(path: str) -> bool:
    return matches_any(path, HEAVY_TAILED_MEASURE_PATTERNS)


def is_array_count(path: str, paths: Iterable[str]) -> bool:
    """``<path>.count`` next to a ``<path>`` column: the item count of an array (engine.ingest's shape)."""
    return path.endswith(".count") and path[: -len(".count")] in set(paths)


# ---------------------------------------------------------------------------------------------
# Captions that duplicate an id
# ---------------------------------------------------------------------------------------------
ID_SUFFIXES = ("_id", "_uid")


def caption_of(path: str, paths: Iterable[str]) -> str | None:
    """The id path that ``path`` is a caption of, when that id is present in ``paths``.

    A caption ``x`` or ``x_name`` duplicates ``x_id`` / ``x_uid`` in the same object
    (``status`` -> ``status_id``, ``class_name`` -> ``class_uid``, ``auth_protocol`` -> ``auth_protocol_id``).
    """
    parent, _, leaf = path.rpartition(".")
    stems = [leaf]
    if leaf.endswith("_name") and len(leaf) > len("_name"):
        stems.append(leaf[: -len("_name")])
    present = set(paths)
    for stem in stems:
        for suffix in ID_SUFFIXES:
            candidate = f"{parent}.{stem}{suffix}" if parent else f"{stem}{suffix}"
            if candidate != path and candidate in present:
                return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Underscore-flattened names -> dotted paths
# ---------------------------------------------------------------------------------------------
# OCSF objects whose attributes appear as ``<object>_<attribute>`` in underscore-flattened files.
OBJECT_NAMES = frozenset({
    "actor", "user", "src_endpoint", "dst_endpoint", "device", "http_request", "http_response", "url",
    "metadata", "product", "traffic", "connection_info", "process", "parent_process", "file", "api",
    "service", "session", "query", "observables", "unmapped", "error", "anomaly", "response", "request",
    "finding_info", "os", "location", "cloud", "account", "idp", "auth_factors", "resources", "answers",
    "enrichments", "group", "proxy", "tls", "certificate", "firewall_rule", "attacks", "malware",
})
# Attribute names that contain an object name but are leaves (do not split them).
LEAF_NAMES = frozenset({"user_agent", "query_string", "response_time", "request_time"})


@lru_cache(maxsize=4096)
def canonical_path(name: str) -> str:
    """The dotted OCSF path of a column name; dotted names are returned unchanged.

    ``http_response_code`` -> ``http_response.code``, ``actor_user_name`` -> ``actor.user.name``,
    ``http_request_user_agent`` -> ``http_request.user_agent``, ``_label_scenario`` -> ``_label.scenario``.
    """
    if "." in name or not name:
        return name
    if name.startswith("_label_"):
        return "_label." + name[len("_label_"):]
    return ".".join(_split_underscored(name.split("_")))


def _split_underscored(tokens: list[str]) -> list[str]:
    segments: list[str] = []
    while tokens:
        rest = "_".join(tokens)
        if rest in LEAF_NAMES:
            segments.append(rest)
            break
        width = next((k for k in range(len(tokens), 0, -1) if "_".join(tokens[:k]) in OBJECT_NAMES), 0)
        if width == 0:
            segments.append(rest)
            break
        segments.append("_".join(tokens[:width]))
        tokens = tokens[width:]
    return segments


def find_column(columns: Iterable[str], path: str) -> str | None:
    """The column of a frame whose canonical path is ``path`` (dotted or underscore-flattened)."""
    for column in columns:
        if canonical_path(str(column)) == path:
            return str(column)
    return None


# ---------------------------------------------------------------------------------------------
# Outcome labels for colouring
# ---------------------------------------------------------------------------------------------
SUCCESS, FAILURE, OTHER = "Success", "Failure", "Other"
SUCCESS_WORDS = frozenset({"success", "succeeded", "successful", "ok", "allowed", "allow", "pass", "passed"})
FAILURE_WORDS = frozenset({"failure", "failed", "fail", "error", "denied", "deny", "blocked", "refused", "rejected"})
HTTP_FAILURE_MIN_CODE = 400


def outcome_label(df: pd.DataFrame) -> pd.Series:
    """"Success" / "Failure" / "Other" per row, for colouring.

    Evidence in order: ``status_id`` (1 Success, 2 Failure, 99 Other; 0 Unknown or missing falls
    through), the ``status`` caption, ``http_response.code`` (>= 400 is a failure), and for
    Network Activity the activities that are outcomes (4 Fail, 5 Refuse). Rows with no evidence are "Other".
    """
    label = pd.Series(np.full(len(df), None, dtype=object), index=df.index, dtype=object)
    for evidence in (_from_status_id, _from_status_text, _from_http_code, _from_network_activity):
        undecided = label.isna()
        if not undecided.any():
            break
        found = evidence(df)
        if found is not None:
            label = label.where(~undecided, found)
    return label.fillna(OTHER).astype(object)


def _numbers(df: pd.DataFrame, path: str) -> pd.Series | None:
    column = find_column(df.columns, path)
    if column is None:
        return None
    return pd.to_numeric(df[column], errors="coerce")


def _from_status_id(df: pd.DataFrame) -> pd.Series | None:
    ids = _numbers(df, "status_id")
    if ids is None:
        return None
    mapping = {1: SUCCESS, 2: FAILURE, 99: OTHER}  # 0 Unknown: look at other evidence
    return ids.map(mapping).astype(object)


def _from_status_text(df: pd.DataFrame) -> pd.Series | None:
    column = find_column(df.columns, "status")
    if column is None:
        return None
    words = df[column].astype("string").str.strip().str.lower()
    found = pd.Series(None, index=df.index, dtype=object)
    found[words.isin(SUCCESS_WORDS).fillna(False).to_numpy(dtype=bool)] = SUCCESS
    found[words.isin(FAILURE_WORDS).fillna(False).to_numpy(dtype=bool)] = FAILURE
    return found


def _from_http_code(df: pd.DataFrame) -> pd.Series | None:
    codes = _numbers(df, "http_response.code")
    if codes is None:
        return None
    found = pd.Series(None, index=df.index, dtype=object)
    found[(codes >= HTTP_FAILURE_MIN_CODE).fillna(False).to_numpy(dtype=bool)] = FAILURE
    found[(codes < HTTP_FAILURE_MIN_CODE).fillna(False).to_numpy(dtype=bool)] = SUCCESS
    return found


def _from_network_activity(df: pd.DataFrame) -> pd.Series | None:
    classes, activities = _numbers(df, "class_uid"), _numbers(df, "activity_id")
    if classes is None or activities is None:
        return None
    found = pd.Series(None, index=df.index, dtype=object)
    for class_uid, failing in OUTCOME_ACTIVITIES.items():
        failed = (classes == class_uid) & activities.isin(list(failing))
        found[failed.fillna(False).to_numpy(dtype=bool)] = FAILURE
    return found
