"""Configuration of the live monitor (`slawatch run`), read from the environment and `.env`.

Every field can be set as an environment variable `SLAWATCH_<FIELD>` (upper case), in a `.env`
file in the working directory, or with the matching `slawatch run` option, which wins. Durations
are written `200ms`, `5s`, `2m`, `1h` or as a plain number of seconds; lists as comma-separated
text (`wa.events,wa.events.eu`); `kafka_config` as a JSON object.

Example:
    >>> settings = Settings(bootstrap_servers="kafka-1:9092", shards=128)
    >>> settings.lateness_ms
    5000
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flows.connectors.questdb.views import check_timezone

ENV_PREFIX: Final = "SLAWATCH_"

_DURATION: Final = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m(?!s))?(?:([0-9]+)s)?(?:([0-9]+)ms)?")
_UNIT_MS: Final = (3_600_000, 60_000, 1_000, 1)


def parse_settings_duration(value: object) -> timedelta:
    """Read a duration setting: `timedelta`, seconds as a number, or text such as `1m30s`, `200ms`.

    Args:
        value: the raw value from the environment, a `.env` file, an option or Python.

    Returns:
        The duration.

    Raises:
        ValueError: the text does not follow the grammar, or the duration is negative.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = timedelta(seconds=float(text))
        except ValueError:
            match = _DURATION.fullmatch(text)
            if not text or match is None:
                msg = f"invalid duration {value!r}: write e.g. '200ms', '5s', '2m', '1h' or '1m30s'"
                raise ValueError(msg) from None
            total = sum(
                int(part) * unit
                for part, unit in zip(match.groups(), _UNIT_MS, strict=True)
                if part is not None
            )
            result = timedelta(milliseconds=total)
    else:
        msg = f"invalid duration {value!r}: expected text such as '5s' or a number of seconds"
        raise ValueError(msg)
    if result < timedelta(0):
        msg = f"invalid duration {value!r}: must not be negative"
        raise ValueError(msg)
    return result


Duration = Annotated[timedelta, BeforeValidator(parse_settings_duration)]


