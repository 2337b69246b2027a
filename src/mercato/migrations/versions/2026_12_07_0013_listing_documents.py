"""Stored listing documents: the read model of the listing detail, kept honest by triggers.

``listing_documents`` holds one row per listing (created with the listing), and
``category_documents`` one per category. Triggers bump a row's ``generation`` and clear
its rendered text on every change that shows in a detail, whoever makes it: the listing's
own columns (stock from orders included; download and install counters excepted, they lag
by the documents' age limit), its versions, its reviews, its publisher's name, slug and
badge, its category. A change to a listing also clears its category's document (the
"related" listings of every detail in that category).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Columns of ``listings`` whose change shows in a detail (its own or, as a related listing,
# another's). Not here: the counters (download_count, install_count, sale_count) — they change
# on every download and would rebuild documents constantly; they lag by the documents' age
# limit instead. tests/catalog/test_documents.py fails when a new column is in neither list.
SHOWN_LISTING_COLUMNS = (
    "id", "slug", "publisher_id", "name", "kind", "status", "status_before_suspension", "suspension_reason",
    "category_id", "tags", "summary", "description", "homepage", "license", "icon_url", "screenshots", "currency",
    "digital_price", "physical_price", "stock", "sort_price", "delivery", "platforms", "latest_version_id",
    "latest_version", "rating_count", "rating_sum", "rating_average", "published_at", "revision", "created_at",
    "updated_at",
)
COUNTER_COLUMNS = ("download_count", "install_count", "sale_count")
SHOWN_PUBLISHER_COLUMNS = ("slug", "name", "verified")

_BUMP_LISTING = "UPDATE listing_documents SET generation = generation + 1, head = NULL WHERE listing_id {target}"
_BUMP_CATEGORY = "UPDATE category_documents SET generation = generation + 1, items = NULL WHERE category_id {target}"

# (trigger name, table, event, condition or None, statements); ``{row}`` is NEW or OLD.
_LISTING_CHANGED = " OR ".join(f"OLD.{c} {{distinct}} NEW.{c}" for c in SHOWN_LISTING_COLUMNS)
_PUBLISHER_CHANGED = " OR ".join(f"OLD.{c} {{distinct}} NEW.{c}" for c in SHOWN_PUBLISHER_COLUMNS)
TRIGGERS = (
    ("listing_documents_on_listing_insert", "listings", "INSERT", None, [
        "INSERT INTO listing_documents (listing_id, slug, generation) VALUES (NEW.id, NEW.slug, 0)",
        _BUMP_CATEGORY.format(target="= NEW.category_id")]),
    ("listing_documents_on_listing_update", "listings", "UPDATE", _LISTING_CHANGED, [
        _BUMP_LISTING.format(target="= NEW.id"),
        _BUMP_CATEGORY.format(target="IN (OLD.category_id, NEW.category_id)")]),
    ("listing_documents_on_listing_delete", "listings", "DELETE", None, [
        _BUMP_CATEGORY.format(target="= OLD.category_id")]),
    ("listing_documents_on_publisher_update", "publishers", "UPDATE", _PUBLISHER_CHANGED, [
        _BUMP_LISTING.format(target="IN (SELECT id FROM listings WHERE publisher_id = NEW.id)"),
        _BUMP_CATEGORY.format(target="IN (SELECT category_id FROM listings WHERE publisher_id = NEW.id)")]),
    ("listing_documents_on_category_insert", "categories", "INSERT", None, [
        "INSERT INTO category_documents (category_id, generation) VALUES (NEW.id, 0)"]),
    ("listing_documents_on_category_update", "categories", "UPDATE", None, [
        _BUMP_LISTING.format(target="IN (SELECT id FROM listings WHERE category_id = NEW.id)"),
        _BUMP_CATEGORY.format(target="= NEW.id")]),
    *((f"listing_documents_on_version_{event.lower()}", "listing_versions", event, None, [
        _BUMP_LISTING.format(target=f"= {'OLD' if event == 'DELETE' else 'NEW'}.listing_id")])
      for event in ("INSERT", "UPDATE", "DELETE")),
    *((f"listing_documents_on_review_{event.lower()}", "listing_reviews", event, None, [
        _BUMP_LISTING.format(target=f"= {'OLD' if event == 'DELETE' else 'NEW'}.listing_id")])
      for event in ("INSERT", "UPDATE", "DELETE")),
)


def upgrade() -> None:
    op.create_table('listing_documents',
    sa.Column('listing_id', sa.Uuid(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('category_id', sa.Uuid(), nullable=True),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('head', sa.Text(), nullable=True),
    sa.Column('built_at_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_listing_documents_listing_id_listings'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('listing_id', name=op.f('pk_listing_documents')),
    sa.UniqueConstraint('slug', name=op.f('uq_listing_documents_slug'))
    )
    op.create_table('category_documents',
    sa.Column('category_id', sa.Uuid(), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('items', sa.Text(), nullable=True),
    sa.Column('built_at_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'],
                            name=op.f('fk_category_documents_category_id_categories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('category_id', name=op.f('pk_category_documents'))
    )
    op.execute("INSERT INTO listing_documents (listing_id, slug, generation) SELECT id, slug, 0 FROM listings")
    op.execute("INSERT INTO category_documents (category_id, generation) SELECT id, 0 FROM categories")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table, event, condition, statements in TRIGGERS:
        if postgresql:
            body = ";\n".join(statements)
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {body}; RETURN NULL; END $$ "
                       "LANGUAGE plpgsql")
            when = f"WHEN ({condition.format(distinct='IS DISTINCT FROM')})" if condition else ""
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {when} "
                       f"EXECUTE FUNCTION {name}()")
        else:
            when = f"WHEN {condition.format(distinct='IS NOT')}" if condition else ""
            body = "".join(f"{statement};\n" for statement in statements)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {when} BEGIN\n{body}END")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table, _, _, _ in TRIGGERS:
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('category_documents')
    op.drop_table('listing_documents')
