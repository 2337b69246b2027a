"""Policy rows (A1) of installs: instances, installations, tasks, the agent and the runtime snapshot."""

from __future__ import annotations

V1 = "/api/v1"
INSTALLATION = f"{V1}/installations/{{installation_id}}"

POLICY_ROWS: dict[tuple[str, str], str] = {
    ("POST", f"{V1}/instances"): "instance:manage",
    ("GET", f"{V1}/instances"): "instance:read",
    ("GET", f"{V1}/instances/{{instance_id}}"): "instance:read",
    ("DELETE", f"{V1}/instances/{{instance_id}}"): "instance:manage",
    ("GET", f"{V1}/instances/{{instance_id}}/installations"): "instance:read",
    ("POST", f"{V1}/instances/{{instance_id}}/installations"): "installation:manage",
    ("GET", INSTALLATION): "instance:read",
    ("PATCH", INSTALLATION): "installation:manage",
    ("GET", f"{INSTALLATION}/open"): "instance:read",
    ("POST", f"{INSTALLATION}/upgrade"): "installation:manage",
    ("POST", f"{INSTALLATION}/clone"): "installation:manage",
    ("POST", f"{INSTALLATION}/uninstall"): "installation:manage",
    ("POST", f"{INSTALLATION}/stop"): "installation:manage",
    ("POST", f"{INSTALLATION}/resume"): "installation:manage",
    ("GET", f"{V1}/tasks"): "task:read",
    ("GET", f"{V1}/tasks/{{task_id}}"): "task:read",
    ("POST", f"{V1}/tasks/{{task_id}}/cancel"): "task:manage",
    ("POST", f"{V1}/tasks/{{task_id}}/retry"): "task:manage",
    # the agent: instance tokens only
    ("POST", f"{V1}/agent/heartbeat"): "agent:connect",
    ("GET", f"{V1}/agent/tasks"): "agent:connect",
    ("GET", f"{V1}/agent/tasks/{{task_id}}"): "agent:connect",
    ("GET", f"{V1}/agent/tasks/{{task_id}}/artifact"): "agent:connect",
    ("POST", f"{V1}/agent/tasks/{{task_id}}/progress"): "agent:connect",
    ("POST", f"{V1}/agent/tasks/{{task_id}}/result"): "agent:connect",
    ("GET", f"{V1}/admin/runtime"): "runtime:read",
}
