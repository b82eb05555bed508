"""Orders: an order workflow started over HTTP (host ``orders.localhost``).

    curl -X POST orders.localhost:8787/orders -d '{"items": {"tea": 2, "mug": 1}}'
    curl orders.localhost:8787/orders/ID                  # status and output
    curl -X POST orders.localhost:8787/orders/ID/ship -d '{"carrier": "ups"}'
    curl orders.localhost:8787/orders/ID/receipt
    edgelet workflows instances describe order ID         # every step, attempt and output

The workflow validates the order, prices every line at once (a fan-out group of steps),
reserves stock in the ``Stock`` Durable Object, charges through the ``payments`` Worker
(which fails twice before it succeeds: watch the retries), waits for a "shipped" event,
sleeps through the delivery window and writes the receipt to KV.
"""

import asyncio
import json
import uuid
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint
from workers.workflows import NonRetryableError

PRICES_CENTS = {"tea": 450, "mug": 1200, "kettle": 3900, "biscuits": 300}
START_STOCK = 20


class Stock(DurableObject):
    """One warehouse: per-product counts; a reservation is recorded once per order."""

    async def reserve(self, order_id, items):
        storage = self.ctx.storage
        done = await storage.get(f"reservation:{order_id}")
        if done is not None:
            return done  # a retried reservation: same answer, no double booking
        levels = {sku: await storage.get(f"stock:{sku}") for sku in items}
        levels = {sku: START_STOCK if level is None else level for sku, level in levels.items()}
        short = sorted(sku for sku, qty in items.items() if levels[sku] < qty)
        if short:
            return {"order": order_id, "short": short}
        for sku, qty in items.items():
            await storage.put(f"stock:{sku}", levels[sku] - qty)
        reservation = {"order": order_id, "left": {sku: levels[sku] - qty for sku, qty in items.items()}}
        await storage.put(f"reservation:{order_id}", reservation)
        return reservation

    async def levels(self):
        return {key.split(":", 1)[1]: value for key, value in (await self.ctx.storage.list(prefix="stock:")).items()}


class OrderWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        order = event.payload or {}
        order_id = event.instanceId

        @step.do("validate")
        async def validate():
            items = order.get("items") or {}
            if not items:
                raise NonRetryableError("the order has no items", "EmptyOrder")
            unknown = sorted(set(items) - set(PRICES_CENTS))
            if unknown:
                raise NonRetryableError(f"unknown products: {', '.join(unknown)}", "UnknownProduct")
            return {sku: int(qty) for sku, qty in items.items()}

        items = await validate()

        # fan-out: price every line at the same time; each line is its own step
        async def price(sku, qty):
            return await step.do(f"price {sku}", lambda: {"sku": sku, "qty": qty,
                                                          "cents": PRICES_CENTS[sku] * qty})

        lines = await asyncio.gather(*(price(sku, qty) for sku, qty in sorted(items.items())))
        total = sum(line["cents"] for line in lines)

        @step.do("reserve stock")
        async def reserve_stock(validate):
            reservation = await self.env.STOCK.getByName("warehouse").reserve(order_id, validate)
            if reservation.get("short"):
                raise NonRetryableError(f"out of stock: {', '.join(reservation['short'])}", "OutOfStock")
            return reservation

        @step.do("charge", config={"retries": {"limit": 4, "delay": "1 second", "backoff": "exponential"},
                                   "timeout": "30 seconds"})
        async def charge(reserve_stock, ctx):
            print(f"order {order_id}: charging {total} cents (attempt {ctx.attempt})")
            return await self.env.PAYMENTS.charge(order_id, total)

        payment = await charge()
        shipped = await step.wait_for_event("wait for shipment", "shipped", timeout="7 days")
        await step.sleep("delivery window", order.get("delivery_window", "10 seconds"))

        @step.do("write receipt")
        async def write_receipt():
            receipt = {"order": order_id, "lines": lines, "total_cents": total,
                       "charge": payment["charge_id"], "carrier": shipped.payload.get("carrier"),
                       "shipped_at": shipped.timestamp.isoformat()}
            await self.env.RECEIPTS.put(f"receipt:{order_id}", json.dumps(receipt))
            return receipt

        return await write_receipt()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = [p for p in urlparse(request.url).path.split("/") if p]
        if parts == ["orders"] and request.method == "POST":
            text = await request.text()  # a body is read once, as on Cloudflare
            body = json.loads(text) if text else {}
            order_id = body.pop("id", None) or "order-" + uuid.uuid4().hex[:8]
            instance = await self.env.ORDER.create(id=order_id, params=body)
            return Response.json({"id": instance.id, "status": f"/orders/{instance.id}"}, status=202)
        if len(parts) >= 2 and parts[0] == "orders":
            try:
                instance = await self.env.ORDER.get(parts[1])
            except LookupError:
                return Response.json({"error": f"no order {parts[1]}"}, status=404)
            if len(parts) == 2:
                return Response.json({"id": instance.id, **await instance.status()})
            if parts[2] == "ship" and request.method == "POST":
                text = await request.text()  # a body is read once, as on Cloudflare
                body = json.loads(text) if text else {}
                await instance.send_event(type="shipped", payload={"carrier": body.get("carrier", "post")})
                return Response.json({"id": instance.id, "event": "shipped"}, status=202)
            if parts[2] == "receipt":
                receipt = await self.env.RECEIPTS.get(f"receipt:{instance.id}", type="json")
                if receipt is None:
                    return Response.json({"error": "no receipt yet"}, status=404)
                return Response.json(receipt)
        if parts == ["stock"]:
            return Response.json(await self.env.STOCK.getByName("warehouse").levels())
        return Response("POST /orders, GET /orders/ID, POST /orders/ID/ship, GET /orders/ID/receipt, "
                        "GET /stock\n")
