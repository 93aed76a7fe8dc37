"""The local real stack for development, tests and the demo: Kafka and QuestDB on loopback.

`Stack` starts Apache Kafka (KRaft, one node) and QuestDB from Maven Central jars with the
machine's Java, on free ports of 127.0.0.1, and stops them again; `Endpoints` says where they
answer. The service templates live in the checkout's `infra/` and ship with the package.
"""

from flows.devstack.endpoints import Endpoints
from flows.devstack.jars import KAFKA_VERSION, QUESTDB_VERSION, Jars, fetch_jars
from flows.devstack.stack import (
    Stack,
    StackStatus,
    default_cache_dir,
    running_endpoints,
    stack_overrides,
)

__all__ = [
    "KAFKA_VERSION",
    "QUESTDB_VERSION",
    "Endpoints",
    "Jars",
    "Stack",
    "StackStatus",
    "default_cache_dir",
    "fetch_jars",
    "running_endpoints",
    "stack_overrides",
]
