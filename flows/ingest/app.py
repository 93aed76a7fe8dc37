"""The webhook receiver (`slawatch ingest`): a Starlette app served by uvicorn.

Endpoints:

* `POST /webhooks/chatwoot/{account}` and `POST /webhooks/chatwoot/{account}/{token}` (the
  path token is for Chatwoot versions that do not sign);
* `GET /webhooks/whatsapp` (Meta's verification handshake) and `POST /webhooks/whatsapp`;
* `GET /healthz` and `GET /metrics` (Prometheus text format).

A POST is read up to `max_body_bytes` (413 above), its signature checked on the raw bytes
(`off | log | enforce` per endpoint; 401 when enforced), mapped, and its events produced to Kafka
keyed by `conversation_id` with an idempotent producer (`acks=all`). The answer (200) is sent only
once Kafka has acknowledged every event and dead letter of the request: the receiver keeps no
queue of its own, so an answered request is durable, and a request Kafka could not take is
answered 503 so that the platform retries (Meta does, for days; Chatwoot does not, which is what
`slawatch reconcile chatwoot` is for). Message content never leaves the receiver: only the mapped
events (ids, instants, roles) are produced, and dead letters carry the body redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from flows.core.records import DeadLetter, to_json_dict
from flows.core.redact import redact_raw
from flows.ingest.chatwoot import map_chatwoot
from flows.ingest.mapping import Mapped
from flows.ingest.settings import IngestSettings
from flows.ingest.signatures import check_chatwoot, check_meta, meta_handshake
from flows.ingest.whatsapp import map_whatsapp

log = logging.getLogger("slawatch.ingest")

#: Upper bounds (seconds) of the latency histogram buckets.
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ProduceFailed(Exception):
    """Kafka did not acknowledge a message in time; the request is answered 503."""


class EventSink(Protocol):
    """Where the receiver's messages go: `(topic, key, value)`, acknowledged before returning.

    The receiver answers a webhook only after `send` returns, so an implementation must not
    return before the messages are durable; tests use one that records what it was given.
    """

    async def send(self, messages: list[tuple[str, str, bytes]]) -> None:
        """Produce the messages and wait for every acknowledgement.

        Raises:
            ProduceFailed: a message was refused or not acknowledged in time.
        """

    def close(self) -> None:
        """Flush and release the sink."""


class KafkaSink:
    """An idempotent confluent-kafka producer (`acks=all`) whose acks resolve asyncio futures.

    A background thread polls the producer; delivery callbacks hand the result back to the
    event loop that produced the message.

    Args:
        config: librdkafka properties (`IngestSettings.producer_config`: bootstrap servers,
            idempotence, `acks=all`).
        timeout_s: how long one `send` waits for all its acknowledgements (s).
    """

    def __init__(self, config: dict[str, Any], *, timeout_s: float = 10.0) -> None:
        from confluent_kafka import Producer  # noqa: PLC0415 - keep `ingest map` free of it

        self._producer = Producer(config)
        self._timeout_s = timeout_s
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="ingest-kafka-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        """Serve delivery callbacks until `close`, waking every 50 ms."""
        while self._running:
            self._producer.poll(0.05)

    async def send(self, messages: list[tuple[str, str, bytes]]) -> None:
        """Produce `(topic, key, value)` messages; return once Kafka acknowledged them all.

        Messages are produced in order, so the events of one conversation (one key) keep
        their order on the topic. A full producer queue makes the call wait without blocking
        the event loop. After a timeout, messages still queued may yet be delivered: the
        platform's retry then repeats them, which the event ids make harmless.

        Args:
            messages: `(topic, key, value)` triples; an empty list returns at once.

        Raises:
            ProduceFailed: a delivery failed, or not every ack came within the timeout.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for topic, key, value in messages:
            future: asyncio.Future[None] = loop.create_future()

            def delivered(err: Any, _msg: Any, future: asyncio.Future[None] = future) -> None:
                loop.call_soon_threadsafe(_settle, future, err)

            while True:
                try:
                    self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    await asyncio.sleep(0.005)
            futures.append(future)
        if not futures:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        except TimeoutError:
            msg = f"Kafka did not acknowledge within {self._timeout_s} s"
            raise ProduceFailed(msg) from None

    def close(self) -> None:
        """Stop polling and flush what is still queued (up to 10 s)."""
        self._running = False
        self._thread.join()
        self._producer.flush(10)


