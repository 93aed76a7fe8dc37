"""Live pacing of `slawatch simulate`, and its (and `feed`'s) one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.connectors.kafka.admin import EventSender
from flows.core.timefmt import parse_instant
from flows.exceptions import ConnectorError
from flows.sim.business import load_business
from flows.sim.output import send_live
from flows.sim.simulator import HOUR, Simulator, Timeline

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
T0 = parse_instant("2026-11-23T10:00:00Z")
WALL0 = parse_instant("2026-12-02T04:00:00Z")


def test_live_sending_at_speed_60_plays_an_hour_in_a_minute() -> None:
    """At --speed 60 each event is sent when due, keyed by conversation, never from the future."""
    clock = [WALL0]
    sent: list[tuple[int, str, dict[str, object]]] = []

    def sleep(seconds: float) -> None:
        clock[0] += round(seconds * 1000)

    def send(key: str, value: bytes) -> None:
        sent.append((clock[0], key, orjson.loads(value)))

    sim = Simulator(load_business(ROOT / "examples" / "demo-business.yaml"), seed=4)
    timeline = Timeline(origin=T0, anchor=WALL0, speed=60)
    summary = send_live(
        sim.events(T0, T0 + HOUR), send, timeline, now_ms=lambda: clock[0], sleep=sleep
    )
    assert summary.events == len(sent) > 0
    assert clock[0] - WALL0 <= 60_000
    assert clock[0] - WALL0 > 50_000, "the hour is spread over the minute, not sent at once"
    for wall, key, body in sent:
        assert key == body["conversation_id"]
        assert parse_instant(body["occurred_at"]) <= wall
    assert [w for w, _, _ in sent] == sorted(w for w, _, _ in sent)


def _one_error_line(output: str) -> None:
    assert output.startswith("Error: "), output
    assert output.count("\n") == 1, output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", [["feed", "--from-stack"], ["simulate", "--from-stack"]])
def test_from_stack_with_no_stack_running_is_one_sentence(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`feed`/`simulate --from-stack` with no stack say: run `slawatch stack up` (no TypeError)."""
    monkeypatch.setenv("SLAWATCH_STACK_DIR", str(tmp_path / "no-stack"))
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    _one_error_line(result.output)
    assert "slawatch stack up" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", "yesterday"], "--start"),
        (["--output", "x.jsonl", "--bootstrap-servers", "127.0.0.1:9"], "not both"),
        (["--output", "/nonexistent-folder/x.jsonl", "--days", "0.01"], "cannot write"),
    ],
)
def test_bad_simulate_options_are_one_sentence(args: list[str], says: str) -> None:
    """Wrong simulate options end in one `Error:` line naming the problem."""
    result = CliRunner().invoke(main, ["simulate", "--seed", "1", *args])
    assert result.exit_code == 1
    _one_error_line(result.output)
    assert says in result.output


def test_an_invalid_business_file_is_one_sentence(tmp_path: Path) -> None:
    """A business file with a bad field is refused in one line that names the field."""
    path = tmp_path / "b.yaml"
    path.write_text("conversations_per_day: lots\n")
    result = CliRunner().invoke(main, ["simulate", "--business", str(path), "--seed", "1"])
    assert result.exit_code == 1
    _one_error_line(result.output)
    assert "conversations_per_day" in result.output


def test_an_unreachable_broker_is_one_sentence() -> None:
    """Sending to a Kafka that does not answer fails fast with what to do."""
    with (
        pytest.raises(ConnectorError, match="cannot reach Kafka at 127.0.0.1:9"),
        EventSender("127.0.0.1:9", "t", timeout_s=1.0),
    ):
        pass
