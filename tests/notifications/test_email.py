"""O5 (e-mail): notifications of the e-mailed kinds reach their recipients through SMTP,
after the notification's transaction, at least once and with a Message-ID that makes a
resend recognisable; never without an SMTP server, never to disabled accounts.

A real SMTP server (aiosmtpd) on 127.0.0.1 receives what the store sends.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.models import EventDelivery, Notification
from mercato.notifications import email as channel
from mercato.notifications import service as notifications
from mercato.payments.providers.sandbox import CARD_DECLINED
from tests.catalog.support import Shop
from tests.library.support import V1, eventually
from tests.support.actors import Actor, Actors
from tests.support.earnings import sold
from tests.support.orders import ADDRESS, Seller, fund, item, place, quiet, until
from tests.support.payments import pay, topup
from tests.support.refunds import completed_order

PUBLIC_URL = "https://store.example.org"
SENDER = "store@mercato.test"
SUBSCRIBER = "notifications.email"


# --- a real SMTP server ----------------------------------------------------------------------------

class Received:
    """aiosmtpd handler: keeps every envelope the server accepted."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd calls it so
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self) -> None:
        with socket.socket() as probe:  # a free port; nothing listens on it until start()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.received = Received()
        self.controller = Controller(self.received, hostname="127.0.0.1", port=self.port)
        self.running = False

    def start(self) -> None:
        self.controller.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False

    @property
    def envelopes(self) -> list[Any]:
        return list(self.received.envelopes)

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(e.content, policy=email.policy.default)  # type: ignore[misc]
                for e in self.envelopes]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for e, m in zip(self.envelopes, self.messages(), strict=True) if e.rcpt_tos == [address]]


@pytest.fixture
def smtp_running() -> bool:
    """Whether the SMTP server is up when the test starts (parametrize to change)."""
    return True


@pytest.fixture
def smtp_enabled() -> bool:
    """Whether the store is configured with the SMTP server (parametrize to change)."""
    return True


@pytest.fixture
def smtp(smtp_running: bool) -> Iterator[SmtpServer]:
    server = SmtpServer()
    if smtp_running:
        server.start()
    yield server
    server.stop()


@pytest.fixture
def bus_max_attempts() -> int:
    return 100


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer, smtp_enabled: bool, bus_max_attempts: int) -> Settings:
    """The store's settings with the SMTP server (plain SMTP: it offers no STARTTLS) and a
    brisk retry schedule."""
    update: dict[str, Any] = {"public_url": PUBLIC_URL, "bus_max_attempts": bus_max_attempts,
                              "bus_retry_base_seconds": 0.05, "bus_retry_max_seconds": 0.2,
                              "bus_sweep_interval_seconds": 0.1}
    if smtp_enabled:
        update |= {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_starttls": False,
                   "smtp_from": f"Mercato Store <{SENDER}>", "smtp_timeout_seconds": 5.0}
    return settings.model_copy(update=update)


# --- arranging and looking ----------------------------------------------------------------------------

async def rows(runtime: Runtime, *, user: Actor | None = None, kind: str | None = None) -> list[Notification]:
    async with runtime.db.read_session() as session:
        query = select(Notification)
        if user is not None:
            query = query.where(Notification.user_id == uuid.UUID(user.id))
        if kind is not None:
            query = query.where(Notification.kind == kind)
        return list(await session.scalars(query.order_by(Notification.created_at, Notification.id)))


async def email_deliveries(runtime: Runtime) -> list[EventDelivery]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(EventDelivery).where(EventDelivery.subscriber == SUBSCRIBER)
                                          .execution_options(populate_existing=True)))


async def settled(runtime: Runtime, count: int) -> list[EventDelivery]:
    """Wait until the e-mail subscriber has seen ``count`` notifications (at least) and
    finished every one it has (done or dead)."""
    return await eventually(lambda: email_deliveries(runtime),
                            lambda ds: len(ds) >= count and all(d.state in ("done", "dead") for d in ds))


async def notify(runtime: Runtime, user: Actor, kind: str, *, title: str = "Something happened", body: str = "",
                 link: str | None = None) -> Notification:
    """What a module does: ``notifications.service.notify`` in its own transaction."""
    async with runtime.db.transaction() as session:
        [created] = await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(user.id)],
                                               kind=kind, title=title, body=body, link=link)
    return created


