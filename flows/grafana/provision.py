"""`slawatch provision`: push the provisioning objects to a running Grafana over its HTTP API.

For users on a hosted Grafana, where files cannot be mounted. The objects are the same ones the
files hold (`flows.grafana.files`); every endpoint is uid- or name-based. Each object is read
first and written only when it is missing or differs in a field slawatch sets (Grafana adds
fields of its own, which are ignored), so a second run sends no change.

Contact point addresses come from `SLAWATCH_ALERT_WEBHOOK_URL` and `SLAWATCH_ALERT_EMAILS`
(Grafana interpolates them into the files itself; over the API slawatch reads them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.exceptions import SlawatchError
from flows.grafana.alerting import (
    FOLDER,
    FOLDER_UID,
    contact_points,
    mute_times,
    policies,
    rule_groups,
)
from flows.grafana.dashboards import DATASOURCE_UID, dashboards

__all__ = ["GrafanaError", "ProvisionReport", "datasource", "provision"]

Json = dict[str, Any]

_ENV: Final = {"webhook": "SLAWATCH_ALERT_WEBHOOK_URL", "email": "SLAWATCH_ALERT_EMAILS"}


class GrafanaError(SlawatchError):
    """Grafana refused or could not be reached; check --url and that the token is an admin's."""


@dataclass(slots=True)
class ProvisionReport:
    """What one run did: objects created, updated and left as they were.

    Each list holds the objects' names as the terminal shows them (`dashboard <uid>`,
    `rule group <name>`, ...), in the order they were provisioned. A run that changed nothing
    has only `unchanged` entries, which is how a second run proves it is idempotent.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One human line for the terminal: `N created, N updated, N unchanged`."""
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


