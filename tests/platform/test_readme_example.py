"""The README's example test against the demo app, kept verbatim so the manual stays true."""

from edgelet.testing import Platform


async def test_an_order_ships_and_leaves_a_receipt():
    async with Platform("wrangler_like.toml", clock="virtual") as p:
        resp = await p.fetch("/orders", worker="orders", method="POST",
                             json={"id": "order-1", "items": {"tea": 2}})
        assert resp.status == 202

        inst = await p.workflow("ORDER").get("order-1")
        await p.advance("1 minute")                      # the flaky payment retries
        await inst.sendEvent(type="shipped", payload={"carrier": "owl"})
        await p.advance("1 minute")                      # the delivery-window sleep
        await inst.wait_for_status("complete")

        steps = await inst.steps()
        charge = next(s for s in steps if s["name"] == "charge")
        assert len(charge["attempts"]) == 3              # two failures, then success
        receipt = await p.kv("RECEIPTS").get("receipt:order-1", type="json")
        assert receipt["carrier"] == "owl" and receipt["total_cents"] == 900


async def test_a_mocked_payment(edgelet_virtual_platform):
    p = edgelet_virtual_platform                          # the pytest plug-in's fixture
    wf = p.workflow("ORDER")
    wf.mock_step_result("charge", {"charge_id": "ch_test"})
    wf.mock_event("shipped", {"carrier": "mock"})
    wf.disable_sleeps()
    inst = await wf.create(id="order-2", params={"items": {"mug": 1}})
    await inst.wait_for_status("complete")
    assert (await inst.output())["charge"] == "ch_test"
