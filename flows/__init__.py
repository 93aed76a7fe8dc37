"""slawatch: a real-time SLA monitor for teams that sell and serve customers over WhatsApp."""

__version__ = "0.1.0"