async def shop_with_member(client: httpx.AsyncClient, actors: Actors) -> tuple[Shop, Actor]:
    shop = await Shop.open(client, actors)
    member = await actors.create()
    added = await client.post(f"{V1}/publishers/{shop.publisher}/members", headers=shop.developer.headers,
                              json={"email": member.email})
    assert added.status_code == 200, added.text
    return shop, member


async def received(smtp: SmtpServer) -> list[EmailMessage]:
    return smtp.messages()


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")  # SMTP lines


# --- the review decisions ---------------------------------------------------------------------------

async def test_a_rejection_reaches_every_member_of_the_publisher_by_email(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, smtp: SmtpServer) -> None:
    shop, member = await shop_with_member(client, actors)
    listing = await shop.listing(name="Mail Notes")
    assert (await shop.upload(listing["slug"], "1.0.0")).status_code == 201
    await shop.submit(listing["slug"], "1.0.0")
    reason = "Crashes on start <script>alert('x')</script> & more"
    await shop.decide(listing["slug"], "1.0.0", "reject", reason=reason)

    await eventually(lambda: received(smtp), lambda messages: len(messages) >= 2)
    for recipient in (shop.developer, member):
        [notification] = await rows(runtime, user=recipient, kind="review.rejected")
        [message] = smtp.to(recipient.email)
        assert message["Subject"] == notification.title == "Mail Notes 1.0.0 was rejected"
        assert message["Message-ID"] == f"<notification-{notification.id}@mercato.test>"
        assert message["To"].addresses[0].addr_spec == recipient.email
        assert message["From"].addresses[0].addr_spec == SENDER
        text, html = parts(message)
        assert f"Reason: {reason}" in text
        assert "Crashes on start &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
        assert "<script>" not in html
        url = f"{PUBLIC_URL}/console/publisher/{shop.publisher}/listings/{listing['id']}"  # a page, not /api/v1
        assert notification.link is not None and url in text and f'href="{url}"' in html
    assert {e.mail_from for e in smtp.envelopes} == {SENDER}
    # nothing else of the flow (review.created, version and listing events) was e-mailed
    assert len(await settled(runtime, 2)) == len(await rows(runtime)) == 2
    assert len(smtp.envelopes) == 2


async def test_an_approval_is_emailed_with_its_own_template(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, smtp: SmtpServer) -> None:
    shop = await Shop.open(client, actors)
    await shop.published(name="Approved Notes")
    # review.approved is e-mailed; version.approved and listing.published are in-app only
    kinds = ["listing.published", "review.approved", "version.approved"]
    await eventually(lambda: rows(runtime, user=shop.developer), lambda found: sorted(n.kind for n in found) == kinds)
    await settled(runtime, 3)
    [message] = smtp.messages()
    [notification] = await rows(runtime, user=shop.developer, kind="review.approved")
    assert message["Subject"] == "Approved Notes 1.0.0 was approved"
    text, html = parts(message)
    assert "A reviewer approved a version you submitted." in text
    assert "A reviewer approved a version you submitted." in html
    assert message["Message-ID"] == f"<notification-{notification.id}@mercato.test>"


# --- who gets e-mail and when ---------------------------------------------------------------------------

async def test_kinds_that_are_not_emailed_stay_in_the_inbox(
        runtime: Runtime, user: Actor, smtp: SmtpServer) -> None:
    for kind in ("listing.published", "rating.created", "version.yanked", "review.appeal_denied"):
        await notify(runtime, user, kind, title=f"in-app only: {kind}")
    emailed = await notify(runtime, user, "refund.rejected", title="Your refund was declined")
    await settled(runtime, 5)
    assert [m["Subject"] for m in smtp.messages()] == ["Your refund was declined"]
    assert smtp.messages()[0]["Message-ID"] == f"<notification-{emailed.id}@mercato.test>"