def _split_list(value: object) -> object:
    """Split comma-separated text into its non-empty, stripped parts; pass lists through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


TopicList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


def _ms(delta: timedelta) -> int:
    """Return a `timedelta` as whole milliseconds (rounded)."""
    return round(delta.total_seconds() * 1000)


class Settings(BaseSettings):
    """Everything `slawatch run` needs to know; see the module docstring for the sources.

    Precedence, highest first: keyword arguments (the CLI's options), `SLAWATCH_*` variables,
    `.env`, the defaults. Unknown `SLAWATCH_*` variables are ignored. Durations are held as
    `timedelta`; the `*_ms` properties give the milliseconds the monitor works in. Secrets
    (`questdb_conf`) are `SecretStr` and never printed.

    Raises:
        pydantic.ValidationError: a value does not parse (the CLI turns it into one line naming each
            field).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # -- Kafka ---------------------------------------------------------------------------------
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, `host:port[,host:port...]`.",
    )
    input_topics: TopicList = Field(
        default=["wa.events"],
        description="Topics holding the input events (SPEC §1), comma-separated.",
        min_length=1,
    )
    events_topic: str = Field(
        default="sla.events", description="Topic receiving SLA records (`type: sla`)."
    )
    actions_topic: str = Field(
        default="sla.actions", description="Topic receiving action records (`type: action`)."
    )
    deadletter_topic: str = Field(
        default="sla.deadletter",
        description="Topic receiving dead letters: inputs that could not be used, with a reason.",
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra librdkafka properties for every consumer and producer, as a JSON object "
            '(e.g. `{"security.protocol": "SASL_SSL"}`).'
        ),
    )
    fetch_max_messages: int = Field(
        default=5000,
        ge=1,
        description="Most messages read from one Kafka partition in one fetch (one flow item).",
    )

    # -- SLA logic -----------------------------------------------------------------------------
    policies: Path = Field(
        default=Path("examples/policies.yaml"), description="Policy file (SPEC §2-§3)."
    )
    shards: int = Field(
        default=64,
        ge=1,
        description=(
            "Conversations are grouped into this many shards (`crc32(conversation_id) % shards`); "
            "keep it at least 4x the total workers. Changing it needs a fresh recovery store."
        ),
    )
    lateness: Duration = Field(
        default=timedelta(seconds=5),
        description="Allowed lateness: the watermark stays this far behind the event time.",
    )
    idle_tick: Duration = Field(
        default=timedelta(milliseconds=200),
        description=(
            "How often an idle input partition tells every shard it is caught up, so event time "
            "follows the wall clock on a quiet stream."
        ),
    )
    horizon: Duration = Field(
        default=timedelta(hours=24),
        description=(
            "Correction horizon: an event up to this far behind the watermark still corrects "
            "outcomes; older ones become dead letters naming it."
        ),
    )
    max_future: Duration = Field(
        default=timedelta(minutes=5),
        description="Events whose `occurred_at` is further ahead of the wall clock are refused.",
    )
    kafka_wait: Duration | None = Field(
        default=None,
        description=(
            "At start-up, how long to wait for an unreachable Kafka (saying so in the log) "
            "before giving up; unset waits until it answers."
        ),
    )
    max_event_bytes: int = Field(
        default=1_048_576, ge=1, description="Events larger than this (bytes) are refused."
    )

    # -- QuestDB -------------------------------------------------------------------------------
    questdb_http: str = Field(
        default="127.0.0.1:9000",
        description="QuestDB HTTP address `host:port` (ILP over HTTP); empty disables QuestDB.",
    )
    questdb_conf: SecretStr | None = Field(
        default=None,
        description=(
            "Full `questdb` client configuration (e.g. `https::addr=...;token=...;`) when QuestDB "
            "needs authentication or TLS; overrides `questdb_http`."
        ),
    )
    questdb_pg_port: int = Field(
        default=8812, description="QuestDB PostgreSQL wire port (for readers and `--from-stack`)."
    )
    questdb_user: str = Field(default="admin", description="QuestDB user.")
    questdb_password: SecretStr = Field(default=SecretStr("quest"), description="QuestDB password.")
    table_prefix: str = Field(
        default="sla_", description="Prefix of the QuestDB table names (`<prefix>events`, ...)."
    )
    report_timezone: str = Field(
        default="Asia/Jakarta",
        description="IANA zone of the team's calendar: the local days of the dashboards' views.",
    )
    questdb_batch_window: Duration = Field(
        default=timedelta(seconds=1),
        description=(
            "The QuestDB writer holds what arrives within this long of its last send and sends "
            "it as one commit (QuestDB's cost is per commit); rows reach QuestDB up to this much "
            "later. 0 sends every batch at once."
        ),
    )
    questdb_spill_dir: Path | None = Field(
        default=None,
        description=(
            "Folder where QuestDB rows wait on disk while QuestDB is down (a `worker-<i>` folder "
            "per worker; what a crash leaves there is sent first at the next start). Unset: "
            "`<recovery_dir>/questdb-spill` with recovery, else a temporary folder per run."
        ),
    )

    # -- Runtime -------------------------------------------------------------------------------
    flow_name: str = Field(
        default="slawatch",
        description="Dataflow name; part of the recovery state, so keep it stable.",
    )
    recovery_dir: Path | None = Field(
        default=None,
        description=(
            "Bytewax recovery store folder; unset runs without recovery (every start re-reads "
            "the topics from the beginning)."
        ),
    )
    recovery_partitions: int = Field(
        default=1,
        ge=1,
        description="Number of recovery store partitions created when the folder is new.",
    )
    snapshot_interval: Duration = Field(
        default=timedelta(seconds=30),
        description=(
            "How often state and offsets are snapshotted (whole seconds, at least 1 s). Each "
            "snapshot pickles every changed shard whole, so shorter intervals cost throughput; "
            "after a crash, input since the last snapshot is read again (stored rows stay unique)."
        ),
    )
    backup_interval: Duration = Field(
        default=timedelta(0),
        description="How long older snapshots are kept, for backups of the store (whole seconds).",
    )
    heartbeat_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="How often each worker reports its watermark, lag and counts.",
    )
    health_address: str = Field(
        default="127.0.0.1:9108",
        description=(
            "`host:port` where `slawatch run` serves `/healthz`, `/readyz` and `/metrics` "
            "(`0.0.0.0:9108` in a container); empty serves none. A default address in use is "
            "logged and skipped; one set explicitly stops the start-up."
        ),
    )
    ready_max_lag: Duration = Field(
        default=timedelta(seconds=60),
        description=(
            "`/readyz` answers 503 while a worker's watermark is further than this behind the "
            "wall clock (catching up, or stuck), or its last heartbeat is older than 3 heartbeat "
            "intervals (at least 15 s)."
        ),
    )

    @field_validator("input_topics")
    @classmethod
    def _topics_not_empty(cls, value: list[str]) -> list[str]:
        """Refuse an empty input topic list."""
        if not value:
            msg = "at least one input topic is needed"
            raise ValueError(msg)
        return value

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("snapshot_interval", "backup_interval")
    @classmethod
    def _whole_seconds(cls, value: timedelta) -> timedelta:
        """Refuse snapshot and backup intervals that are not whole seconds (as Bytewax needs)."""
        if value.total_seconds() != int(value.total_seconds()):
            msg = f"must be whole seconds (Bytewax's -s/-b take seconds), not {value}"
            raise ValueError(msg)
        return value

    @property
    def lateness_ms(self) -> int:
        """Allowed lateness in milliseconds."""
        return _ms(self.lateness)

    @property
    def idle_tick_ms(self) -> int:
        """Idle tick interval in milliseconds (at least 1)."""
        return max(1, _ms(self.idle_tick))

    @property
    def horizon_ms(self) -> int:
        """Correction horizon in milliseconds (at least 1)."""
        return max(1, _ms(self.horizon))

    @property
    def max_future_ms(self) -> int:
        """Largest accepted lead of `occurred_at` over the wall clock, in milliseconds."""
        return _ms(self.max_future)

    @property
    def heartbeat_interval_ms(self) -> int:
        """Heartbeat interval in milliseconds (at least 1)."""
        return max(1, _ms(self.heartbeat_interval))

    @property
    def ready_max_lag_ms(self) -> int:
        """Largest watermark delay `/readyz` accepts, in milliseconds."""
        return _ms(self.ready_max_lag)

    @property
    def questdb_spill_path(self) -> Path | None:
        """The spill folder of the QuestDB sink; None means a temporary folder per writer."""
        if self.questdb_spill_dir is not None:
            return self.questdb_spill_dir
        if self.recovery_dir is not None:
            return self.recovery_dir / "questdb-spill"
        return None

    def kafka_common(self) -> dict[str, Any]:
        """Return the librdkafka properties shared by consumers and producers.

        `kafka_config` (e.g. SASL credentials) is applied over `bootstrap.servers`, so it may also
        replace it.
        """
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka_config}


def settings_table() -> str:
    """Return the Markdown table of every setting: variable, default and description.

    Used to generate the configuration section of the README and docs/OPERATIONS.md.
    """
    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default: object = (
            field.default_factory()  # type: ignore[call-arg]
            if field.default_factory is not None
            else field.default
        )
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{_show(default)}` | {field.description} |")
    return "\n".join(rows)


def _show(value: object) -> str:
    """Return a default as the settings table shows it (`5s`, `200ms`, `unset`, `********`)."""
    if isinstance(value, timedelta):
        ms = _ms(value)
        if ms % 1000:
            return f"{ms}ms"
        return f"{ms // 1000}s"
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if value is None:
        return "unset"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)