def _settle(future: asyncio.Future[None], err: Any) -> None:
    """Resolve a delivery's future on its event loop: done, or `ProduceFailed` with the error.

    A future already done (its request timed out) is left as it is.
    """
    if future.done():
        return
    if err is not None:
        future.set_exception(ProduceFailed(str(err)))
    else:
        future.set_result(None)


class Metrics:
    """Counters and latency histograms, rendered in the Prometheus text format.

    Thread-safe: any thread may update it while `/metrics` renders it.
    Counters only grow for the life of the process (a restart starts them at 0, which
    Prometheus' `rate` handles). Histogram buckets are `LATENCY_BUCKETS`, in seconds.
    """

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._histograms: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` to counter `name` with `labels`."""
        with self._lock:
            self.counters[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> int:
        """Return a counter's value (0 when never incremented)."""
        return self.counters[(name, tuple(sorted(labels.items())))]

    def observe(self, name: str, seconds: float) -> None:
        """Record one latency observation in histogram `name`."""
        with self._lock:
            buckets = self._histograms.setdefault(name, [0] * (len(LATENCY_BUCKETS) + 1))
            buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._sums[name] = self._sums.get(name, 0.0) + seconds

    def render(self) -> str:
        """Return every metric in the Prometheus text exposition format.

        Counters are sorted by name and labels, each name preceded by its `# TYPE` line;
        histograms follow with cumulative `_bucket` lines (`le="+Inf"` last), `_sum` and
        `_count`. The text ends with a newline.
        """
        lines: list[str] = []
        with self._lock:
            seen: set[str] = set()
            for (name, labels), count in sorted(self.counters.items()):
                if name not in seen:
                    lines.append(f"# TYPE {name} counter")
                    seen.add(name)
                lines.append(f"{name}{_labels(labels)} {count}")
            for name, buckets in sorted(self._histograms.items()):
                lines.append(f"# TYPE {name} histogram")
                cumulative = 0
                for bound, count in zip((*LATENCY_BUCKETS, None), buckets, strict=True):
                    cumulative += count
                    le = "+Inf" if bound is None else repr(bound)
                    lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
                lines.append(f"{name}_sum {self._sums[name]}")
                lines.append(f"{name}_count {cumulative}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    """Return a metric's label set as `{key="value",...}`, or nothing when it has none."""
    if not labels:
        return ""
    inner = ",".join(f'{key}="{value}"' for key, value in labels)
    return "{" + inner + "}"


class _TooLarge(Exception):
    """The request body is longer than the receiver accepts (answered 413)."""