@pytest.mark.parametrize("smtp_enabled", [False])
async def test_no_email_without_an_smtp_host(runtime: Runtime, user: Actor, smtp: SmtpServer) -> None:
    assert runtime.settings.smtp_host is None and runtime.mailer is None
    await notify(runtime, user, "review.rejected", title="Hello 1.0.0 was rejected", body="Reason: no")
    [delivery] = await settled(runtime, 1)
    assert delivery.state == "done"
    assert smtp.envelopes == []


async def test_disabled_accounts_get_no_email(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, admin: Actor, smtp: SmtpServer) -> None:
    active, disabled = await actors.create(), await actors.create()
    response = await client.patch(f"{V1}/admin/users/{disabled.id}", headers=admin.headers,
                                  json={"is_active": False})
    assert response.status_code == 200, response.text
    await notify(runtime, disabled, "order.completed", title="Order completed")
    await notify(runtime, active, "order.completed", title="Order completed")
    await settled(runtime, 2)
    assert [e.rcpt_tos for e in smtp.envelopes] == [[active.email]]


# --- failures: retried, then dead-lettered ------------------------------------------------------------

@pytest.mark.parametrize("smtp_running", [False])
async def test_an_smtp_server_down_then_up_gets_each_notification_once(
        runtime: Runtime, actors: Actors, smtp: SmtpServer) -> None:
    first, second = await actors.create(), await actors.create()
    created = [await notify(runtime, first, "payment.failed", title="Payment failed"),
               await notify(runtime, second, "order.shipped", title="Order shipped")]
    # The server refuses connections: each delivery fails and is retried, none is lost.
    failing = await eventually(lambda: email_deliveries(runtime),
                               lambda ds: len(ds) == 2 and all(d.attempts >= 2 for d in ds))
    assert all(d.state == "pending" and d.last_error for d in failing)

    await asyncio.to_thread(smtp.start)
    await eventually(lambda: email_deliveries(runtime), lambda ds: all(d.state == "done" for d in ds))
    await asyncio.sleep(0.5)  # time for any stray resend to arrive
    ids = sorted(m["Message-ID"] for m in smtp.messages())
    assert ids == sorted(f"<notification-{n.id}@mercato.test>" for n in created)
    assert sorted(e.rcpt_tos[0] for e in smtp.envelopes) == sorted([first.email, second.email])


@pytest.mark.parametrize(("smtp_running", "bus_max_attempts"), [(False, 2)])
async def test_a_send_that_keeps_failing_is_a_dead_letter_an_admin_can_replay(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor, smtp: SmtpServer) -> None:
    notification = await notify(runtime, user, "payout.rejected", title="Payout rejected")
    [dead] = await settled(runtime, 1)
    assert (dead.state, dead.attempts) == ("dead", 2)

    await asyncio.to_thread(smtp.start)
    response = await client.post(f"{V1}/admin/dead-letters/{dead.id}/replay", headers=admin.headers)
    assert response.status_code == 202, response.text
    await eventually(lambda: email_deliveries(runtime), lambda ds: [d.state for d in ds] == ["done"])
    assert [m["Message-ID"] for m in smtp.messages()] == [f"<notification-{notification.id}@mercato.test>"]


# --- the money kinds (their modules call notify with these kinds) ------------------------------------------

MONEY_INTROS = {
    "order.completed": "Your order is complete.",
    "order.shipped": "The publisher shipped your order.",
    "payment.failed": "A payment did not go through.",
    "refund.approved": "Your refund was approved.",
    "refund.rejected": "Your refund request was declined.",
    "payout.approved": "A payout of your publisher earnings was approved.",
    "payout.rejected": "A payout of your publisher earnings was rejected.",
}


async def test_money_notifications_are_emailed_with_their_templates(
        runtime: Runtime, actors: Actors, smtp: SmtpServer) -> None:
    buyer = await actors.create()
    created = {}
    for kind in MONEY_INTROS:
        created[kind] = await notify(runtime, buyer, kind, title=f"{kind} for order <ORD-1>",
                                     body="Amount: 12.00 USD\nNote: <b>fast</b>", link=f"/api/v1/things/{kind}")
    await settled(runtime, len(MONEY_INTROS))
    by_id = {m["Message-ID"]: m for m in smtp.to(buyer.email)}
    assert len(by_id) == len(MONEY_INTROS)
    for kind, intro in MONEY_INTROS.items():
        message = by_id[f"<notification-{created[kind].id}@mercato.test>"]
        assert message["Subject"] == f"{kind} for order <ORD-1>"
        text, html = parts(message)
        assert intro in text and intro in html
        assert "Amount: 12.00 USD\nNote: <b>fast</b>" in text
        assert "Note: &lt;b&gt;fast&lt;/b&gt;" in html and "<b>fast</b>" not in html
        assert f"{PUBLIC_URL}/api/v1/things/{kind}" in text
        assert f'href="{PUBLIC_URL}/api/v1/things/{kind}"' in html


