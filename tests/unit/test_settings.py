"""Settings of the live monitor: environment, durations, lists, and the `slawatch run` options."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.monitor.flow import questdb_sink_for
from flows.settings import Settings, parse_settings_duration, settings_table

pytestmark = pytest.mark.unit


def test_environment_variables_configure_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SLAWATCH_*` variables set topics, durations, shard count and Kafka extras."""
    monkeypatch.setenv("SLAWATCH_INPUT_TOPICS", "wa.events, wa.events.eu")
    monkeypatch.setenv("SLAWATCH_LATENESS", "1m30s")
    monkeypatch.setenv("SLAWATCH_IDLE_TICK", "250ms")
    monkeypatch.setenv("SLAWATCH_SHARDS", "128")
    monkeypatch.setenv("SLAWATCH_KAFKA_CONFIG", '{"security.protocol": "SSL"}')
    monkeypatch.setenv("SLAWATCH_QUESTDB_PASSWORD", "s3cret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.input_topics == ["wa.events", "wa.events.eu"]
    assert settings.lateness_ms == 90_000
    assert settings.idle_tick_ms == 250
    assert settings.shards == 128
    assert settings.kafka_common()["security.protocol"] == "SSL"
    assert "s3cret" not in repr(settings)


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `.env` file in the working directory configures the monitor too."""
    (tmp_path / ".env").write_text("SLAWATCH_EVENTS_TOPIC=custom.events\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().events_topic == "custom.events"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5s", timedelta(seconds=5)),
        ("200ms", timedelta(milliseconds=200)),
        ("1h30m", timedelta(minutes=90)),
        ("2.5", timedelta(seconds=2.5)),
        (0, timedelta(0)),
    ],
)
def test_durations_accept_units_and_seconds(text: object, expected: timedelta) -> None:
    """Durations are written with units (h, m, s, ms) or as seconds."""
    assert parse_settings_duration(text) == expected


@pytest.mark.parametrize("text", ["5 minutes", "", "-3", "1d"])
def test_bad_durations_are_refused(text: str) -> None:
    """A duration that is not understood is an error that quotes it."""
    with pytest.raises(ValueError, match="duration"):
        parse_settings_duration(text)


def test_snapshot_interval_must_be_whole_seconds() -> None:
    """Bytewax takes whole seconds for snapshots, so fractions are refused up front."""
    with pytest.raises(ValueError, match="whole seconds"):
        Settings(snapshot_interval="1500ms")


def test_settings_table_lists_every_variable() -> None:
    """The generated documentation table has one row per setting, with secrets hidden."""
    table = settings_table()
    for name in Settings.model_fields:
        assert f"`SLAWATCH_{name.upper()}`" in table
    assert "quest" not in table.replace("questdb", "").replace("QUESTDB", "")


def test_run_help_lists_every_environment_variable() -> None:
    """`slawatch run --help` shows each setting's option and its environment variable."""
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in result.output
        assert f"SLAWATCH_{name.upper()}" in result.output


def test_run_refuses_invalid_settings_without_traceback() -> None:
    """A bad option value stops `slawatch run` with one error line naming the setting."""
    result = CliRunner().invoke(main, ["run", "--shards", "zero"])
    assert result.exit_code == 1
    assert "invalid settings: shards" in result.output
    assert "Traceback" not in result.output


def test_run_refuses_half_a_cluster() -> None:
    """A process id without the cluster's addresses is refused before anything starts."""
    result = CliRunner().invoke(
        main, ["run", "-i", "1", "--questdb-http", "", "--bootstrap-servers", "127.0.0.1:1"]
    )
    assert result.exit_code == 1
    assert "--process-id and --addresses" in result.output


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--questdb-conf", "tcp::addr=127.0.0.1:9009;", "invalid QuestDB configuration"),
        ("--questdb-conf", "http::addr=127.0.0.1:9000;auto_flush_rows=x;", "QuestDB"),
        ("--table-prefix", "sla-", "invalid QuestDB configuration"),
    ],
)
def test_run_refuses_a_bad_questdb_configuration_before_starting(
    tmp_path: Path, option: str, value: str, says: str
) -> None:
    """A QuestDB configuration no worker could use stops `slawatch run` with one line."""
    policies = tmp_path / "p.yaml"
    policies.write_text("policies:\n  - id: d\n    targets: {first_response: {within: 5m}}\n")
    result = CliRunner().invoke(
        main,
        ["run", "--policies", str(policies), option, value,
         "--bootstrap-servers", "127.0.0.1:1"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("window", "seconds"), [(None, 1.0), ("0", 0.0), ("5s", 5.0)])
def test_questdb_batch_window_setting_reaches_each_workers_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: str | None, seconds: float
) -> None:
    """`SLAWATCH_QUESTDB_BATCH_WINDOW` (default 1 s) is the window of every worker's writer."""
    if window is not None:
        monkeypatch.setenv("SLAWATCH_QUESTDB_BATCH_WINDOW", window)
    settings = Settings(questdb_spill_dir=tmp_path)
    # Nothing listens on port 1: the writer is built all the same and says QuestDB is down.
    sink = questdb_sink_for(settings, "http::addr=127.0.0.1:1;retry_timeout=0;")
    partition = sink.build("questdb_output", 0, 1)
    try:
        assert partition.writer.batch_window_s == seconds  # type: ignore[attr-defined]
    finally:
        partition.close()
