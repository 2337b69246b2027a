"""Every model, imported in one place so metadata and Alembic see them all."""

from mercato.models.access import KnownPermission, Role, RoleGrant, UserRole
from mercato.models.accounts import ApiToken, RefreshToken, User
from mercato.models.audit import AuditEntry
from mercato.models.base import Base
from mercato.models.bus import BusCursor, EventDelivery, ProcessedEvent, SweepLease
from mercato.models.catalog import Category, CategoryDocument, Listing, ListingDailyStat, ListingDocument
from mercato.models.coupons import Coupon, CouponRedemption
from mercato.models.history import HistoryEntry  # noqa: F401
from mercato.models.idempotency import IdempotencyRecord
from mercato.models.installs import Installation, InstallTask, Instance  # noqa: F401
from mercato.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from mercato.models.library import Entitlement
from mercato.models.licences import LicenceKey
from mercato.models.market import MarketSource, MirroredListing  # noqa: F401
from mercato.models.moderation import ReviewTask
from mercato.models.notifications import Notification
from mercato.models.openvsx import RegistryToken  # noqa: F401
from mercato.models.orders import Order, OrderLine, Shipment
from mercato.models.outbox import OutboxEvent
from mercato.models.payments import Payment
from mercato.models.payouts import Payout
from mercato.models.policies import StoreSetting  # noqa: F401
from mercato.models.publishers import Publisher, PublisherApplication, PublisherMember
from mercato.models.ratings import ListingReview
from mercato.models.refunds import Refund, RefundLine
from mercato.models.releases import ListingVersion
from mercato.models.sandbox import SandboxPayment  # noqa: F401
from mercato.models.sync import CatalogChange, SyncCounter  # noqa: F401
from mercato.models.webhooks import Webhook, WebhookAttempt, WebhookDelivery  # noqa: F401

__all__ = [
    "ApiToken", "AuditEntry", "Base", "BusCursor", "Category", "CategoryDocument", "ListingDocument", "Entitlement",
    "Listing", "ListingDailyStat", "ListingReview", "ListingVersion", "Notification", "ReviewTask", "EventDelivery",
    "ProcessedEvent", "SweepLease", "IdempotencyRecord", "KnownPermission", "OutboxEvent",
    "Publisher", "PublisherApplication", "PublisherMember", "RefreshToken", "Role", "RoleGrant",
    "User", "UserRole", "Coupon", "CouponRedemption", "LedgerAccount", "LedgerEntry", "LedgerTransaction",
    "LicenceKey", "Order", "OrderLine", "Payment", "Payout", "Refund", "RefundLine", "Shipment",
]
