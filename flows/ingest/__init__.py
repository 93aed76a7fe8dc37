"""Ingestion: inbox platform webhooks (Chatwoot, WhatsApp Cloud API) in, SPEC §1 events out.

`chatwoot` and `whatsapp` map one webhook body to events (pure, no I/O); `signatures` checks
webhook signatures; `app` is the ASGI receiver (`slawatch ingest`) that produces the events to
Kafka; `reconcile` catches up on what Chatwoot's webhooks missed through its REST API; `act`
carries out the monitor's escalations. See docs/INTEGRATIONS.md.
"""