# --- each money event, from the flow that causes it to the buyer's or publisher's mailbox ------------------

async def mailed(runtime: Runtime, smtp: SmtpServer, who: Actor, kind: str) -> tuple[Notification, str, str]:
    """The one notification of ``kind`` ``who`` got, once its e-mail arrived: its text and HTML."""
    [notification] = await eventually(lambda: rows(runtime, user=who, kind=kind), lambda found: len(found) == 1)
    message_id = f"<notification-{notification.id}@mercato.test>"
    await eventually(lambda: received(smtp), lambda messages: any(
        m["Message-ID"] == message_id for m in messages), timeout=30)
    message = next(m for m in smtp.to(who.email) if m["Message-ID"] == message_id)
    assert message["Subject"] == notification.title
    text, html = parts(message)
    assert MONEY_INTROS[kind] in text and MONEY_INTROS[kind] in html
    if notification.link:
        assert f"{PUBLIC_URL}/{notification.link.lstrip('/')}" in text
    return notification, text, html


async def test_a_shipment_and_the_completion_of_an_order_are_emailed_to_the_buyer(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, smtp: SmtpServer) -> None:
    seller, buyer = await Seller.open(client, actors, runtime), await actors.create()
    book = await seller.listing(physical=2500, stock=3, name="Printed Manual")
    await fund(runtime, buyer, 2500)
    order = (await place(client, buyer, [item(book, "physical")], shipping_address=ADDRESS)).json()
    await until(runtime, order["id"], "awaiting_shipment")
    shipped = await client.post(f"{V1}/orders/{order['id']}/ship", headers=seller.developer.headers,
                                json={"carrier": "DHL", "tracking_number": "JD0146 0000 1234"})
    assert shipped.status_code == 200, shipped.text
    _, text, _ = await mailed(runtime, smtp, buyer, "order.shipped")
    assert "DHL, tracking number JD0146 0000 1234" in text
    delivered = await client.post(f"{V1}/orders/{order['id']}/deliver", headers=seller.developer.headers)
    assert delivered.status_code == 200, delivered.text
    notification, _, _ = await mailed(runtime, smtp, buyer, "order.completed")
    assert notification.data["order_id"] == order["id"]
    assert smtp.to(seller.developer.email) == []


async def test_a_declined_payment_is_emailed_to_the_payer(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, smtp: SmtpServer) -> None:
    buyer = await actors.create()
    payment = await topup(client, buyer, 1250)
    declined = await pay(client, payment, CARD_DECLINED)
    assert declined.status_code < 400, declined.text
    notification, text, _ = await mailed(runtime, smtp, buyer, "payment.failed")
    assert notification.title == "Your wallet top-up of 12.50 USD did not go through"
    assert notification.link == f"/wallet?payment={payment['id']}"
    assert (notification.data["payment_id"], notification.data["amount"]) == (payment["id"], 1250)
    assert "Nothing was credited to your wallet." in text