def covers(actual: Any, wanted: Any) -> bool:
    """Whether `actual` (as Grafana returns it) holds every field of `wanted` with its value.

    Dicts compare key by key on `wanted`'s keys; lists element by element, same length.
    Fields that Grafana adds (ids, versions, timestamps) are ignored, so an object it holds
    as provisioned is "covered" and left alone.

    Args:
        actual: the object as Grafana returned it (None when it does not exist).
        wanted: the object as slawatch would write it.

    Returns:
        True when writing `wanted` would change nothing that slawatch sets.
    """
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and covers(actual[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(covers(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def datasource(questdb_address: str, user: str, password: str) -> Json:
    """The QuestDB data source (the built-in PostgreSQL plugin), uid `questdb`.

    Args:
        questdb_address: `host:port` of QuestDB's PG wire as Grafana's server reaches it.
        user: the QuestDB user.
        password: the QuestDB password, kept in `secureJsonData` (Grafana never returns it).

    Returns:
        The data source body for Grafana's `/api/datasources` (database `qdb`, no TLS,
        queries sent from Grafana's server).
    """
    return {
        "uid": DATASOURCE_UID,
        "name": "QuestDB",
        "type": "grafana-postgresql-datasource",
        "access": "proxy",
        "url": questdb_address,
        "user": user,
        "jsonData": {"database": "qdb", "sslmode": "disable", "timescaledb": False},
        "secureJsonData": {"password": password},
    }


def _receivers(env: Mapping[str, str]) -> list[Json]:
    """Return the contact point's receivers with their addresses filled from `env`.

    Unlike the provisioning file, the HTTP API gets real addresses: a receiver whose variable
    (`SLAWATCH_ALERT_WEBHOOK_URL`, `SLAWATCH_ALERT_EMAILS`) is empty or unset is left out.

    Raises:
        GrafanaError: Neither variable is set, so no alert could reach anyone.
    """
    out = []
    for point in contact_points():
        for receiver in point["receivers"]:
            value = env.get(_ENV[receiver["type"]], "")
            if not value:
                continue
            settings = dict(receiver["settings"])
            key = "url" if receiver["type"] == "webhook" else "addresses"
            settings[key] = value
            out.append({**receiver, "name": point["name"], "settings": settings})
    if not out:
        msg = (
            "no contact point address: set SLAWATCH_ALERT_WEBHOOK_URL and/or "
            "SLAWATCH_ALERT_EMAILS before running provision"
        )
        raise GrafanaError(msg)
    return out


Call = tuple[str, str, Json]
"""An HTTP call: method, path under `/api`, JSON body."""


class _Session:
    """One provisioning run's HTTP calls, recording each object's outcome in the report."""

    def __init__(self, api: GrafanaApi, report: ProvisionReport) -> None:
        self.client = api.client
        self.report = report

    def get(self, path: str) -> Any:
        """Return the JSON at `/api<path>`, or None when Grafana answers 404 (no such object).

        Raises:
            GrafanaClientError: Grafana answered another error.
        """
        try:
            return self.client.GET(path)
        except GrafanaClientError as exc:
            if exc.status_code == 404:
                return None
            raise

    def send(self, call: Call) -> None:
        """Make one write call; Grafana's answer is not needed.

        Raises:
            GrafanaClientError: Grafana refused it.
        """
        method, path, body = call
        getattr(self.client, method)(path, json=body)

    def sync(self, name: str, current: Any, wanted: Json, create: Call, update: Call) -> None:
        """Create the object if it is missing, update it if it differs, else leave it.

        Args:
            name: the object as the report names it.
            current: the object as Grafana holds it, or None if it does not exist.
            wanted: the fields that must match (`covers`) for the object to be left alone.
            create: the call that creates it.
            update: the call that replaces it.
        """
        if current is None:
            self.send(create)
            self.report.created.append(name)
        elif not covers(current, wanted):
            self.send(update)
            self.report.updated.append(name)
        else:
            self.report.unchanged.append(name)


def provision(
    api: GrafanaApi,
    *,
    questdb_address: str = "questdb:8812",
    questdb_user: str = "admin",
    questdb_password: str = "quest",  # noqa: S107 - QuestDB's documented default
    prefix: str = DEFAULT_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    env: Mapping[str, str] | None = None,
) -> ProvisionReport:
    """Create or update the data source, folder, dashboards and alerting objects.

    Idempotent: an object that already matches is not written, so a second run reports
    everything unchanged. Objects are written in dependency order (data source, folder,
    dashboards, rule groups, contact points, mute timing, notification policy); a failure
    stops the run, leaving what was written before it in place. The data source password is
    never compared (Grafana does not return it), so changing only the password needs the data
    source to be deleted first.

    Args:
        api: A client for the Grafana to provision (admin or editor token).
        questdb_address: `host:port` of QuestDB's PG wire as Grafana's server reaches it.
        questdb_user: QuestDB user.
        questdb_password: QuestDB password (sent only when the data source is written).
        prefix: The monitor's table prefix.
        timezone: The team's IANA calendar zone.
        env: Where contact point addresses are read (default: the process environment).

    Returns:
        What was created, updated and left alone.

    Raises:
        GrafanaError: Grafana cannot be reached or refused a request, or no contact point
            address is set in `env`.
    """
    report = ProvisionReport()
    receivers = _receivers(os.environ if env is None else env)
    s = _Session(api, report)
    try:
        _provision(
            s,
            receivers,
            address=questdb_address,
            user=questdb_user,
            password=questdb_password,
            prefix=prefix,
            timezone=timezone,
        )
    except GrafanaClientError as exc:
        msg = f"Grafana refused a request ({exc.status_code}): {exc.message}"
        raise GrafanaError(msg) from exc
    except OSError as exc:
        msg = f"cannot reach Grafana: {exc}"
        raise GrafanaError(msg) from exc
    return report


def _provision(
    s: _Session,
    receivers: list[Json],
    *,
    address: str,
    user: str,
    password: str,
    prefix: str,
    timezone: str,
) -> None:
    """Make `provision`'s calls, after checking that Grafana answers `/api/health`.

    Raises:
        GrafanaClientError: Grafana refused a request.
        OSError: Grafana cannot be reached.
    """
    s.client.GET("/health")
    ds = datasource(address, user, password)
    public = {k: v for k, v in ds.items() if k != "secureJsonData"}
    uid = DATASOURCE_UID
    current = s.get(f"/datasources/uid/{uid}")
    s.sync(
        f"datasource {uid}",
        current,
        public,
        ("POST", "/datasources", ds),
        ("PUT", f"/datasources/uid/{uid}", ds),
    )
    folder = {"uid": FOLDER_UID, "title": FOLDER}
    s.sync(
        f"folder {FOLDER_UID}",
        s.get(f"/folders/{FOLDER_UID}"),
        folder,
        ("POST", "/folders", folder),
        ("PUT", f"/folders/{FOLDER_UID}", {**folder, "overwrite": True}),
    )
    for board in dashboards(prefix, timezone):
        current = s.get(f"/dashboards/uid/{board['uid']}")
        body = {"dashboard": board, "folderUid": FOLDER_UID, "overwrite": True}
        wanted = {k: v for k, v in board.items() if k != "version"}
        call = ("POST", "/dashboards/db", body)
        s.sync(
            f"dashboard {board['uid']}",
            None if current is None else current.get("dashboard"),
            wanted,
            call,
            call,
        )
    for group in rule_groups(prefix, timezone):
        path = f"/v1/provisioning/folder/{FOLDER_UID}/rule-groups/{group['name']}"
        rules = [
            {**rule, "folderUID": FOLDER_UID, "ruleGroup": group["name"], "orgID": 1}
            for rule in group["rules"]
        ]
        body = {
            "title": group["name"],
            "folderUid": FOLDER_UID,
            "interval": _seconds(group["interval"]),
            "rules": rules,
        }
        s.sync(
            f"rule group {group['name']}",
            s.get(path),
            body,
            ("PUT", path, body),
            ("PUT", path, body),
        )
    existing = {p.get("uid"): p for p in s.get("/v1/provisioning/contact-points") or []}
    for receiver in receivers:
        uid = receiver["uid"]
        s.sync(
            f"contact point {uid}",
            existing.get(uid),
            receiver,
            ("POST", "/v1/provisioning/contact-points", receiver),
            ("PUT", f"/v1/provisioning/contact-points/{uid}", receiver),
        )
    for mute in mute_times(timezone):
        body = {k: v for k, v in mute.items() if k != "orgId"}
        name = body["name"]
        s.sync(
            f"mute timing {name}",
            s.get(f"/v1/provisioning/mute-timings/{name}"),
            body,
            ("POST", "/v1/provisioning/mute-timings", body),
            ("PUT", f"/v1/provisioning/mute-timings/{name}", body),
        )
    tree = {k: v for k, v in policies()[0].items() if k != "orgId"}
    # Grafana always has a policy tree (its default), so this is only ever updated.
    call = ("PUT", "/v1/provisioning/policies", tree)
    s.sync("notification policy", s.get("/v1/provisioning/policies") or {}, tree, call, call)


def _seconds(interval: str) -> int:
    """Return a Grafana interval (`10s`, `1m`, `4h`) in seconds, as the rule-group API wants."""
    units = {"s": 1, "m": 60, "h": 3600}
    return int(interval[:-1]) * units[interval[-1]]
