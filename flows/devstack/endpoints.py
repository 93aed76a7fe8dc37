"""Where a running local stack answers: the addresses on loopback and QuestDB's login."""

from __future__ import annotations

import socket
from dataclasses import dataclass

HOST = "127.0.0.1"
QUESTDB_USER = "admin"
QUESTDB_PASSWORD = "quest"  # noqa: S105 - QuestDB's documented default, loopback only
QUESTDB_DATABASE = "qdb"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a running stack answers; every address is on loopback.

    Attributes:
        kafka_port: Kafka's client listener (`bootstrap.servers`).
        kafka_controller_port: Kafka's KRaft controller listener.
        questdb_http_port: QuestDB's HTTP port (web console, `/exec`, ILP over HTTP).
        questdb_pg_port: QuestDB's PostgreSQL wire port (what reports read).
        questdb_ilp_tcp_port: QuestDB's ILP-over-TCP port (slawatch itself writes over HTTP).
        questdb_min_http_port: QuestDB's health/metrics HTTP port.
        host: The loopback address every listener binds to.
    """

    kafka_port: int
    kafka_controller_port: int
    questdb_http_port: int
    questdb_pg_port: int
    questdb_ilp_tcp_port: int
    questdb_min_http_port: int
    host: str = HOST

    @property
    def bootstrap_servers(self) -> str:
        """Kafka `bootstrap.servers` value, `host:port`."""
        return f"{self.host}:{self.kafka_port}"

    @property
    def questdb_http(self) -> str:
        """QuestDB's HTTP address, `host:port` (web console, `/exec`, ILP over HTTP)."""
        return f"{self.host}:{self.questdb_http_port}"

    @property
    def questdb_ilp_conf(self) -> str:
        """Configuration string for `questdb.Sender.from_conf` (ILP over HTTP)."""
        return f"http::addr={self.questdb_http};"

    @property
    def questdb_pg_conninfo(self) -> str:
        """Return the libpq connection string of QuestDB's PostgreSQL wire port."""
        return (
            f"host={self.host} port={self.questdb_pg_port} user={QUESTDB_USER} "
            f"password={QUESTDB_PASSWORD} dbname={QUESTDB_DATABASE} sslmode=disable"
        )

    def ports(self) -> tuple[int, ...]:
        """Return every port the stack listens on."""
        return (
            self.kafka_port,
            self.kafka_controller_port,
            self.questdb_http_port,
            self.questdb_pg_port,
            self.questdb_ilp_tcp_port,
            self.questdb_min_http_port,
        )

    @classmethod
    def allocate(cls) -> Endpoints:
        """Pick six distinct free loopback ports.

        The ports were free a moment ago; another process may still take one before the servers bind
        it, in which case the start-up fails and `up` can be run again.
        """
        kafka, controller, http, pg, ilp_tcp, min_http = _free_ports(6)
        return cls(kafka, controller, http, pg, ilp_tcp, min_http)


def _free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback ports that were free a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_free(port: int) -> bool:
    """Return whether `port` can be bound on loopback now (TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The servers bind with SO_REUSEADDR, so a port in TIME_WAIT is free for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True