async def _read_body(request: Request, limit: int) -> bytes:
    """Return the request body, reading no more than `limit` bytes of it.

    A declared `Content-Length` above the limit is refused before reading; a body that
    grows past it while streaming (no or a false length) is refused at that point.

    Raises:
        _TooLarge: the body is longer than `limit` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: IngestSettings,
    sink: EventSink,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the receiver.

    Every POST answers with a JSON body: `{"events", "ignored", "dead_letters"}` counts on
    200; `{"error": ...}` on 401 (signature enforced and wrong), 404 (a Chatwoot account not
    among `chatwoot_accounts`, when that is set), 413 (body too large) or 503 (Kafka did not
    take the request: retry). A body
    that maps to nothing usable is still answered 200: its reasons became dead letters, and
    a retry would not map it any better.

    Args:
        settings: endpoints, secrets, limits and mapping choices.
        sink: where mapped events and dead letters go (closed when the app shuts down).
        metrics: the counters to update (a fresh set by default); exposed on `/metrics`.
        clock: the wall clock in unix seconds (replay windows, `emitted_at`); tests inject it.

    Returns:
        The Starlette app; `app.state.metrics` is the `Metrics` it updates.
    """
    stats = metrics or Metrics()
    chatwoot_options = settings.chatwoot_options()
    whatsapp_options = settings.whatsapp_options()

    async def deliver(endpoint: str, body: bytes, mapped: Mapped) -> Response:
        """Produce the mapped events and dead letters together, then count and answer.

        Events are keyed by `conversation_id`; each unmappable reason becomes one dead letter
        keyed `webhook:<endpoint>` carrying the redacted body. Counters are updated only
        once Kafka took everything, so a 503 request counts as a request and a produce
        failure, not as events.
        """
        messages = [
            (settings.topic, event["conversation_id"], orjson.dumps(event))
            for event in mapped.events
        ]
        source = f"webhook:{endpoint}"
        if mapped.unmappable:
            redacted = redact_raw(body)
            emitted = int(clock() * 1000)
            for reason in mapped.unmappable:
                record = to_json_dict(DeadLetter(reason, redacted, source), emitted)
                messages.append((settings.deadletter_topic, source, orjson.dumps(record)))
                log.warning("dead letter from %s: %s", endpoint, reason)
        started = time.perf_counter()
        try:
            await sink.send(messages)
        except ProduceFailed as exc:
            stats.inc("slawatch_ingest_produce_failures_total", endpoint=endpoint)
            log.error("Kafka refused a request from %s: %s", endpoint, exc)
            return JSONResponse({"error": "Kafka unavailable, retry"}, status_code=503)
        if messages:
            stats.observe("slawatch_ingest_produce_seconds", time.perf_counter() - started)
        stats.inc("slawatch_ingest_events_total", len(mapped.events), endpoint=endpoint)
        stats.inc("slawatch_ingest_dead_letters_total", len(mapped.unmappable), endpoint=endpoint)
        for ignored in mapped.ignored:
            stats.inc("slawatch_ingest_ignored_total", endpoint=endpoint, kind=ignored.kind)
        for flag in mapped.flags:
            stats.inc("slawatch_ingest_flagged_total", endpoint=endpoint, flag=flag)
        return JSONResponse(
            {
                "events": len(mapped.events),
                "ignored": len(mapped.ignored),
                "dead_letters": len(mapped.unmappable),
            }
        )

    def refused(endpoint: str, reason: str | None) -> Response | None:
        """Apply the endpoint's signature mode to a failed check: a 401 only under `enforce`.

        Under `log` a failure is counted and logged and the request goes on; under `off`
        it is not even counted.
        """
        mode = settings.mode(endpoint)
        if reason is None or mode == "off":
            return None
        stats.inc("slawatch_ingest_signature_failures_total", endpoint=endpoint, mode=mode)
        log.warning("signature check failed on %s (%s): %s", endpoint, mode, reason)
        if mode == "enforce":
            return JSONResponse({"error": "signature check failed"}, status_code=401)
        return None

    async def read(request: Request, endpoint: str) -> bytes | Response:
        """Count the request and return its body, or the 413 answer when it is too large."""
        stats.inc("slawatch_ingest_requests_total", endpoint=endpoint)
        try:
            return await _read_body(request, settings.max_body_bytes)
        except _TooLarge:
            stats.inc("slawatch_ingest_too_large_total", endpoint=endpoint)
            return JSONResponse({"error": "body too large"}, status_code=413)

    async def chatwoot(request: Request) -> Response:
        """Receive a Chatwoot webhook for the account in the path, checked and mapped.

        The signature is checked with the account's secret (HMAC of timestamp and body,
        within the replay window) or, for unsigned Chatwoot versions, the path token.
        """
        account = request.path_params["account"]
        endpoint = f"chatwoot/{account}"
        if settings.chatwoot_accounts and account not in settings.chatwoot_accounts:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        body = await read(request, endpoint)
        if isinstance(body, Response):
            return body
        secret = settings.chatwoot_secrets.get(account)
        token = settings.chatwoot_tokens.get(account)
        reason = check_chatwoot(
            body,
            secret=None if secret is None else secret.get_secret_value(),
            signature=request.headers.get("x-chatwoot-signature"),
            timestamp=request.headers.get("x-chatwoot-timestamp"),
            now_s=clock(),
            window_s=settings.replay_window_s,
            path_token=request.path_params.get("token"),
            expected_token=None if token is None else token.get_secret_value(),
        )
        denial = refused(endpoint, reason)
        if denial is not None:
            return denial
        return await deliver(endpoint, body, map_chatwoot(body, account, chatwoot_options))

    async def whatsapp_verify(request: Request) -> Response:
        """Answer Meta's subscription handshake: echo `hub.challenge`, or 403 on a bad token."""
        params = request.query_params
        token = settings.whatsapp_verify_token
        challenge = meta_handshake(
            params.get("hub.mode"),
            params.get("hub.verify_token"),
            params.get("hub.challenge"),
            None if token is None else token.get_secret_value(),
        )
        if challenge is None:
            stats.inc("slawatch_ingest_handshake_refused_total")
            return PlainTextResponse("forbidden", status_code=403)
        return PlainTextResponse(challenge)

    async def whatsapp(request: Request) -> Response:
        """Receive a WhatsApp Cloud API webhook, checked (`X-Hub-Signature-256`) and mapped."""
        endpoint = "whatsapp"
        body = await read(request, endpoint)
        if isinstance(body, Response):
            return body
        secret = settings.whatsapp_app_secret
        reason = check_meta(
            body,
            app_secret=None if secret is None else secret.get_secret_value(),
            signature=request.headers.get("x-hub-signature-256"),
        )
        denial = refused(endpoint, reason)
        if denial is not None:
            return denial
        return await deliver(endpoint, body, map_whatsapp(body, whatsapp_options))

    async def healthz(_request: Request) -> Response:
        """Say the process is up (it does not check Kafka: a request's 503 does)."""
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(_request: Request) -> Response:
        """Expose the counters in the Prometheus text format, version 0.0.4."""
        return PlainTextResponse(stats.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        """Close the sink (flushing it) when the server shuts down."""
        try:
            yield
        finally:
            sink.close()

    app = Starlette(
        routes=[
            Route("/webhooks/chatwoot/{account}", chatwoot, methods=["POST"]),
            Route("/webhooks/chatwoot/{account}/{token}", chatwoot, methods=["POST"]),
            Route("/webhooks/whatsapp", whatsapp_verify, methods=["GET"]),
            Route("/webhooks/whatsapp", whatsapp, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = stats
    return app


def _uvicorn_config(app: Starlette, host: str, port: int) -> Any:
    """Return uvicorn's configuration for the receiver: no access log, warnings only."""
    import uvicorn  # noqa: PLC0415

    # No access log: a Chatwoot URL may hold a shared token in its path.
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning")


def serve(settings: IngestSettings) -> None:
    """Run the receiver until interrupted (uvicorn handles SIGINT/SIGTERM gracefully).

    Blocks. On shutdown, requests in flight are finished and the Kafka producer is flushed
    before the process exits.

    Args:
        settings: where to listen, where to produce, and the endpoints' secrets and modes.
    """
    import uvicorn  # noqa: PLC0415

    sink = KafkaSink(settings.producer_config(), timeout_s=settings.produce_timeout_s)
    app = create_app(settings, sink)
    log.info("receiving webhooks on http://%s:%d", settings.host, settings.port)
    uvicorn.Server(_uvicorn_config(app, settings.host, settings.port)).run()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now.

    Another process may take it before it is used; good enough for tests on loopback.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running(app: Starlette, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread; yield its base URL, and stop it afterwards.

    For tests and benchmarks: the real server on loopback, not an in-process test client.

    Args:
        app: the receiver, from `create_app`.
        host: the address to listen on.
        port: the port; a free one when None.

    Yields:
        The base URL, `http://host:port`, once the server accepts connections.

    Raises:
        RuntimeError: the server did not start within 10 s.
    """
    import uvicorn  # noqa: PLC0415

    chosen = port or free_port(host)
    server = uvicorn.Server(_uvicorn_config(app, host, chosen))
    thread = threading.Thread(target=server.run, name="ingest-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = f"the receiver did not start on {host}:{chosen}"
            raise RuntimeError(msg)
        time.sleep(0.01)
    try:
        yield f"http://{host}:{chosen}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