async def test_refund_decisions_are_emailed_to_the_buyer(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, smtp: SmtpServer) -> None:
    seller, buyer = await Seller.open(client, actors, runtime), await actors.create()
    listing = await seller.listing(physical=900, name="Boxed Game")
    answers = []
    for verb, body in (("approve", {}), ("reject", {"reason": "Opened and used"})):
        # a physical line is never refunded automatically: the publisher decides
        bought = await completed_order(runtime, buyer, [(listing, 900, 1, "physical")])
        asked = await client.post(f"{V1}/orders/{bought.order_id}/refunds", json={"reason": "Arrived damaged"},
                                  headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex})
        assert asked.status_code == 201 and asked.json()["status"] == "requested", asked.text
        decided = await client.post(f"{V1}/refunds/{asked.json()['id']}/{verb}", headers=seller.developer.headers,
                                    json=body)
        assert decided.status_code == 200, decided.text
        answers.append(decided.json())
        # The next arrangement posts straight to the ledger in one transaction with several
        # postings (not the saga's way): let this refund's settlement finish first.
        await quiet(runtime)
    approved, _, _ = await mailed(runtime, smtp, buyer, "refund.approved")
    rejected, text, _ = await mailed(runtime, smtp, buyer, "refund.rejected")
    assert approved.title == "Your refund of 9.00 USD was approved"
    assert (approved.data["refund_id"], rejected.data["refund_id"]) == (answers[0]["id"], answers[1]["id"])
    assert "Opened and used" in text


async def test_payout_decisions_are_emailed_to_the_publishers_members(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, smtp: SmtpServer) -> None:
    shop, member = await shop_with_member(client, actors)
    admin, buyer = await actors.create("marketplace_admin"), await actors.create()
    publisher_id = uuid.UUID((await client.get(f"{V1}/publishers/{shop.publisher}")).json()["id"])
    await sold(runtime, buyer, publisher_id, 5000)  # 4000 earned
    for verb, body in (("approve", None), ("reject", {"reason": "Bank details missing"})):
        payout = await client.post(f"{V1}/publishers/{shop.publisher}/payouts", json={"amount": 1000},
                                   headers={**shop.developer.headers, "Idempotency-Key": uuid.uuid4().hex})
        assert payout.status_code == 201, payout.text
        decided = await client.post(f"{V1}/admin/payouts/{payout.json()['id']}/{verb}", headers=admin.headers,
                                    json=body)
        assert decided.status_code == 200, decided.text
    for recipient in (shop.developer, member):
        approved, _, _ = await mailed(runtime, smtp, recipient, "payout.approved")
        rejected, text, _ = await mailed(runtime, smtp, recipient, "payout.rejected")
        assert (approved.title, rejected.title) == ("Payout of 10.00 USD approved", "Payout of 10.00 USD rejected")
        assert "Bank details missing" in text
    assert smtp.to(buyer.email) == []


# --- the channel without a server ---------------------------------------------------------------------------

def test_the_emailed_kinds_are_the_review_decisions_and_the_money_events() -> None:
    assert channel.EMAILED_KINDS == {
        "review.approved", "review.rejected", "review.changes_requested", "order.completed", "order.shipped",
        "payment.failed", "refund.approved", "refund.rejected", "payout.approved", "payout.rejected"}


@pytest.mark.parametrize("kind", sorted(channel.EMAILED_KINDS))
def test_every_emailed_kind_renders_text_and_html_identically_each_time(kind: str) -> None:
    settings = Settings(smtp_host="mail.example.org", public_url=PUBLIC_URL + "/", smtp_from=f"Store <{SENDER}>")
    notification = Notification(id=uuid.uuid4(), user_id=uuid.uuid4(), event_id=uuid.uuid4(), kind=kind,
                                title="Line one\r\nBcc: victim@example.org", body="", link="/api/v1/x",
                                data={}, created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), read_at=None)
    composed = [channel.compose(notification, email="dev@example.org", display_name="Dev\nOps",
                                settings=settings) for _ in range(2)]
    assert composed[0].as_bytes() == composed[1].as_bytes()  # a resend is the same message
    message = email.message_from_bytes(composed[0].as_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Line one Bcc: victim@example.org" and message["Bcc"] is None
    assert message["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    assert f"{PUBLIC_URL}/api/v1/x" in text and f"{PUBLIC_URL}/api/v1/x" in html
    assert "Hello Dev Ops," in text


def test_other_kinds_are_refused_by_the_renderer() -> None:
    notification = Notification(id=uuid.uuid4(), user_id=uuid.uuid4(), event_id=uuid.uuid4(),
                                kind="listing.published", title="t", body="", link=None, data={},
                                created_at=datetime.now(UTC), read_at=None)
    with pytest.raises(ValueError, match="not e-mailed"):
        channel.compose(notification, email="dev@example.org", display_name="", settings=Settings())
