"""The demo catalog: publishers, about fifty listings with real generated packages,
approved versions and user reviews, created through the same services as real data."""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access import service as access
from mercato.access.principal import Principal
from mercato.accounts import repository as accounts_repository
from mercato.accounts import service as accounts
from mercato.app.runtime import Runtime
from mercato.catalog import repository as catalog_repository
from mercato.catalog import service as catalog
from mercato.library import service as library
from mercato.moderation import service as review
from mercato.packages.manifest import (
    Compatibility,
    Launch,
    Manifest,
    PackageInfo,
    Permissions,
    Requirements,
    render_manifest,
)
from mercato.packages.scaffold import build_package
from mercato.publishers import repository as publishers_repository
from mercato.publishers import service as publishers
from mercato.ratings import service as ratings
from mercato.releases import service as publishing
from mercato.releases.ingest import ingest

# (slug, name, publisher, verified)
PUBLISHERS = (
    ("demo-studio", "Demo Studio", "dev@mercato.test", False),
    ("northwind-labs", "Northwind Labs", "northwind@mercato.test", True),
    ("pixel-foundry", "Pixel Foundry", "pixels@mercato.test", True),
    ("quiet-tools", "Quiet Tools", "quiet@mercato.test", False),
)


@dataclass(frozen=True)
class DemoListing:
    slug: str
    name: str
    kind: str
    category: str
    publisher: str
    summary: str
    price: int = 0            # digital price in minor units (0 = free)
    physical: int | None = None  # physical copy price, with stock
    tags: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("1.0.0",)
    network: tuple[str, ...] = ()


