"""Sending a report instead of printing it: to a webhook and/or by e-mail.

Where reports go is configured like the rest of slawatch, with `SLAWATCH_NOTIFY_*` environment
variables (or a `.env` file), so a cron line such as
`slawatch report daily --send` gives the daily digest.

* Webhook: `SLAWATCH_NOTIFY_WEBHOOK_URL`; the report is POSTed as JSON
  `{"title": ..., "text": ..., "format": ...}` (`text` is what Slack and Mattermost show).
* E-mail: `SLAWATCH_NOTIFY_SMTP_HOST` (and `_PORT`, `_USER`, `_PASSWORD`, `_STARTTLS`),
  `SLAWATCH_NOTIFY_EMAIL_FROM` and `SLAWATCH_NOTIFY_EMAIL_TO` (comma-separated); the subject is
  the report's title and the body the rendered report.
"""

from __future__ import annotations

import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Annotated

import orjson
from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flows.exceptions import SlawatchError
from flows.reports.render import Report

__all__ = ["NotifySettings", "SendError", "send_report"]


class SendError(SlawatchError):
    """A report could not be delivered to a configured destination."""


def _split(value: object) -> object:
    """Split a comma-separated environment value into its non-blank, stripped parts."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class NotifySettings(BaseSettings):
    """Where `--send` delivers reports (`SLAWATCH_NOTIFY_*` variables).

    Read from the environment, then from `.env` in the working directory; unknown variables
    are ignored. Nothing is required: with no webhook and no e-mail configured, `send_report`
    refuses to run rather than silently sending nothing.
    """

    model_config = SettingsConfigDict(
        env_prefix="SLAWATCH_NOTIFY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    webhook_url: str | None = Field(default=None, description="URL the report is POSTed to.")
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mailed reports.")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_user: str | None = Field(default=None, description="SMTP user, if it asks for a login.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    email_from: str = Field(default="slawatch@localhost", description="Sender address.")
    email_to: Annotated[list[str], NoDecode, BeforeValidator(_split)] = Field(
        default_factory=list, description="Recipients, comma-separated."
    )
    timeout_s: float = Field(default=10.0, description="Network timeout of one delivery.")

    @property
    def email_configured(self) -> bool:
        """Whether e-mail delivery has a server and recipients."""
        return bool(self.smtp_host and self.email_to)


def send_report(report: Report, text: str, fmt: str, settings: NotifySettings) -> list[str]:
    """Deliver the rendered `text` of `report` to every configured destination.

    The webhook is tried first, then e-mail; the first failure stops the delivery, so a
    destination after it is not tried.

    Args:
        report: the report (its title is the webhook `title` and the e-mail subject).
        text: the report as rendered, sent as it is.
        fmt: the rendering's format (`text`, `markdown`, `csv`), passed on to the webhook.
        settings: the destinations.

    Returns:
        A description of each destination reached (e.g. `webhook https://...`).

    Raises:
        SendError: Nothing is configured, or a destination refused or could not be reached.
    """
    if not settings.webhook_url and not settings.email_configured:
        msg = (
            "no destination for --send is configured; set SLAWATCH_NOTIFY_WEBHOOK_URL, or "
            "SLAWATCH_NOTIFY_SMTP_HOST and SLAWATCH_NOTIFY_EMAIL_TO"
        )
        raise SendError(msg)
    sent: list[str] = []
    if settings.webhook_url:
        _post(settings.webhook_url, report, text, fmt, settings.timeout_s)
        sent.append(f"webhook {settings.webhook_url}")
    if settings.email_configured:
        _mail(report, text, settings)
        sent.append(f"e-mail to {', '.join(settings.email_to)}")
    return sent


def _post(url: str, report: Report, text: str, fmt: str, timeout_s: float) -> None:
    """POST the report as JSON to an http(s) webhook; an answer without an error status counts.

    Raises:
        SendError: The URL is not http(s), the webhook answered an error status or cannot be
            reached.
    """
    if not url.startswith(("http://", "https://")):
        msg = f"SLAWATCH_NOTIFY_WEBHOOK_URL {url!r} must start with http:// or https://"
        raise SendError(msg)
    body = orjson.dumps({"title": report.title, "text": text, "format": fmt})
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        msg = f"the webhook {url} answered HTTP {exc.code}; check SLAWATCH_NOTIFY_WEBHOOK_URL"
        raise SendError(msg) from None
    except OSError as exc:
        msg = f"the webhook {url} cannot be reached ({exc}); check SLAWATCH_NOTIFY_WEBHOOK_URL"
        raise SendError(msg) from None


def _mail(report: Report, text: str, settings: NotifySettings) -> None:
    """E-mail the report as plain text to every recipient in one message.

    Raises:
        SendError: The mail server cannot be reached or refused the login or the message.
    """
    message = EmailMessage()
    message["Subject"] = report.title
    message["From"] = settings.email_from
    message["To"] = ", ".join(settings.email_to)
    message.set_content(text)
    host = str(settings.smtp_host)
    try:
        with smtplib.SMTP(host, settings.smtp_port, timeout=settings.timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                password = settings.smtp_password
                smtp.login(settings.smtp_user, password.get_secret_value() if password else "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        msg = (
            f"the mail server {host}:{settings.smtp_port} did not take the report ({exc}); "
            "check SLAWATCH_NOTIFY_SMTP_*"
        )
        raise SendError(msg) from None
