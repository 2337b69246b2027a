"""Installs (PRODUCT I1–I6, DOMAIN.md "Installation and task"): what other modules use of it.

A user registers an instance, installs packages on it, and the instance's agent carries
out the tasks. The work is split by use case; other modules import this surface only
(the ownership contract), while the modules of installs import each other directly:

- ``instances``: registering, listing and deleting instances, their heartbeat; ``Scope``;
- ``installations``: install, upgrade, clone, uninstall/stop/resume, open;
- ``tasks``: the owner's view of tasks, cancel and retry;
- ``agent_tasks``: handing tasks to the agent, its progress and results, the artifact;
- ``correction``: status correction and the runtime snapshot (I5);
- ``updates``: update notices and automatic upgrades (I6);
- ``checks``: entitlement, version, requirement and configuration checks;
- ``transitions``: the state machines of installations and tasks, and their events.
"""

from __future__ import annotations

from mercato.installs.installations import (
    clone,
    get_installation,
    install,
    installations_of,
    operate,
    upgrade,
)
from mercato.installs.instances import Scope, delete_instance, get_instance, instances, register_instance
from mercato.installs.tasks import get_task, tasks
from mercato.installs.transitions import TERMINAL_TASK

__all__ = [
    "TERMINAL_TASK", "Scope", "clone", "delete_instance", "get_installation", "get_instance", "get_task", "install",
    "installations_of", "instances", "operate", "register_instance", "tasks", "upgrade",
]
