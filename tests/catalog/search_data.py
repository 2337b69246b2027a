"""Listings for the search contract suite, inserted straight through the models (a repository
test), plus the brute-force answers the suite checks the search against."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mercato.app.runtime import Runtime
from mercato.catalog.search.query import ListingSearch, SearchQuery
from mercato.models import Category, Listing, Publisher

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Spec:
    slug: str
    name: str
    kind: str = "app"
    category: str | None = None  # category slug
    tags: list[str] = field(default_factory=list)
    summary: str = ""
    description: str = ""
    price: int = 0
    delivery: str = "digital"
    platforms: list[str] = field(default_factory=lambda: ["linux"])
    downloads: int = 0
    installs: int = 0
    rating_average: float = 0.0
    rating_count: int = 0
    published_days: int = 0  # published_at = EPOCH + days
    status: str = "published"
    publisher: str = "acme"  # publisher slug
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def words(self) -> set[str]:
        text = " ".join([self.name, self.slug, " ".join(self.tags), self.summary, self.description,
                         PUBLISHERS[self.publisher], self.publisher])
        return set(text.lower().replace("-", " ").split())


PUBLISHERS = {"acme": "Acme Software", "nordlys": "Nordlys Studio", "kettle": "Kettle Works"}
CATEGORIES = ("test-productivity", "test-graphics", "test-games")


@dataclass
class Shelf:
    runtime: Runtime
    search: ListingSearch
    specs: dict[str, Spec]  # slug → spec
    categories: dict[str, uuid.UUID]  # slug → id
    publishers: dict[str, uuid.UUID]

    def by_id(self, listing_id: uuid.UUID) -> Spec:
        return next(spec for spec in self.specs.values() if spec.id == listing_id)

    def slugs(self, ids: list[uuid.UUID]) -> list[str]:
        return [self.by_id(i).slug for i in ids]

    async def find(self, **query: Any) -> Any:
        async with self.runtime.db.read_session() as session:
            return await self.search.search(session, SearchQuery(**query))

    async def find_all(self, **query: Any) -> list[uuid.UUID]:
        """Every page of a query, in order."""
        ids: list[uuid.UUID] = []
        cursor = None
        for _ in range(200):
            result = await self.find(**query, cursor=cursor)
            ids.extend(result.ids)
            cursor = result.next_cursor
            if cursor is None:
                return ids
        raise AssertionError("paging did not end")

    async def add(self, *specs: Spec) -> None:
        async with self.runtime.db.transaction() as session:
            for spec in specs:
                session.add(listing_from(spec, self))
            await session.flush()
            for spec in specs:
                await self.search.reindex(session, spec.id)
                self.specs[spec.slug] = spec

    def matches(self, query: SearchQuery) -> list[Spec]:
        """Brute force: published listings the query should find (terms: whole words, the last
        one also as a prefix of three or more letters)."""
        out = []
        for spec in self.specs.values():
            if spec.status != "published":
                continue
            if query.kind and spec.kind != query.kind:
                continue
            if query.category_id and self.categories.get(spec.category or "") != query.category_id:
                continue
            if query.price and (spec.price == 0) != (query.price == "free"):
                continue
            if query.delivery and spec.delivery not in (query.delivery, "both"):
                continue
            if query.platform and not {query.platform, "any"} & set(spec.platforms):
                continue
            if query.publisher_id and self.publishers[spec.publisher] != query.publisher_id:
                continue
            if query.q:
                *whole, last = query.q.lower().split()
                words = spec.words
                if not all(term in words for term in whole):
                    continue
                if last not in words and not (len(last) >= 3 and any(w.startswith(last) for w in words)):
                    continue
            out.append(spec)
        return out

    def facet_counts(self, specs: list[Spec]) -> dict[str, dict[str, int]]:
        facets: dict[str, dict[str, int]] = {"kind": {}, "category": {}, "price": {}, "delivery": {}, "platform": {}}

        def bump(facet: str, key: str) -> None:
            facets[facet][key] = facets[facet].get(key, 0) + 1

        for spec in specs:
            bump("kind", spec.kind)
            if spec.category:
                bump("category", str(self.categories[spec.category]))
            bump("price", "free" if spec.price == 0 else "paid")
            for delivery in ("digital", "physical"):
                if spec.delivery in (delivery, "both"):
                    bump("delivery", delivery)
            for platform in set(spec.platforms):
                bump("platform", platform)
        return facets


def listing_from(spec: Spec, shelf: Shelf) -> Listing:
    digital = spec.price if spec.delivery in ("digital", "both") else None
    physical = spec.price if spec.delivery in ("physical", "both") else None
    return Listing(
        id=spec.id, slug=spec.slug, name=spec.name, kind=spec.kind, status=spec.status,
        publisher_id=shelf.publishers[spec.publisher],
        category_id=shelf.categories[spec.category] if spec.category else None,
        tags=spec.tags, summary=spec.summary, description=spec.description, digital_price=digital,
        physical_price=physical, stock=10 if physical is not None else None, sort_price=spec.price,
        delivery=spec.delivery, platforms=spec.platforms, download_count=spec.downloads,
        install_count=spec.installs, rating_average=spec.rating_average, rating_count=spec.rating_count,
        rating_sum=round(spec.rating_average * spec.rating_count),
        published_at=EPOCH + timedelta(days=spec.published_days) if spec.status == "published" else None)


async def make_shelf(runtime: Runtime, *specs: Spec) -> Shelf:
    categories = {slug: uuid.uuid4() for slug in CATEGORIES}
    publishers = {slug: uuid.uuid4() for slug in PUBLISHERS}
    async with runtime.db.transaction() as session:
        for slug, name in PUBLISHERS.items():
            session.add(Publisher(id=publishers[slug], slug=slug, name=name))
        for position, slug in enumerate(CATEGORIES):
            session.add(Category(id=categories[slug], slug=slug, name=slug.title(), position=position))
    shelf = Shelf(runtime=runtime, search=runtime.search, specs={},
                  categories=categories, publishers=publishers)
    if specs:
        await shelf.add(*specs)
    return shelf


WORDS = ["chess", "puzzle", "notes", "timer", "photo", "editor", "music", "player", "garden", "pixel",
         "retro", "cloud", "sync", "markdown", "sketch"]


def catalog(count: int = 60, seed: int = 7) -> list[Spec]:
    """A varied catalog with deliberate ties in every sort key (ties must break by id)."""
    rng = random.Random(seed)
    specs = []
    for n in range(count):
        name_words = rng.sample(WORDS, rng.randint(1, 2))
        delivery = rng.choice(["digital", "digital", "physical", "both"])
        platforms = rng.choice([["linux"], ["windows"], ["linux", "macos"], ["windows", "macos", "linux"],
                                ["any"], ["android"]])
        specs.append(Spec(
            slug=f"{'-'.join(name_words)}-{n}", name=" ".join(name_words).title() + f" {n}",
            kind=rng.choice(["app", "app", "plugin", "game"]), category=rng.choice([*CATEGORIES, None]),
            tags=rng.sample(WORDS, 2), summary=" ".join(rng.sample(WORDS, 3)),
            description=" ".join(rng.choices(WORDS, k=12)), price=rng.choice([0, 0, 499, 999]),
            delivery=delivery, platforms=platforms, downloads=rng.choice([0, 10, 10, 50]),
            installs=rng.choice([0, 5]), rating_average=rng.choice([0.0, 3.5, 4.5, 4.5]),
            rating_count=rng.choice([0, 2, 2, 9]), published_days=rng.randint(0, 5),
            status=rng.choice(["published"] * 5 + ["draft", "delisted"]), publisher=rng.choice(list(PUBLISHERS))))
    return specs
