"""HTTP load: ``wrk`` when it is installed (``apt-get install wrk``), otherwise a small asyncio
load generator over raw keep-alive sockets (this file), with the same result shape.

    python -m bench.load URL [-c 64] [-d 10] [-H 'If-None-Match: "…"']

Both run closed loops: ``connections`` keep-alive connections, each sending its next
request as soon as the previous answer is read. The Python generator is slower than wrk
and shares the CPU with the server, so its figures are lower; ratios stay comparable as
long as baseline and Mercato are measured with the same generator (``tool`` says which).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

# wrk's done() hook: the numbers as one JSON line (latency in microseconds).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d}\\n', summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class LoadResult:
    tool: str
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # transport errors and statuses >= 400
    p95_ms: float = 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_load(url: str, *, connections: int, duration: float, headers: dict[str, str] | None = None,
             threads: int | None = None, tool: str | None = None, paths: list[str] | None = None) -> LoadResult:
    """One closed-loop run against ``url`` (a GET). ``tool``: "wrk", "python" or None (wrk if installed).
    ``paths``: request these paths (with their query) of ``url``'s server in turn instead of ``url``'s own."""
    tool = tool or ("wrk" if have_wrk() else "python")
    if tool == "wrk":
        return _wrk(url, connections=connections, duration=duration, headers=headers or {},
                    threads=threads or min(2, connections), paths=paths)
    return asyncio.run(_python_load(url, connections=connections, duration=duration, headers=headers or {},
                                    paths=paths))


def _lua_string(text: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in "/?&=-_.%+~ " else f"\\{ord(c):03d}" for c in text) + '"'


def _rotation(paths: list[str]) -> str:
    """wrk's request() hook: the paths in turn (each thread from its own start)."""
    return ("local paths = {" + ", ".join(_lua_string(p) for p in paths) + "}\n"
            "local next_path = 0\n"
            "request = function()\n"
            "  next_path = next_path % #paths + 1\n"
            "  return wrk.format(nil, paths[next_path])\n"
            "end\n")


def _wrk(url: str, *, connections: int, duration: float, headers: dict[str, str], threads: int,
         paths: list[str] | None = None) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT + (_rotation(paths) if paths else ""))
    try:
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
                   "-s", script.name]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                                timeout=duration + 60).stdout
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next(text for text in output.splitlines() if text.startswith("BENCH-JSON "))
    raw = json.loads(line.removeprefix("BENCH-JSON "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return LoadResult("wrk", connections, raw["requests"], round(seconds, 3), round(raw["requests"] / seconds, 1),
                      raw["p50_us"] / 1000, raw["p90_us"] / 1000, raw["p99_us"] / 1000, raw["max_us"] / 1000, errors,
                      raw["p95_us"] / 1000)


# --- the Python generator ----------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _python_load(url: str, *, connections: int, duration: float, headers: dict[str, str],
                       paths: list[str] | None = None) -> LoadResult:
    parts = urlsplit(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
                for path in paths or [parts.path + (f"?{parts.query}" if parts.query else "")]]
    turn = itertools.cycle(requests)
    latencies: list[float] = []
    errors = 0
    deadline = 0.0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            while (now := time.perf_counter()) < deadline:
                writer.write(next(turn))
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
                    continue
                latencies.append(time.perf_counter() - now)
                if status >= 400:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(connection() for _ in range(connections)))
    seconds = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 3)

    return LoadResult("python", connections, len(latencies), round(seconds, 3), round(len(latencies) / seconds, 1),
                      pct(50), pct(90), pct(99), round(ordered[-1] * 1000, 3), errors, pct(95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=10)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--tool", choices=["wrk", "python"])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    print(json.dumps(run_load(args.url, connections=args.connections, duration=args.duration, headers=headers,
                              tool=args.tool).as_dict(), indent=2))


if __name__ == "__main__":
    main()
