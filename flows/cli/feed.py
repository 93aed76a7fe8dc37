"""`slawatch feed`: the small live demo feed (the simulator, `slawatch simulate`, supersedes it)."""

from __future__ import annotations

import click


@click.command()
@click.option("--from-stack", "from_stack", is_flag=True, help="Send to the local stack's Kafka.")
@click.option(
    "--bootstrap-servers",
    envvar="SLAWATCH_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka bootstrap servers [env SLAWATCH_BOOTSTRAP_SERVERS].",
)
@click.option(
    "--topic",
    envvar="SLAWATCH_INPUT_TOPICS",
    default="wa.events",
    show_default=True,
    help="Topic to send events to [env SLAWATCH_INPUT_TOPICS, first topic].",
)
@click.option("--rate", default=30.0, show_default=True, help="New conversations per minute.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--seed", default=None, type=int, help="Random seed, for a repeatable feed.")
def feed(
    *,
    from_stack: bool,
    bootstrap_servers: str,
    topic: str,
    rate: float,
    duration: float | None,
    seed: int | None,
) -> None:
    """Send a live simulated stream of WhatsApp conversation events to Kafka (the demo feed).

    Events are SPEC §1 JSON, keyed by conversation id, sent to the first of the given topics when
    their event time comes (event time is the wall clock). It runs until --duration seconds have
    passed or Ctrl-C, then flushes what is queued (up to 10 s); after --duration it prints how many
    events it sent. For realistic traffic with policies and reports, use `slawatch simulate`.
    """
    from confluent_kafka import Producer  # noqa: PLC0415 - keep --help free of librdkafka

    from flows.feed import FeedPlan, run_feed  # noqa: PLC0415

    if from_stack:
        from flows.devstack import running_endpoints  # noqa: PLC0415

        bootstrap_servers = running_endpoints(need_questdb=False).bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 50})
    topic = topic.split(",", maxsplit=1)[0]

    def send(key: str, value: bytes) -> None:
        """Queue one event for `topic`, keyed by its conversation id (serves delivery callbacks)."""
        producer.produce(topic, value=value, key=key)
        producer.poll(0)

    click.echo(f"Sending demo conversations to {topic} on {bootstrap_servers}", err=True)
    try:
        sent = run_feed(
            send, FeedPlan(conversations_per_minute=rate, seed=seed), duration_s=duration
        )
    except KeyboardInterrupt:
        sent = -1
    producer.flush(10)
    if sent >= 0:
        click.echo(f"Sent {sent} events", err=True)