def _listings() -> list[DemoListing]:
    rows = [
        ("hello-notes", "Hello Notes", "app", "productivity", "demo-studio", "Notes that sync across devices.", 0,
         None, ("notes", "sync"), ("1.0.0", "1.1.0", "1.2.0"), ("api.hello-notes.example:443",)),
        ("notes-sync-plugin", "Notes Sync", "plugin", "productivity", "demo-studio", "Sync Hello Notes with WebDAV.",
         299, None, ("notes", "webdav"), ("1.0.0",), ("*:443",)),
        ("task-garden", "Task Garden", "app", "productivity", "northwind-labs", "Grow your to-do list into a plan.",
         499, None, ("tasks", "planning"), ("2.0.0", "2.1.0"), ()),
        ("calendar-bridge", "Calendar Bridge", "plugin", "productivity", "northwind-labs",
         "Two-way sync with CalDAV calendars.", 0, None, ("calendar", "caldav"), ("0.9.0", "1.0.0"),
         ("caldav.example:443",)),
        ("ledger-lite", "Ledger Lite", "app", "productivity", "quiet-tools", "Household budgets in plain text.", 0,
         None, ("finance", "budget"), ("1.0.0",), ()),
        ("focus-timer", "Focus Timer", "app", "productivity", "quiet-tools", "Pomodoro timer with gentle bells.", 199,
         None, ("timer", "focus"), ("3.0.0",), ()),
        ("code-lens", "Code Lens", "plugin", "developer-tools", "northwind-labs", "Inline blame and references.", 0,
         None, ("git", "editor"), ("1.0.0", "1.1.0"), ()),
        ("regex-workbench", "Regex Workbench", "app", "developer-tools", "quiet-tools",
         "Build and test regular expressions.", 0, None, ("regex", "text"), ("1.0.0",), ()),
        ("api-probe", "API Probe", "app", "developer-tools", "northwind-labs", "Send HTTP requests, save collections.",
         999, None, ("http", "api"), ("4.2.0",), ("*:443", "*:80")),
        ("lint-fleet", "Lint Fleet", "plugin", "developer-tools", "demo-studio", "Run linters across many repos.",
         0, None, ("lint", "ci"), ("0.3.0",), ()),
        ("db-browser", "DB Browser", "app", "developer-tools", "northwind-labs", "Browse SQLite and PostgreSQL.",
         1499, 2999, ("database", "sql"), ("1.0.0", "1.0.1"), ("127.0.0.1:5432",)),
        ("snippet-vault", "Snippet Vault", "plugin", "developer-tools", "quiet-tools",
         "Your code snippets, searchable.",
         0, None, ("snippets",), ("1.0.0",), ()),
        ("photo-shelf", "Photo Shelf", "app", "media", "pixel-foundry", "Organise photos by place and time.", 0,
         None, ("photos", "gallery"), ("1.0.0", "1.1.0"), ()),
        ("tune-deck", "Tune Deck", "app", "media", "pixel-foundry", "A music player for big libraries.", 399,
         2499, ("music", "player"), ("2.3.0",), ()),
        ("clip-cutter", "Clip Cutter", "app", "media", "pixel-foundry", "Trim videos without re-encoding.", 0,
         None, ("video", "editing"), ("1.0.0",), ()),
        ("podcast-pal", "Podcast Pal", "app", "media", "demo-studio", "Subscribe, download, listen offline.", 0,
         None, ("podcasts", "audio"), ("1.0.0",), ("*:443",)),
        ("stream-overlay", "Stream Overlay", "plugin", "media", "pixel-foundry", "Overlays for live streams.", 599,
         None, ("streaming",), ("1.0.0",), ()),
        ("chat-relay", "Chat Relay", "app", "communication", "northwind-labs", "Bridge chat rooms across networks.",
         0, None, ("chat", "matrix"), ("1.0.0", "1.2.0"), ("*:443",)),
        ("mail-sorter", "Mail Sorter", "plugin", "communication", "quiet-tools", "Rules that file your mail.", 0,
         None, ("mail", "filters"), ("1.0.0",), ("imap.example:993",)),
        ("team-board", "Team Board", "app", "communication", "northwind-labs", "Announcements for small teams.",
         799, None, ("team", "board"), ("1.0.0",), ()),
        ("voice-notes", "Voice Notes", "app", "communication", "demo-studio", "Record, transcribe, share.", 0, None,
         ("voice", "notes"), ("1.0.0",), ()),
        ("vault-keeper", "Vault Keeper", "app", "security", "northwind-labs", "A password manager you host.", 1999,
         None, ("passwords", "vault"), ("5.0.0", "5.1.0"), ()),
        ("backup-buddy", "Backup Buddy", "app", "security", "quiet-tools", "Encrypted, deduplicated backups.", 0,
         None, ("backup", "encryption"), ("1.0.0",), ("s3.example:443",)),
        ("port-watch", "Port Watch", "app", "security", "quiet-tools", "Alerts when a new port opens.", 0, None,
         ("network", "monitoring"), ("1.0.0",), ()),
        ("two-factor-kit", "Two-Factor Kit", "plugin", "security", "northwind-labs", "TOTP codes for your apps.",
         0, None, ("2fa", "totp"), ("1.0.0",), ()),
        ("log-sentinel", "Log Sentinel", "app", "security", "demo-studio", "Watch logs for suspicious patterns.",
         1299, None, ("logs", "siem"), ("0.8.0",), ()),
        ("disk-doctor", "Disk Doctor", "app", "utilities", "quiet-tools", "Find what fills your disk.", 0, None,
         ("disk", "cleanup"), ("1.0.0",), ()),
        ("clipboard-plus", "Clipboard Plus", "app", "utilities", "quiet-tools", "Clipboard history and pins.", 0,
         None, ("clipboard",), ("2.0.0",), ()),
        ("unit-convert", "Unit Convert", "plugin", "utilities", "demo-studio", "Convert anything to anything.", 0,
         None, ("units", "calculator"), ("1.0.0",), ()),
        ("file-renamer", "File Renamer", "app", "utilities", "quiet-tools", "Rename thousands of files safely.", 299,
         None, ("files", "batch"), ("1.0.0",), ()),
        ("system-pulse", "System Pulse", "app", "utilities", "northwind-labs", "CPU, memory and disk at a glance.",
         0, None, ("monitoring", "system"), ("1.0.0", "1.1.0"), ()),
        ("lingo-cards", "Lingo Cards", "app", "education", "pixel-foundry", "Flashcards with spaced repetition.", 0,
         None, ("languages", "flashcards"), ("1.0.0",), ()),
        ("star-atlas", "Star Atlas", "app", "education", "pixel-foundry", "The night sky, offline.", 499, 1999,
         ("astronomy", "maps"), ("1.0.0",), ()),
        ("math-trainer", "Math Trainer", "app", "education", "demo-studio", "Mental arithmetic, daily.", 0, None,
         ("math",), ("1.0.0",), ()),
        ("type-tutor", "Type Tutor", "app", "education", "quiet-tools", "Learn to touch-type.", 0, None,
         ("typing",), ("1.0.0",), ()),
        ("dungeon-dash", "Dungeon Dash", "game", "games", "pixel-foundry", "A roguelike you finish on a lunch break.",
         799, 3499, ("roguelike", "pixel-art"), ("1.0.0", "1.1.0"), ()),
        ("orbit-golf", "Orbit Golf", "game", "games", "pixel-foundry", "Mini golf with gravity.", 299, None,
         ("puzzle", "physics"), ("1.0.0",), ()),
        ("word-weaver", "Word Weaver", "game", "games", "demo-studio", "Daily word puzzles.", 0, None,
         ("words", "puzzle"), ("1.0.0",), ()),
        ("tiny-tactics", "Tiny Tactics", "game", "games", "pixel-foundry", "Turn-based battles on tiny maps.", 1299,
         3999, ("strategy", "turn-based"), ("2.0.0",), ()),
        ("sky-racer", "Sky Racer", "game", "games", "northwind-labs", "Arcade flying through canyons.", 999, None,
         ("racing", "arcade"), ("1.0.0",), ()),
        ("chess-club", "Chess Club", "game", "games", "demo-studio", "Play, analyse, and learn openings.", 0, None,
         ("chess", "board"), ("1.0.0", "1.0.1"), ("*:443",)),
        ("farm-story", "Farm Story", "game", "games", "pixel-foundry", "Grow crops, befriend a town.", 1499, 4499,
         ("simulation", "cozy"), ("1.0.0",), ()),
        ("block-builder", "Block Builder", "game", "games", "northwind-labs", "Build anything, block by block.", 0,
         None, ("sandbox",), ("1.0.0",), ()),
        ("retro-arcade-pack", "Retro Arcade Pack", "game", "games", "demo-studio", "Ten classics, one download.",
         499, 1999, ("retro", "arcade"), ("1.0.0",), ()),
    ]
    return [DemoListing(slug=r[0], name=r[1], kind=r[2], category=r[3], publisher=r[4], summary=r[5], price=r[6],
                        physical=r[7], tags=r[8], versions=r[9], network=r[10]) for r in rows]


