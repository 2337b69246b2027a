"""Notifications by e-mail (O5, the SMTP part): which kinds are e-mailed, how a message is
rendered, and the port that sends it.

The e-mail channel never sends inside the transaction that creates a notification: that
transaction only announces the row as ``notification.created`` (the in-app channel of
:mod:`mercato.notifications.service`). The bus subscriber ``notifications.email``
(:mod:`mercato.notifications.handlers`) loads the notification and its recipient, keeps
it only when its ``kind`` is in :data:`EMAILED_KINDS`, the store has an SMTP server
(``MERCATO_SMTP_HOST``) and the recipient's account is active, renders it with
:func:`compose` and sends it through :class:`Mailer`. A failed send raises, so the bus
retries with backoff and finally dead-letters the delivery (an admin can replay it).

Sending is at least once, not exactly once: SMTP and the database cannot commit
together, so a crash (or a lost connection) after the server accepted the message but
before the delivery's transaction committed sends it again. Every message therefore
carries a ``Message-ID`` derived only from the notification id (:func:`message_id`), and
its ``Date`` and MIME boundary come from the notification too: a resent message is the
same message to a mail system, which may drop the duplicate, and mail clients collapse it.

The SMTP exchange runs inside the delivery's transaction (the bus records the event as
processed in it). It is bounded as a whole by ``MERCATO_SMTP_TIMEOUT_SECONDS``; on SQLite,
where one writer serialises all writes, a slow SMTP server delays other writes by up to
that long, so point the store at a nearby relay.
"""

from __future__ import annotations

import asyncio
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Protocol

import aiosmtplib
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mercato.config import Settings
from mercato.models import Notification

# The ``kind`` of a notification row (the event type that caused it) for each kind that is
# also e-mailed; every other kind stays in the in-app inbox only. Each has a text and an
# HTML template in templates/email/. Modules call ``notifications.service.notify`` with
# exactly these kinds.
REVIEW_KINDS = ("review.approved", "review.rejected", "review.changes_requested")
MONEY_KINDS = ("order.completed", "order.shipped", "payment.failed", "refund.approved", "refund.rejected",
               "payout.approved", "payout.rejected")
EMAILED_KINDS: frozenset[str] = frozenset(REVIEW_KINDS + MONEY_KINDS)


def is_emailed(kind: str) -> bool:
    return kind in EMAILED_KINDS


# --- the port -------------------------------------------------------------------------------------

class Mailer(Protocol):
    """Sends one message to the addresses of its ``To`` header, from its ``From``; raises
    when the server did not accept it (the caller retries)."""

    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """Any SMTP server (a relay, a mail provider's submission port), one connection per
    message: implicit TLS, or STARTTLS (required when on), or plain for a local relay."""

    def __init__(self, *, host: str, port: int, username: str | None, password: str | None, starttls: bool,
                 tls: bool, timeout: float) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.tls = tls
        self.starttls = starttls and not tls  # implicit TLS is already encrypted
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        async with asyncio.timeout(self.timeout):  # the whole exchange, not each command
            await aiosmtplib.send(message, hostname=self.host, port=self.port, username=self.username,
                                  password=self.password, use_tls=self.tls, start_tls=self.starttls,
                                  timeout=self.timeout)


def make_mailer(settings: Settings) -> Mailer | None:
    """The store's mailer, or None when no SMTP server is configured (e-mail is off)."""
    if not settings.smtp_host:
        return None
    return SmtpMailer(host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
                      password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                      starttls=settings.smtp_starttls, tls=settings.smtp_tls, timeout=settings.smtp_timeout_seconds)


# --- rendering ------------------------------------------------------------------------------------

_templates = Environment(
    loader=PackageLoader("mercato.notifications", "templates/email"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)


def _one_line(text: str) -> str:
    """Header-safe: no line breaks (they would end the header), no runs of blanks."""
    return " ".join(text.split())


def message_id(notification_id: uuid.UUID, settings: Settings) -> str:
    """The same ``Message-ID`` for every send of one notification (see the module docstring),
    in the domain of the store's sender address."""
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "localhost"
    return f"<notification-{notification_id}@{domain}>"


def link_url(notification: Notification, settings: Settings) -> str | None:
    """The notification's link on this store (always under ``public_url``)."""
    if not notification.link:
        return None
    return f"{settings.public_url.rstrip('/')}/{notification.link.lstrip('/')}"


def compose(notification: Notification, *, email: str, display_name: str, settings: Settings) -> EmailMessage:
    """The e-mail for one notification: multipart/alternative, text and HTML, the subject
    being the notification's title."""
    if not is_emailed(notification.kind):
        raise ValueError(f"notifications of kind {notification.kind!r} are not e-mailed")
    name = _one_line(display_name)
    context = {"title": notification.title, "body": notification.body.strip(), "kind": notification.kind,
               "url": link_url(notification, settings), "store_url": settings.public_url.rstrip("/"),
               "name": name, "data": notification.data or {}}
    message = EmailMessage()
    message["Subject"] = _one_line(notification.title)
    message["From"] = settings.smtp_from
    message["To"] = Address(display_name=name, addr_spec=email)
    message["Date"] = format_datetime(notification.created_at)
    message["Message-ID"] = message_id(notification.id, settings)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    message.set_content(_templates.get_template(f"{notification.kind}.txt").render(context))
    message.add_alternative(_templates.get_template(f"{notification.kind}.html").render(context), subtype="html")
    # Fixed per notification like the Message-ID. No part contains it: quoted-printable never
    # has "=_", and the id is unknown to whoever wrote the text.
    message.set_boundary(f"=_mercato_{notification.id.hex}")
    return message
