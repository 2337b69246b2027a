"""PERF-8: a 100 MB package uploaded through the API and downloaded back, with the server's
RSS sampled throughout; download throughput against a static file server on the same file.

    python -m bench.artifacts [--quick] [--size-mb 100] [--database postgresql|sqlite]
                              [--pg-url postgresql+asyncpg://…] [--json out.json]

A fresh store (``mercato migrate`` + ``mercato demo``; PostgreSQL unless ``--database
sqlite``) and one Mercato uvicorn process (one worker, log level warning). The package is
built by ``mercato.packages.scaffold.build_package`` from a skeleton plus a file of random
(incompressible) bytes, so the archive is about ``--size-mb`` MB. The demo developer
signs in, creates a listing, uploads the archive (multipart ``file``) and downloads the
version back (as a member of its publisher); ``curl`` moves the bytes when it is installed
(httpx otherwise), so the client costs little CPU. The server's RSS is read from
``/proc/<pid>/status`` every 10 ms; growth = peak during the transfer − RSS just before.

The baseline is a Starlette ``FileResponse`` app under the same uvicorn settings serving
the same archive file; downloads alternate between the two; the ratio is the median of the
per-run ratios, with the server CPU seconds per download beside it.
Bars: RSS growth < 64 MB for each direction; download ≥ 0.5 × the static server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.servers import (
    DEFAULT_PG_URL,
    RssSampler,
    Server,
    cpu_seconds,
    demo_store,
    round_ratios,
    running,
    wait_idle,
)

BARS = {"rss_growth_mb": 64.0, "download_ratio": 0.5}
MB = 1024 * 1024
DEVELOPER = ("dev@mercato.test", "mercato-demo-password")
PUBLISHER = "demo-studio"


def _log(message: str) -> None:
    print(f"[artifacts] {message}", file=sys.stderr, flush=True)


def build_big_package(directory: Path, name: str, size_mb: int) -> Path:
    """A valid package whose archive is about ``size_mb`` MB: a skeleton plus random bytes."""
    from mercato.packages.scaffold import build_package, init_package

    source = init_package(directory, name)
    (source / "data").mkdir()
    with open(source / "data" / "payload.bin", "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    return build_package(source, output_dir=directory / "dist")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MB):
            digest.update(block)
    return digest.hexdigest()


def _upload(url: str, token: str, path: Path) -> tuple[int, float, str]:
    """POST the archive as multipart ``file``; (status, seconds, body)."""
    started = time.perf_counter()
    if shutil.which("curl"):
        result = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
                                 "-H", f"Authorization: Bearer {token}",
                                 "-F", f"file=@{path};type=application/gzip", url],
                                capture_output=True, text=True, check=True, timeout=600)
        body, _, status = result.stdout.rpartition("\n")
        return int(status), time.perf_counter() - started, body
    with open(path, "rb") as handle:
        response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=600,
                              files={"file": (path.name, handle, "application/gzip")})
    return response.status_code, time.perf_counter() - started, response.text


def _download(url: str, headers: dict[str, str], target: str = os.devnull) -> tuple[int, int, float]:
    """GET into ``target``; (status, bytes, seconds)."""
    started = time.perf_counter()
    if shutil.which("curl"):
        command = ["curl", "-sS", "-o", target, "-w", "%{http_code} %{size_download}"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        status, size = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                                      timeout=600).stdout.split()
        return int(status), int(size), time.perf_counter() - started
    size = 0
    with httpx.stream("GET", url, headers=headers, timeout=600) as response, open(target, "wb") as out:
        for block in response.iter_bytes(MB):
            size += len(block)
            out.write(block)
    return response.status_code, size, time.perf_counter() - started


def run(*, quick: bool = False, size_mb: int = 100, database: str = "postgresql", runs: int | None = None,
        pg_url: str = DEFAULT_PG_URL) -> dict[str, Any]:
    runs = runs or (2 if quick else 3)
    _log(f"preparing a demo store on {database}")
    with demo_store(database, pg_url) as store, tempfile.TemporaryDirectory(prefix="mercato-bench-pkg-") as scratch:
        name = f"bench-big-{os.getpid()}"
        started = time.perf_counter()
        archive = build_big_package(Path(scratch), name, size_mb)
        size = archive.stat().st_size
        sha = _sha256(archive)
        _log(f"built {archive.name}: {size / MB:.1f} MiB in {time.perf_counter() - started:.1f} s")
        mercato = store.server("mercato")
        static = Server("static", "bench.baselines:static_file", env={"BENCH_STATIC_FILE": str(archive)},
                        log_dir=store.data_dir)
        with running(mercato, static):
            _log(f"the embedded bus settled after {wait_idle(mercato.pid):.0f} s")
            api = mercato.base_url + "/api/v1"
            login = httpx.post(f"{api}/auth/login", json={"email": DEVELOPER[0], "password": DEVELOPER[1]}, timeout=60)
            login.raise_for_status()
            token = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            created = httpx.post(f"{api}/listings", headers=auth, timeout=60, json={
                "publisher": PUBLISHER, "slug": name, "name": "Bench Big Package", "kind": "app",
                "summary": "A 100 MB package for PERF-8."})
            if created.status_code != 201:
                raise RuntimeError(f"creating the listing answered {created.status_code}: {created.text}")
            wait_idle(mercato.pid)
            with RssSampler(mercato.pid) as upload_rss:
                status, upload_seconds, body = _upload(f"{api}/listings/{name}/versions", token, archive)
            if status != 201:
                raise RuntimeError(f"the upload answered {status}: {body[:2000]}")
            version = json.loads(body)["version"]
            _log(f"upload: {size / MB / upload_seconds:.0f} MiB/s, RSS +{upload_rss.growth / MB:.1f} MiB "
                 f"(from {upload_rss.before / MB:.0f} MiB)")
            download_url = f"{api}/listings/{name}/versions/{version}/download"
            # Integrity once (not timed): the bytes that come back are the bytes that went in.
            copy = Path(scratch) / "downloaded"
            with RssSampler(mercato.pid) as first_rss:
                status, _, _ = _download(download_url, auth, str(copy))
            if status != 200 or _sha256(copy) != sha:
                raise RuntimeError(f"the download answered {status} or differs from the upload")
            copy.unlink()
            # the static baseline warms its page cache too
            status, _, _ = _download(static.base_url + "/file", {}, str(copy))
            copy.unlink()
            downloads: list[dict[str, Any]] = []
            baseline: list[dict[str, Any]] = []
            for number in range(1, runs + 1):
                wait_idle(mercato.pid)
                cpu_before = cpu_seconds(mercato.pid)
                with RssSampler(mercato.pid) as rss:
                    status, got, seconds = _download(download_url, auth)
                cpu = cpu_seconds(mercato.pid) - cpu_before
                if status != 200 or got != size:
                    raise RuntimeError(f"download {number} answered {status} with {got} of {size} bytes")
                downloads.append({"seconds": round(seconds, 3), "mib_per_s": round(size / MB / seconds, 1),
                                  "cpu_s": round(cpu, 3),
                                  "rss_before_mib": round(rss.before / MB, 1),
                                  "rss_growth_mib": round(rss.growth / MB, 1)})
                cpu_before = cpu_seconds(static.pid)
                with RssSampler(static.pid) as static_rss:
                    status, got, seconds = _download(static.base_url + "/file", {})
                cpu = cpu_seconds(static.pid) - cpu_before
                if status != 200 or got != size:
                    raise RuntimeError(f"static download {number} answered {status} with {got} of {size} bytes")
                baseline.append({"seconds": round(seconds, 3), "mib_per_s": round(size / MB / seconds, 1),
                                 "cpu_s": round(cpu, 3),
                                 "rss_growth_mib": round(static_rss.growth / MB, 1)})
                _log(f"download {number}/{runs}: mercato {downloads[-1]['mib_per_s']:.0f} MiB/s "
                     f"(RSS +{downloads[-1]['rss_growth_mib']:.1f} MiB), static {baseline[-1]['mib_per_s']:.0f} MiB/s")
        warnings = list(store.warnings)
    mercato_rate = statistics.median(d["mib_per_s"] for d in downloads)
    static_rate = statistics.median(d["mib_per_s"] for d in baseline)
    ratios = round_ratios(downloads, baseline, "mib_per_s")
    upload_growth = upload_rss.growth / MB
    download_growth = max([first_rss.growth / MB] + [d["rss_growth_mib"] for d in downloads])
    ratio = statistics.median(ratios)
    result = {
        "database": database, "archive_mib": round(size / MB, 1), "client": "curl" if shutil.which("curl") else "httpx",
        "bars": BARS, "warnings": warnings,
        "upload": {"seconds": round(upload_seconds, 2), "mib_per_s": round(size / MB / upload_seconds, 1),
                   "rss_before_mib": round(upload_rss.before / MB, 1), "rss_peak_mib": round(upload_rss.peak / MB, 1),
                   "rss_growth_mib": round(upload_growth, 1), "rss_after_mib": round(upload_rss.after / MB, 1)},
        "first_download": {"rss_before_mib": round(first_rss.before / MB, 1),
                           "rss_growth_mib": round(first_rss.growth / MB, 1)},
        "downloads": downloads, "static_downloads": baseline,
        "download_mib_per_s": mercato_rate, "static_mib_per_s": static_rate, "download_ratio_per_run": ratios,
        "download_cpu_s": statistics.median(d["cpu_s"] for d in downloads),
        "static_cpu_s": statistics.median(d["cpu_s"] for d in baseline),
    }
    result["PERF-8"] = {"upload_rss_growth_mib": round(upload_growth, 1),
                        "download_rss_growth_mib": round(download_growth, 1), "download_ratio": round(ratio, 3),
                        "pass": bool(upload_growth < BARS["rss_growth_mb"] and download_growth < BARS["rss_growth_mb"]
                                     and ratio >= BARS["download_ratio"])}
    return result


def report_lines(results: dict[str, Any]) -> list[str]:
    p = results["PERF-8"]
    return [
        f"PERF-8 ratio={p['download_ratio']:.2f} bar={BARS['download_ratio']} "
        f"rss_upload=+{p['upload_rss_growth_mib']:.1f}MiB rss_download=+{p['download_rss_growth_mib']:.1f}MiB "
        f"bar=<{BARS['rss_growth_mb']:g}MiB {'PASS' if p['pass'] else 'FAIL'}",
        f"  {results['archive_mib']:.0f} MiB archive on {results['database']}: upload "
        f"{results['upload']['mib_per_s']:.0f} MiB/s; download {results['download_mib_per_s']:.0f} MiB/s vs static "
        f"{results['static_mib_per_s']:.0f} MiB/s; server CPU per download {results['download_cpu_s']:.2f} s vs static "
        f"{results['static_cpu_s']:.2f} s; per-run ratios {results['download_ratio_per_run']}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two downloads each instead of three")
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin URL of the PostgreSQL server")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    results = run(quick=args.quick, size_mb=args.size_mb, database=args.database, pg_url=args.pg_url)
    for line in report_lines(results):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
