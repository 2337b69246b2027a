"""Demo data: fixed accounts (and, as the catalog grows, a realistic store), created
through the services like any other data. Safe to run again: what exists is kept."""

from __future__ import annotations

from dataclasses import dataclass

from mercato.access import service as access
from mercato.access.principal import Principal
from mercato.accounts import repository as accounts_repository
from mercato.accounts import service as accounts
from mercato.app.runtime import Runtime
from mercato.demo.catalog import load_catalog
from mercato.publishers import service as publishers

DEMO_PASSWORD = "mercato-demo-password"


@dataclass(frozen=True)
class DemoAccount:
    email: str
    display_name: str
    roles: tuple[str, ...]


DEMO_ACCOUNTS = (
    DemoAccount("admin@mercato.test", "Demo Admin", ("user", "super_admin")),
    DemoAccount("reviewer@mercato.test", "Demo Reviewer", ("user", "reviewer")),
    DemoAccount("dev@mercato.test", "Demo Developer", ("user", "developer")),
    DemoAccount("user@mercato.test", "Demo User", ("user",)),
)
DEMO_PUBLISHER = "demo-studio"


async def load_demo(rt: Runtime) -> list[str]:
    """Create what is missing; returns a line per thing created."""
    created: list[str] = []
    async with rt.db.transaction() as session:
        for account in DEMO_ACCOUNTS:
            if await accounts_repository.by_email(session, account.email) is None:
                await accounts.create_user(session, rt, email=account.email, password=DEMO_PASSWORD,
                                           display_name=account.display_name, roles=list(account.roles))
                created.append(f"account {account.email}")
        admin = await accounts.find_by_email(session, "admin@mercato.test")
        roles, grants = await access.grants_for_user(session, admin.id)
        actor = Principal(user_id=admin.id, email=admin.email, roles=roles, grants=grants)
        if await publishers.repository.by_slug(session, DEMO_PUBLISHER) is None:
            await publishers.create(session, actor=actor, slug=DEMO_PUBLISHER, name="Demo Studio",
                                    description="Makes the demo apps, plugins and games of this store.",
                                    website="https://demo-studio.example", owner_email="dev@mercato.test")
            created.append(f"publisher {DEMO_PUBLISHER}")

    created += await load_catalog(rt, DEMO_PASSWORD)
    return created
