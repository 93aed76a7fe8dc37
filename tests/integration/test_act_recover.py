"""`slawatch act` executing service recoveries on the real Kafka, killed with SIGKILL mid-batch.

`act` runs as a subprocess against the WhatsApp Cloud API stand-in (`tests/whatsapp_standin.py`);
the stand-in kills it with `kill -9` the moment the second recovery of a batch arrives (the
request taken, its answer never sent). After a restart every customer has received their
recovery exactly once: the one cut off is not sent again but dead-lettered as uncertain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.devstack import Endpoints
from flows.ingest.app import running
from tests.integration.test_ingest_act import _dead_letters, _produce
from tests.whatsapp_standin import WhatsAppStandIn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = [f"ID.1349120865530274{n:04d}" for n in range(4)]


def _recovery(customer: str) -> bytes:
    """A SPEC §6 `recover` record for the `wa:` conversation of a business-scoped user."""
    return orjson.dumps(
        {
            "type": "action",
            "action": "recover",
            "trigger": "recovery",
            "send": "apology_voucher",
            "rule": "r1",
            "conversation_id": f"wa:1122:{customer}",
            "cycle": 1,
            "metric": "resolution",
            "seq": 1,
            "at": "2025-12-02T02:46:40.000Z",
            "policy_id": "hot-leads",
            "from_agent": "sdr.rina",
            "to_agent": None,
            "notify": None,
            "reason": "resolution breached 1h ago: recovery apology_voucher",
            "emitted_at": "2025-12-02T02:46:41.000Z",
        }
    )


def test_a_recovery_is_delivered_once_across_a_kill_9(
    stack: Endpoints, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Four recoveries (and a redelivered copy of the first): act is killed with SIGKILL as the
    second reaches the Cloud API; after the restart each customer got exactly one template,
    the cut-off one is one dead letter saying it may have been delivered, the copy a duplicate."""
    whatsapp = WhatsAppStandIn()
    processes: list[subprocess.Popen[bytes]] = []

    def kill_at_the_second(_body: dict[str, Any]) -> None:
        if len(whatsapp.sent) == 2:
            os.kill(processes[-1].pid, signal.SIGKILL)

    whatsapp.on_message = kill_at_the_second
    actions_topic = make_topic(1, prefix="actions")
    deadletter_topic = make_topic(1, prefix="deadletter")
    ledger = tmp_path / "ledger.jsonl"
    with running(whatsapp.app()) as whatsapp_url:
        env = {
            "SLAWATCH_INGEST_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
            "SLAWATCH_INGEST_ACTIONS_TOPIC": actions_topic,
            "SLAWATCH_INGEST_DEADLETTER_TOPIC": deadletter_topic,
            "SLAWATCH_INGEST_ACT_GROUP": f"act-{uuid.uuid4()}",
            "SLAWATCH_INGEST_ACT_LEDGER": str(ledger),
            "SLAWATCH_INGEST_WHATSAPP_GRAPH_URL": f"{whatsapp_url}/{whatsapp.version}",
            "SLAWATCH_INGEST_WHATSAPP_ACCESS_TOKEN": whatsapp.token,
            "SLAWATCH_INGEST_RECOVERIES": orjson.dumps(
                {
                    "apology_voucher": {
                        "via": "whatsapp_template",
                        "template": "sla_apology_voucher",
                        "language": "id",
                    }
                }
            ).decode(),
        }
        values = [_recovery(customer) for customer in CUSTOMERS] + [_recovery(CUSTOMERS[0])]
        _produce(stack.bootstrap_servers, actions_topic, values)

        def act(log: str) -> subprocess.Popen[bytes]:
            with (tmp_path / log).open("wb") as stderr:
                process = subprocess.Popen(
                    [str(ROOT / ".venv" / "bin" / "slawatch"), "act", "--exit-when-idle", "4"],
                    env=env,
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            processes.append(process)
            return process

        first = act("first.log")
        assert first.wait(timeout=120) == -signal.SIGKILL, (tmp_path / "first.log").read_text()
        assert len(whatsapp.sent) == 2
        states = [orjson.loads(line).get("state") for line in ledger.read_bytes().splitlines()]
        assert states[-1] == "pending"  # killed between the request and its answer

        whatsapp.on_message = None
        second = act("second.log")
        assert second.wait(timeout=120) == 0
        summary = (tmp_path / "second.log").read_text()

    recipients = sorted(body["recipient"] for _, body in whatsapp.sent)
    assert recipients == sorted(CUSTOMERS), summary
    assert {body["template"]["name"] for _, body in whatsapp.sent} == {"sla_apology_voucher"}
    assert "recover_done 2" in summary and "recover_uncertain 1" in summary, summary
    assert "duplicate 1" in summary, summary
    letters = _dead_letters(stack.bootstrap_servers, deadletter_topic)
    assert len(letters) == 1, letters
    assert "may have been delivered" in letters[0]["reason"]
    assert f"wa:1122:{CUSTOMERS[1]}" in letters[0]["raw"]
