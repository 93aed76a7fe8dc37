"""Load run of the webhook receiver (`slawatch ingest`) on loopback: not a timed test.

Usage: python bench/ingest_load.py [--rate 500] [--seconds 30] [--partitions 4]
       [--stack-dir DIR] [--baseline-seconds 30]

1. A Kafka stack: a private one in a temp folder (stopped at the end), or the one in
   `--stack-dir` (started if needed, left as found). A fresh topic per run.
2. `slawatch ingest` runs as a child process on 127.0.0.1 with signatures enforced (a Chatwoot
   secret and a Meta app secret), producing to that topic (idempotent, `acks=all`).
3. After one warm-up request (the producer id is fetched first), open-loop load: request i is
   due at `start + i / rate`, whatever the answers, and goes out on the first free one of
   `--connections` HTTP/1.1 keep-alive connections (a minimal asyncio client: httpx's pool is
   itself the bottleneck at this rate on 2 cores); latency counts from the due instant.
   Bodies are prepared and signed before the clock starts: 4 of
   5 are Chatwoot `message_created` payloads (unique message ids over 1,000 conversations), 1 of
   5 a WhatsApp Cloud API text message (unique wamids). Each answer comes only after Kafka
   acknowledged the request's events, so request → answer is the request → Kafka-ack latency.
4. Nothing lost: the topic is read back and its event ids compared with the ids the mapping
   gives for the bodies sent.
5. Baseline, same run, same machine: a raw confluent-kafka producer (same settings) produces the
   same event values at the same rate; produce() → delivery callback latency. The ratio
   receiver / baseline says what HTTP, signature checks, mapping and the event loop add.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flows.devstack import Stack
from flows.ingest.app import free_port
from flows.ingest.chatwoot import map_chatwoot
from flows.ingest.settings import IngestSettings
from flows.ingest.whatsapp import map_whatsapp

ROOT = Path(__file__).resolve().parents[1]
CW_SECRET = "bench-chatwoot-secret"
META_SECRET = "bench-meta-secret"
PSEUDONYM_KEY = "bench-pseudonyms"
TEXT = "Halo kak, saya mau tanya soal paket langganan bulanan dan cara pembayarannya ya. " * 4


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (
        f"{platform.node()} | {model} | {os.cpu_count()} CPUs | load {load[0]:.2f} {load[1]:.2f} | "
        f"Python {platform.python_version()} | librdkafka {confluent_kafka.libversion()[0]}"
    )


def chatwoot_body(n: int, t0: int) -> bytes:
    conversation = 1 + n % 1000
    return orjson.dumps(
        {
            "event": "message_created",
            "account": {"id": 1, "name": "Bench"},
            "content": TEXT,
            "content_type": "text",
            "content_attributes": {},
            "additional_attributes": {},
            "conversation": {
                "id": conversation,
                "status": "open",
                "inbox_id": 2,
                "meta": {"sender": {"id": 9000 + conversation, "name": "Pelanggan"}},
                "custom_attributes": {},
                "labels": [],
                "created_at": t0,
                "timestamp": t0,
            },
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + n // 100)),
            "id": 1_000_000 + n,
            "inbox": {"id": 2, "name": "WhatsApp"},
            "message_type": "incoming" if n % 2 else "outgoing",
            "private": False,
            "sender": (
                {"id": 9000 + conversation, "name": "Pelanggan", "phone_number": "+628123456789"}
                if n % 2
                else {"id": 5, "name": "Agen", "type": "user"}
            ),
            "source_id": f"wamid.bench{n}",
        }
    )


def whatsapp_body(n: int, t0: int) -> bytes:
    phone = f"62812{n % 1000:07d}"
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1234567890",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "6281100000",
                                    "phone_number_id": "1122334455667",
                                },
                                "contacts": [{"profile": {"name": "Pelanggan"}, "wa_id": phone}],
                                "messages": [
                                    {
                                        "from": phone,
                                        "id": f"wamid.bench.{n}",
                                        "timestamp": str(t0 + n // 100),
                                        "type": "text",
                                        "text": {"body": TEXT},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )


def prepare(count: int) -> tuple[list[tuple[str, bytes, dict[str, str]]], set[str], list[Any]]:
    """Return the signed requests, the event ids they must yield, and those events."""
    t0 = int(time.time()) - 3600
    stamp = str(int(time.time()))
    settings = IngestSettings(pseudonym_key=PSEUDONYM_KEY)  # type: ignore[arg-type]
    requests: list[tuple[str, bytes, dict[str, str]]] = []
    ids: set[str] = set()
    events: list[Any] = []
    for n in range(count):
        if n % 5 == 4:
            body = whatsapp_body(n, t0)
            sig = hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {"content-type": "application/json", "x-hub-signature-256": f"sha256={sig}"}
            requests.append(("/webhooks/whatsapp", body, headers))
            mapped = map_whatsapp(body, settings.whatsapp_options())
        else:
            body = chatwoot_body(n, t0)
            sig = hmac.new(CW_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
            headers = {
                "content-type": "application/json",
                "x-chatwoot-timestamp": stamp,
                "x-chatwoot-signature": f"sha256={sig.hexdigest()}",
            }
            requests.append(("/webhooks/chatwoot/1", body, headers))
            mapped = map_chatwoot(body, "1", settings.chatwoot_options())
        assert not mapped.unmappable, mapped.unmappable
        ids.update(e["event_id"] for e in mapped.events)
        events.extend(mapped.events)
    return requests, ids, events


def quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return at(0.5), at(0.99), ordered[-1] * 1000


async def load(
    port: int, requests: list[tuple[str, bytes, dict[str, str]]], rate: float, connections: int
) -> tuple[list[float], list[int], float]:
    """Open-loop HTTP/1.1 keep-alive load on `connections` sockets; latency counts from the due
    instant, so time spent waiting for a free connection is included."""
    latencies: list[float] = [0.0] * len(requests)
    statuses: list[int] = [0] * len(requests)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    wire = [
        (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        + body
        for path, body, headers in requests
    ]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await queue.get()) is not None:
                i, due = item
                writer.write(wire[i])
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies[i] = time.perf_counter() - due
                statuses[i] = int(status_line.split()[1])
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(len(requests)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, statuses, time.perf_counter() - start


def read_back(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    quiet = None
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    values.append(msg.value())
            if len(values) >= expected:
                quiet = quiet or time.monotonic() + 2
                if time.monotonic() > quiet:
                    break
    finally:
        consumer.close()
    return values


def baseline(bootstrap: str, topic: str, events: list[Any], rate: float) -> list[float]:
    """Raw producer acks on loopback: the same values at the same rate, produce → callback."""
    producer = Producer(IngestSettings(bootstrap_servers=bootstrap).producer_config())
    latencies: list[float] = []
    running = True

    def poll() -> None:
        while running:
            producer.poll(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    producer.produce(topic, value=b"{}", key=b"warm-up")  # the producer id is fetched first
    producer.flush(30)
    start = time.perf_counter()
    for i, event in enumerate(events):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

        def delivered(err: Any, _msg: Any, due: float = due) -> None:
            if err is None:
                latencies.append(time.perf_counter() - due)

        while True:
            try:
                producer.produce(
                    topic,
                    value=orjson.dumps(event),
                    key=event["conversation_id"],
                    on_delivery=delivered,
                )
                break
            except BufferError:
                time.sleep(0.001)
    producer.flush(30)
    running = False
    thread.join()
    return latencies


def histogram(text: str, name: str) -> str:
    """Return p50/p99 bucket upper bounds of a Prometheus histogram in the text format."""
    buckets: list[tuple[float, int]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if bound == "+Inf" else float(bound), int(line.split()[-1]))
            )
    if not buckets or buckets[-1][1] == 0:
        return "no observations"
    total = buckets[-1][1]

    def bound_of(q: float) -> str:
        for bound, count in buckets:
            if count >= q * total:
                return f"<= {bound * 1000:g} ms"
        return "?"

    return f"p50 {bound_of(0.5)}, p99 {bound_of(0.99)} over {total} requests"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline-seconds", type=float, default=30.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--stack-dir", type=Path, default=None)
    args = parser.parse_args()

    count = int(args.rate * args.seconds)
    print(f"machine: {machine()}")
    print(
        f"inputs: {args.rate:.0f} requests/s for {args.seconds:.0f} s = {count} requests; "
        f"4/5 Chatwoot message_created, 1/5 WhatsApp text; signatures enforced; "
        f"topic with {args.partitions} partitions; idempotent producer, acks=all"
    )
    requests, expected_ids, events = prepare(count)
    sizes = sorted(len(body) for _, body, _ in requests)
    print(f"bodies: median {sizes[len(sizes) // 2]} bytes; {len(expected_ids)} events expected")

    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    own_stack = args.stack_dir is None
    stack = Stack(workdir / "stack" if own_stack else args.stack_dir)
    endpoints = stack.up()
    receiver: subprocess.Popen[bytes] | None = None
    try:
        bootstrap = endpoints.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topic = f"bench-ingest-{uuid.uuid4()}"
        base_topic = f"bench-baseline-{uuid.uuid4()}"
        for name in (topic, base_topic):
            admin.create_topics([NewTopic(name, args.partitions, 1)])[name].result()
        port = free_port()
        env = {
            **os.environ,
            "SLAWATCH_INGEST_BOOTSTRAP_SERVERS": bootstrap,
            "SLAWATCH_INGEST_TOPIC": topic,
            "SLAWATCH_INGEST_PORT": str(port),
            "SLAWATCH_INGEST_CHATWOOT_SECRETS": orjson.dumps({"1": CW_SECRET}).decode(),
            "SLAWATCH_INGEST_WHATSAPP_APP_SECRET": META_SECRET,
            "SLAWATCH_INGEST_PSEUDONYM_KEY": PSEUDONYM_KEY,
        }
        receiver = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "slawatch"), "ingest"], env=env, cwd=workdir
        )
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        warm = whatsapp_body(10**9, int(time.time()))
        sig = hmac.new(META_SECRET.encode(), warm, hashlib.sha256).hexdigest()
        httpx.post(
            f"{base_url}/webhooks/whatsapp",
            content=warm,
            headers={"x-hub-signature-256": f"sha256={sig}"},
            timeout=30,
        ).raise_for_status()
        cpu0 = cpu_seconds(receiver.pid)
        latencies, statuses, elapsed = asyncio.run(
            load(port, requests, args.rate, args.connections)
        )
        cpu = cpu_seconds(receiver.pid) - cpu0
        produce = histogram(
            httpx.get(f"{base_url}/metrics").text, "slawatch_ingest_produce_seconds"
        )
        values = read_back(bootstrap, topic, len(events) + 1)
        got_ids = {orjson.loads(v)["event_id"] for v in values} - {
            "wa:1122334455667:in:wamid.bench.1000000000"
        }
        lost = expected_ids - got_ids
        ok = sum(1 for s in statuses if s == 200)
        p50, p99, worst = quantiles(latencies)
        print(
            f"receiver: {ok}/{count} answered 200 in {elapsed:.1f} s "
            f"({count / elapsed:.0f} requests/s offered+answered); receiver CPU {cpu:.1f} s "
            f"({cpu / elapsed * 100:.0f}% of one core)"
        )
        print(
            f"receiver: request due -> answer after Kafka ack: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {worst:.1f} ms"
        )
        print(f"receiver's own produce -> ack histogram (bucket bounds): {produce}")
        print(
            f"kafka: {len(values)} messages read back, {len(got_ids)} distinct event ids, "
            f"{len(lost)} lost"
        )

        base_count = min(len(events), int(args.rate * args.baseline_seconds))
        base = baseline(bootstrap, base_topic, events[:base_count], args.rate)
        b50, b99, bworst = quantiles(base)
        print(
            f"baseline: raw producer acks, {len(base)}/{base_count} at {args.rate:.0f}/s: "
            f"p50 {b50:.1f} ms, p99 {b99:.1f} ms, max {bworst:.1f} ms"
        )
        print(f"ratio receiver/baseline: p50 {p50 / b50:.1f}x, p99 {p99 / b99:.1f}x")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if lost or ok != count:
            sys.exit(1)
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(30)
        if own_stack:
            stack.down()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