REVIEW_LINES = (
    (5, "Exactly what I needed", "Fast, simple and it just works."),
    (4, "Very good", "A couple of rough edges but I use it every day."),
    (3, "Fine", "Does the job. The settings could be clearer."),
    (5, "Great update", "The latest version fixed everything I cared about."),
    (2, "Needs work", "Crashed twice on import; support was helpful though."),
)
DEMO_REVIEWERS = tuple(f"fan{n}@mercato.test" for n in range(1, 6))


async def _principal(session: AsyncSession, email: str) -> Principal:
    user = await accounts.find_by_email(session, email)
    roles, grants = await access.grants_for_user(session, user.id)
    return Principal(user_id=user.id, email=user.email, roles=roles, grants=grants)


def _write_package(root: Path, item: DemoListing, version: str) -> Path:
    source = root / f"{item.slug}-{version}"
    (source / "bin").mkdir(parents=True)
    platforms = ["any"] if item.kind == "plugin" else ["linux-x64", "linux-arm64"]
    manifest = Manifest(
        package=PackageInfo(name=item.slug, version=version, kind=item.kind, summary=item.summary,
                            license="MIT" if item.price == 0 else "proprietary",
                            homepage=f"https://{item.publisher}.example/{item.slug}", changelog="CHANGELOG.md"),
        compatibility=Compatibility(host=">=1.0.0, <3.0.0", platforms=platforms),
        requirements=Requirements(memory_mb=128, disk_mb=20),
        permissions=Permissions(network=list(item.network), filesystem=["data"]),
        launch=Launch(entry=f"bin/{item.slug}"))
    (source / "mercato.toml").write_text(render_manifest(manifest), encoding="utf-8")
    (source / "CHANGELOG.md").write_text(f"# Changelog\n\n## {version}\n\n- Improvements and fixes.\n")
    (source / "README.md").write_text(f"# {item.name}\n\n{item.summary}\n")
    entry = source / "bin" / item.slug
    entry.write_text(f"#!/bin/sh\necho '{item.name} {version}'\n")
    entry.chmod(0o755)
    return build_package(source, output_dir=root / "dist")


