"""Kafka for slawatch.

The monitor's fetch source (`source`), its record sink (`sink`), and topic administration and
plain producing (`admin`).
"""

from flows.connectors.kafka.sink import KafkaRecordSink, OutputTopics, dead_letter_for_error
from flows.connectors.kafka.source import Fetch, KafkaFetchSource, Message, partition_name

__all__ = [
    "Fetch",
    "KafkaFetchSource",
    "KafkaRecordSink",
    "Message",
    "OutputTopics",
    "dead_letter_for_error",
    "partition_name",
]
