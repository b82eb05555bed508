"""An app with one of every binding the explorer shows, for the explorer's browser tests."""

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "shop"
        main = "shop.py"
        compatibility_date = "2026-11-01"
        kv_namespaces = [{ binding = "SETTINGS", id = "settings" }]
        d1_databases = [{ binding = "DB", database_name = "shopdb", database_id = "shopdb" }]
        r2_buckets = [{ binding = "FILES", bucket_name = "files" }]
        durable_objects.bindings = [{ name = "CARTS", class_name = "Cart" }]
        queues.producers = [{ binding = "MAIL", queue = "mail" }]
        queues.consumers = [{ queue = "mail", max_batch_size = 10, max_batch_timeout = 0.2, max_retries = 1, retry_delay = 0, dead_letter_queue = "mail-dlq" }]
        workflows = [{ name = "approval", binding = "APPROVAL", class_name = "Approval" }]
    """,
    "shop.py": """
        from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint


        class Cart(DurableObject):
            async def fetch(self, request):
                self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS items (sku TEXT, qty INTEGER)")
                self.ctx.storage.sql.exec("INSERT INTO items VALUES (?, ?)", "tea", 2)
                await self.ctx.storage.put("owner", {"name": "ada"})
                return Response("ok")


        class Approval(WorkflowEntrypoint):
            async def run(self, event, step):
                @step.do("prepare", config={"retries": {"limit": 2, "delay": "300 milliseconds", "backoff": "constant"}})
                async def prepare(ctx):
                    if ctx.attempt == 1:
                        raise RuntimeError("the printer is warming up")
                    return {"prepared": event.payload}

                await prepare()
                await step.sleep("settle", "300 milliseconds")
                decision = await step.wait_for_event("approval", "approved", timeout="1 hour")

                @step.do("finish")
                async def finish():
                    return {"approved_by": decision["payload"]["by"]}

                return await finish()


        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/setup"):
                    await self.env.SETTINGS.put("theme", "light")
                    await self.env.SETTINGS.put("greeting", "hello")
                    await self.env.DB.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
                    await self.env.DB.prepare("INSERT INTO orders (item) VALUES (?), (?)").bind("tea", "mug").run()
                    await self.env.FILES.put("docs/readme.txt", "read me")
                    await self.env.FILES.put("docs/img/logo.txt", "logo")
                    await self.env.FILES.put("top.txt", "top")
                    stub = self.env.CARTS.get(self.env.CARTS.idFromName("cart-1"))
                    await stub.fetch("http://cart/")
                    return Response("set up")
                return Response("hello")

            async def queue(self, batch):
                # the mail server is "down" while the KV flag is set: every message is retried
                down = await self.env.SETTINGS.get("mail-down")
                for message in batch.messages:
                    if down:
                        message.retry()
                    else:
                        await self.env.SETTINGS.put(f"sent:{message.id}", "yes")
                        message.ack()
    """,
}