async def load_catalog(rt: Runtime, password: str) -> list[str]:
    """Create the demo publishers, listings, versions and reviews that are missing."""
    created: list[str] = []
    rng = random.Random(7)
    async with rt.db.transaction() as session:
        for email in [p[2] for p in PUBLISHERS[1:]] + list(DEMO_REVIEWERS):
            if await accounts_repository.by_email(session, email) is None:
                await accounts.create_user(session, rt, email=email, password=password,
                                           display_name=email.split("@")[0].title(), roles=["user"])
        admin = await _principal(session, "admin@mercato.test")
        for slug, name, owner, verified in PUBLISHERS:
            if await publishers_repository.by_slug(session, slug) is None:
                await publishers.create(session, actor=admin, slug=slug, name=name,
                                        description=f"{name} makes software.",
                                        website=f"https://{slug}.example", owner_email=owner)
                created.append(f"publisher {slug}")
            if verified:
                await publishers.update(session, actor=admin, slug=slug, changes={"verified": True})
    with tempfile.TemporaryDirectory(prefix="mercato-demo-") as scratch:
        for item in _listings():
            await rt.foreground.quiet()  # a request in flight goes first (kit/foreground.py)
            async with rt.db.read_session() as session:
                exists = await catalog_repository.slug_taken(session, item.slug)
            if exists:
                continue
            await _create_listing(rt, Path(scratch), item)
            created.append(f"listing {item.slug}")
        for item in _listings():  # a transaction per listing: the writer is shared with the store's requests
            await rt.foreground.quiet()
            async with rt.db.transaction() as session:
                await _review(session, rng, item)
    return created


async def _create_listing(rt: Runtime, scratch: Path, item: DemoListing) -> None:
    owner = next(p[2] for p in PUBLISHERS if p[0] == item.publisher)
    offers = [{"delivery": "digital", "price": {"amount": item.price, "currency": rt.settings.currency}}]
    if item.physical is not None:
        offers.append({"delivery": "physical", "price": {"amount": item.physical, "currency": rt.settings.currency},
                       "stock": 25})
    async with rt.db.transaction() as session:
        developer = await _principal(session, owner)
        await catalog.create(session, actor=developer, currency=rt.settings.currency, fields={
            "publisher": item.publisher, "slug": item.slug, "name": item.name, "kind": item.kind,
            "summary": item.summary, "category": item.category, "tags": list(item.tags), "offers": offers,
            "homepage": f"https://{item.publisher}.example/{item.slug}", "license": "MIT",
            # the store's generated screenshots (web/artwork.py), by path: right at any address
            "screenshots": [f"/screenshots/{item.slug}/{n}.svg" for n in (1, 2, 3)],
            "description": f"## {item.name}\n\n{item.summary}\n\n- Works offline\n- No tracking\n"})
    for version in item.versions:
        await rt.foreground.quiet()
        # building the archive is CPU and file work: off the event loop the store serves from
        built = await asyncio.to_thread(_write_package, scratch, item, version)
        archive, report = await ingest(rt, built)
        async with rt.db.transaction() as session:
            developer = await _principal(session, owner)
            await publishing.record_upload(session, actor=developer, key=item.slug, archive=archive, report=report)
            await review.submit(session, actor=developer, key=item.slug, version=version, security_update=False,
                                note="")
            reviewer = await _principal(session, "reviewer@mercato.test")
            version_row = await publishing.get_version(session, developer,
                                                       await catalog.get_visible(session, developer, item.slug),
                                                       version)
            pending = await review.queue(session, actor=reviewer, statuses=["pending"], after=None, limit=100)
            mine = next(t for t in pending if t.version_id == version_row.id)
            await review.claim(session, actor=reviewer, task_id=mine.id)
            await review.decide(session, actor=reviewer, task_id=mine.id, outcome="approved", reason=None,
                                signer=rt.keys)


async def _review(session: AsyncSession, rng: random.Random, item: DemoListing) -> None:
    listing = await catalog_repository.by_key(session, item.slug)
    if listing is None or listing.rating_count:
        return
    for email in rng.sample(DEMO_REVIEWERS, k=rng.randint(1, 4)):
        fan = await _principal(session, email)
        await library.grant(session, user_id=fan.user_id, listing_id=listing.id, source="admin")
        stars, title, body = rng.choice(REVIEW_LINES)
        await ratings.create(session, actor=fan, key=item.slug, rating=stars, title=title, body=body)


