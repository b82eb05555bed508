"""The demo order workflow (workers/orders.py + workers/payments.py) end to end over HTTP."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

# the orders and payments tables of wrangler_like.toml, alone
CONFIG = """
[[workers]]
name = "orders"
main = "orders.py"
workflows = [{ name = "order", binding = "ORDER", class_name = "OrderWorkflow" }]
durable_objects.bindings = [{ name = "STOCK", class_name = "Stock" }]
kv_namespaces = [{ binding = "RECEIPTS", id = "receipts" }]
services = [{ binding = "PAYMENTS", service = "payments" }]

[[workers]]
name = "payments"
main = "payments.py"
kv_namespaces = [{ binding = "CHARGES", id = "charges" }]
"""


def quiet_logs(s: Any) -> str:
    """The server's log without the polling requests, for a failure message."""
    return "\n".join(line for line in s.logs().splitlines() if "GET /orders" not in line)[-4000:]


def test_order_workflow_demo(dev: Any, tmp_path: Path) -> None:
    for name in ("orders.py", "payments.py"):
        shutil.copy(ROOT / "workers" / name, tmp_path / name)
    s = dev({"wrangler_like.toml": CONFIG}, "--in-memory", "--no-reload")
    host = {"host": "orders.localhost"}
    started = s.post("/orders", headers=host, json={"id": "o-1", "items": {"tea": 2, "mug": 1},
                                                   "delivery_window": "1 second"})
    assert started.status_code == 202, started.text
    assert started.json()["id"] == "o-1"
    deadline = time.monotonic() + 20
    while s.get("/orders/o-1", headers=host).json()["status"] != "waiting" or not any(
            st["name"] == "wait for shipment"
            for st in s.api("GET", "/workflows/order/instances/o-1")["result"]["steps"]):
        assert time.monotonic() < deadline, quiet_logs(s)
        time.sleep(0.1)
    steps = s.api("GET", "/workflows/order/instances/o-1")["result"]["steps"]
    charge = next(st for st in steps if st["name"] == "charge")
    assert [a["success"] for a in charge["attempts"]] == [False, False, True]  # the flaky gateway
    assert "payment gateway busy" in charge["attempts"][0]["error"]["message"]
    assert {st["name"] for st in steps} >= {"validate", "price mug", "price tea", "reserve stock"}
    assert s.post("/orders/o-1/ship", headers=host, json={"carrier": "ups"}).status_code == 202
    while s.get("/orders/o-1", headers=host).json()["status"] != "complete":
        assert time.monotonic() < deadline, quiet_logs(s)
        time.sleep(0.1)
    receipt = s.get("/orders/o-1/receipt", headers=host).json()
    assert receipt["total_cents"] == 2 * 450 + 1200 and receipt["carrier"] == "ups"
    assert receipt["charge"].startswith("ch_")
    assert s.get("/stock", headers=host).json() == {"mug": 19, "tea": 18}
    empty = s.post("/orders", headers=host, json={"id": "o-2", "items": {}})
    assert empty.status_code == 202
    while (status := s.get("/orders/o-2", headers=host).json())["status"] != "errored":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status["error"] == {"name": "EmptyOrder", "message": "the order has no items"}
