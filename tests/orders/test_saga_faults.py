"""Crash safety of the checkout saga (QUALITY F1): the store process dies (``os._exit``)
at each step of the saga — checkout before and after its commit, the debit and its
refusal, paid, the shortfall paid by the provider, the grant (a key handed out, a pool
run dry, a physical delivery), completion, failure, compensation, settlement — and is
started again without the failpoint. The end state must equal the fault-free run of the
same scenario in another database (orders per idempotency key, every ledger posting and
balance, entitlements, stock, licence keys, coupons, payments, notifications, events),
and the money invariants hold.

The scenario and the process are ``tests/support/saga_harness.py``; one fault-free baseline
per module, run as ``python -m``; the crashed and the restarted store are processes forked
from one that imported the store once (``saga_harness --serve``). Each case is two store
runs, so the file is ``slow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mercato.kit.db import Database
from tests.support.backends import fresh_database
from tests.support.invariants import (
    assert_entitlements_follow_orders,
    assert_money_invariants,
    assert_quiescent,
)
from tests.support.saga_harness import snapshot

SEED = 7

# (failpoint, which hit crashes): the harness places its orders one after another, so the
# N-th hit is always the same order (saga_harness.Scenario.orders).
FAILPOINTS = [
    ("saga.after_order_created", 5),      # the physical order written, stock reserved, not committed
    ("saga.after_checkout_commit", 2),    # committed, no reply stored: the retry finds the order by key
    ("saga.after_debit", 1),              # the wallet debit posted, not committed
    ("saga.after_debit_refused", 1),      # the shortfall order's refusal
    ("saga.after_paid", 3),               # → paid with order.paid
    ("saga.after_shortfall_paid", 1),     # the provider's money arrived, the order debited and paid
    ("saga.after_grant", 2),              # entitled, a licence key handed out
    ("saga.after_grant", 4),              # refused: the key pool is empty
    ("saga.after_completion", 1),         # → completed with order.completed
    ("saga.after_failure", 1),            # the refused order → failed
    ("saga.after_compensation", 1),       # the escrow back to the buyer
    ("saga.after_settlement", 6),         # escrow paid out to the publisher and the platform
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # the first case also runs the baseline


def _environment(failpoints: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    if failpoints:
        env["MERCATO_FAILPOINTS"] = failpoints
    return env


def _run_harness(database_url: str, data_dir: Path, *, failpoints: str | None = None,
                 timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m tests.support.saga_harness`` as a process of its own."""
    return subprocess.run([sys.executable, "-m", "tests.support.saga_harness", database_url, "--seed", str(SEED),
                           "--data-dir", str(data_dir)], check=False, env=_environment(failpoints),
                          capture_output=True, text=True, timeout=timeout)


class Forks:
    """``saga_harness --serve``: each run a fresh process forked from one that imported the
    store once, so a crash and a restart cost their work rather than the imports twice."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.saga_harness", "--serve"],
                                        env=_environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()

    def run(self, database_url: str, data_dir: Path, *, failpoints: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        log = data_dir.parent / f"harness-{uuid.uuid4().hex[:8]}.log"
        request = {"database_url": database_url, "seed": SEED, "data_dir": str(data_dir), "failpoints": failpoints,
                   "log": str(log)}
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        assert answer, f"the harness server died: {self.close()}"
        return subprocess.CompletedProcess(["saga_harness", failpoints or "-"], json.loads(answer)["exit"],
                                           stdout="", stderr=log.read_text() if log.exists() else "")

    def close(self) -> str:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read()[-2000:]


@pytest.fixture(scope="module")
def forks() -> Iterator[Forks]:
    server = Forks()
    yield server
    server.close()


def _failure(run: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in run.stderr.splitlines() if " request " not in line]  # not the access log
    return "\n".join(lines[-40:])


async def _assert_invariants(database_url: str) -> None:
    db = Database(database_url)
    try:
        await assert_money_invariants(db)
        await assert_entitlements_follow_orders(db)
        await assert_quiescent(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def fault_free(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("saga-baseline")
    with fresh_database(database_template, directory) as url:
        run = _run_harness(url, directory / "data")
        assert run.returncode == 0, _failure(run)
        asyncio.run(_assert_invariants(url))
        return asyncio.run(snapshot(url))


def test_the_fault_free_run_covers_every_branch_of_the_saga(fault_free: dict[str, Any]) -> None:
    """The baseline is the scenario the harness promises, so the comparisons below mean something."""
    statuses = {key.removeprefix(f"saga-{SEED}-"): order["status"] for key, order in fault_free["orders"].items()}
    assert statuses == {"ann-app": "completed", "ann-keyed": "completed", "bob-keyed": "completed",
                        "cid-keyed": "failed", "bob-box": "completed", "dee-app": "completed",
                        "cid-coupon": "completed"}
    orders = fault_free["orders"]
    assert orders[f"saga-{SEED}-cid-coupon"]["discount"] > 0 and orders[f"saga-{SEED}-cid-coupon"]["coupon"]
    assert [payment[1:3] for payment in fault_free["payments"]] == [("order", "succeeded")]
    assert sorted(fault_free["licence_keys"].values()) == [f"order:saga-{SEED}-ann-keyed/0",
                                                          f"order:saga-{SEED}-bob-keyed/0"]
    assert fault_free["listings"][f"saga-box-{SEED}"]["stock"] == 3
    assert fault_free["balances"]["orders_escrow"] == 0
    assert any(kind == "refund" for kind, _, _ in fault_free["transactions"])
    assert fault_free["duplicate_references"] == []


@pytest.mark.parametrize(("failpoint", "hit"), FAILPOINTS,
                         ids=[f"{name.removeprefix('saga.')}-hit{hit}" for name, hit in FAILPOINTS])
async def test_a_crash_at_a_saga_step_then_a_restart_ends_as_the_fault_free_run(
        failpoint: str, hit: int, database_url: str, tmp_path: Path, fault_free: dict[str, Any],
        forks: Forks) -> None:
    data_dir = tmp_path / "data"
    crashed = await asyncio.to_thread(forks.run, database_url, data_dir, failpoints=f"{failpoint}=crash@{hit}")
    assert crashed.returncode == 137, _failure(crashed)
    assert f"failpoint {failpoint}: crash" in crashed.stderr
    restarted = await asyncio.to_thread(forks.run, database_url, data_dir)
    assert restarted.returncode == 0, _failure(restarted)
    after = await snapshot(database_url)
    for part, expected in fault_free.items():  # part by part, for a readable difference
        assert after[part] == expected, part
    await _assert_invariants(database_url)
