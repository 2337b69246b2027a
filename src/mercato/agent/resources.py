"""What the instance offers, reported on every heartbeat: the server checks a package's
``[compatibility]`` and ``[requirements]`` against it before it creates a task."""

from __future__ import annotations

import os
import platform
import shutil
import socket
from pathlib import Path
from typing import Any

from mercato.packages.manifest import PLATFORMS

HOST_VERSION = "2.0.0"
"""The host API the ``files`` driver implements (what a manifest's ``[compatibility] host`` is
compared with). Override with ``mercato agent --host-version``."""

_MACHINES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
_SYSTEMS = {"linux": "linux", "darwin": "macos", "windows": "windows"}


def current_platform() -> str:
    """This machine as a manifest names platforms (``linux-x64``, ``macos-arm64``, …)."""
    system = _SYSTEMS.get(platform.system().lower(), platform.system().lower())
    machine = _MACHINES.get(platform.machine().lower(), platform.machine().lower())
    return f"{system}-{machine}"


def memory_mb() -> tuple[int | None, int | None]:
    """(total, available) memory in MiB, when the system says."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) // 1024
        return fields.get("MemTotal"), fields.get("MemAvailable", fields.get("MemFree"))
    except (OSError, ValueError, IndexError):
        pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        return total, None
    except (ValueError, OSError, AttributeError):
        return None, None


def platform_for_store() -> str | None:
    """This machine's platform if it is one a manifest can name, else None (the store then
    only accepts packages for ``any`` platform)."""
    name = current_platform()
    return name if name in PLATFORMS else None


def resources(root: Path, *, host: str | None = None) -> dict[str, Any]:
    """``resources`` of a heartbeat: free memory and free disk under ``root`` (MiB), and the
    host name launch URLs use."""
    total_memory, available_memory = memory_mb()
    return {
        "memory_mb": available_memory if available_memory is not None else total_memory,
        "disk_mb": shutil.disk_usage(root).free // (1024 * 1024),
        "host": (host or socket.gethostname())[:255] or None,
    }
