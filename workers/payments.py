"""Payments: a flaky payment gateway, reached by the orders workflow over a service binding.

``charge`` fails the first two times it is called for an order (a busy gateway), so the
workflow's retries show up in ``edgelet workflows instances describe order ID``. Charges are
idempotent per order: a retried charge that already went through returns the same receipt.
"""

import json
import uuid

from workers import Response, WorkerEntrypoint

FAILURES_PER_ORDER = 2


class Default(WorkerEntrypoint):
    async def charge(self, order_id, amount_cents):
        done = await self.env.CHARGES.get(f"charge:{order_id}")
        if done:
            return json.loads(done)
        key = f"tries:{order_id}"
        tries = int(await self.env.CHARGES.get(key) or 0) + 1
        await self.env.CHARGES.put(key, str(tries))
        if tries <= FAILURES_PER_ORDER:
            raise RuntimeError(f"payment gateway busy (try {tries}), please retry")
        charge = {"charge_id": "ch_" + uuid.uuid4().hex[:12], "amount_cents": amount_cents, "tries": tries}
        await self.env.CHARGES.put(f"charge:{order_id}", json.dumps(charge))
        return charge

    async def fetch(self, request):
        return Response("payments: call charge(order_id, amount_cents) over a service binding\n")
