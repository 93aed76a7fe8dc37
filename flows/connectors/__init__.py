"""Connectors of the live monitor: Kafka in and out (`kafka`), QuestDB out (`questdb`)."""
