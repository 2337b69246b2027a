"""Matrix rows (A2/A3/A6) of installs: instances, installations, tasks, the agent routes and
the runtime snapshot.

Every signed-in principal registers and manages their own instances (own); admins read
everyone's (any) but manage only their own, so someone else's instance is a 404 to them
for changes. The agent routes take instance tokens only: every user credential gets 403.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.access.matrix import (
    ADMIN,
    ADMINS,
    SUPER,
    V1,
    Make,
    Row,
    World,
    caller,
    only,
    signed_in,
    static,
)
from tests.access.matrix_rows_library import a_listing

INSTALLATION = f"{V1}/installations/{{installation_id}}"
TASK = f"{V1}/tasks/{{task_id}}"


async def an_instance(world: World, owner_id: str | None = None) -> str:
    owner = next(actor for actor in world.who.values() if actor.id == owner_id) if owner_id else None
    owner = owner or await world.actors.create()
    response = await world.client.post(f"{V1}/instances", headers=owner.headers, json={"name": "matrix"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def on_instance(whose: str, suffix: str = "", **kwargs: Any) -> Make:
    """A request about the caller's own instance (``own``) or a stranger's (``other``)."""
    async def make(world: World, who: str) -> dict[str, Any]:
        instance_id = await an_instance(world, caller(world, who).id if whose == "own" else None)
        return {"url": f"{V1}/instances/{instance_id}{suffix}", **kwargs}

    return make


def install_unreleased(whose: str) -> Make:
    """Install a published listing that has no approved version yet (422 for its owner)."""
    async def make(world: World, who: str) -> dict[str, Any]:
        instance_id = await an_instance(world, caller(world, who).id if whose == "own" else None)
        listing = await a_listing(world)
        return {"url": f"{V1}/instances/{instance_id}/installations", "json": {"listing_id": listing["id"]}}

    return make


NOBODY = only(status=0)  # no user credential opens the agent routes: 403, anonymous 401
EVERYONE_READS = {**signed_in(404), ADMIN: 200, SUPER: 200}

MATRIX_ROWS: list[Row] = [
    Row("register an instance", "POST", f"{V1}/instances", signed_in(201),
        static(f"{V1}/instances", json={"name": "laptop"})),
    Row("list my instances", "GET", f"{V1}/instances", signed_in(200), static(f"{V1}/instances")),
    Row("read own instance", "GET", f"{V1}/instances/{{instance_id}}", signed_in(200), on_instance("own")),
    Row("read someone else's instance (A3; admins read all)", "GET", f"{V1}/instances/{{instance_id}}",
        EVERYONE_READS, on_instance("other")),
    Row("delete own instance", "DELETE", f"{V1}/instances/{{instance_id}}", signed_in(204), on_instance("own")),
    Row("delete someone else's instance (A3)", "DELETE", f"{V1}/instances/{{instance_id}}", signed_in(404),
        on_instance("other")),
    Row("list installations of own instance", "GET", f"{V1}/instances/{{instance_id}}/installations",
        signed_in(200), on_instance("own", "/installations")),
    Row("list installations of someone else's instance (A3)", "GET", f"{V1}/instances/{{instance_id}}/installations",
        EVERYONE_READS, on_instance("other", "/installations")),
    Row("install a listing without an approved version", "POST", f"{V1}/instances/{{instance_id}}/installations",
        signed_in(422), install_unreleased("own")),
    Row("install on someone else's instance (A3)", "POST", f"{V1}/instances/{{instance_id}}/installations",
        signed_in(404), install_unreleased("other")),
    Row("read an unknown installation", "GET", INSTALLATION, signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}")),
    Row("open an unknown installation", "GET", f"{INSTALLATION}/open", signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}/open")),
    Row("stop an unknown installation", "POST", f"{INSTALLATION}/stop", signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}/stop")),
    Row("upgrade an unknown installation", "POST", f"{INSTALLATION}/upgrade", signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}/upgrade")),
    Row("clone an unknown installation", "POST", f"{INSTALLATION}/clone", signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}/clone", json={"name": "copy"})),
    Row("resume an unknown installation", "POST", f"{INSTALLATION}/resume", signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}/resume")),
    Row("uninstall an unknown installation", "POST", f"{INSTALLATION}/uninstall", signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}/uninstall")),
    Row("auto-upgrade an unknown installation", "PATCH", INSTALLATION, signed_in(404),
        static(f"{V1}/installations/{uuid.uuid4()}", json={"auto_upgrade": True})),
    Row("list my tasks", "GET", f"{V1}/tasks", signed_in(200), static(f"{V1}/tasks")),
    Row("read an unknown task", "GET", TASK, signed_in(404), static(f"{V1}/tasks/{uuid.uuid4()}")),
    Row("cancel an unknown task", "POST", f"{TASK}/cancel", signed_in(404),
        static(f"{V1}/tasks/{uuid.uuid4()}/cancel")),
    Row("retry an unknown task", "POST", f"{TASK}/retry", signed_in(404), static(f"{V1}/tasks/{uuid.uuid4()}/retry")),
    Row("read the runtime snapshot", "GET", f"{V1}/admin/runtime", only(*ADMINS, status=200),
        static(f"{V1}/admin/runtime")),
    # the agent: user credentials never open these
    Row("agent heartbeat with a user credential", "POST", f"{V1}/agent/heartbeat", NOBODY,
        static(f"{V1}/agent/heartbeat", json={"inventory": []})),
    Row("agent task fetch with a user credential", "GET", f"{V1}/agent/tasks", NOBODY, static(f"{V1}/agent/tasks")),
    Row("agent one-task fetch with a user credential", "GET", f"{V1}/agent/tasks/{{task_id}}", NOBODY,
        static(f"{V1}/agent/tasks/{uuid.uuid4()}")),
    Row("agent artifact download with a user credential", "GET", f"{V1}/agent/tasks/{{task_id}}/artifact", NOBODY,
        static(f"{V1}/agent/tasks/{uuid.uuid4()}/artifact")),
    Row("agent progress with a user credential", "POST", f"{V1}/agent/tasks/{{task_id}}/progress", NOBODY,
        static(f"{V1}/agent/tasks/{uuid.uuid4()}/progress", json={"percent": 5})),
    Row("agent result with a user credential", "POST", f"{V1}/agent/tasks/{{task_id}}/result", NOBODY,
        static(f"{V1}/agent/tasks/{uuid.uuid4()}/result", json={"outcome": "succeeded"})),
]
