"""The demo's job queue: ``POST /enqueue`` puts jobs on the ``jobs`` queue; ``queue()`` runs them.

Try it (with ``edgelet dev`` running in the repository root):

    curl -X POST http://jobs.localhost:8787/enqueue -d '{"task": "resize", "image": 7}'
    curl -X POST http://jobs.localhost:8787/enqueue -d '[{"task": "a"}, {"task": "b"}]'
    curl -X POST 'http://jobs.localhost:8787/enqueue?delay=10' -d '{"task": "later"}'
    curl -X POST http://jobs.localhost:8787/enqueue -d '{"task": "broken", "fail": true}'

A job with ``"fail": true`` is retried twice (``max_retries = 2``) and then lands on the
``jobs-dlq`` queue, whose consumer is ``workers/jobs_dlq.py``.

Each finished job writes its result to KV (``RESULTS``, read it back with
``GET /results/ID``) and counts itself in the ``Counter`` Durable Object of the
``counter`` Worker (``GET http://counter.localhost:8787/count/jobs?peek``).
"""

import json
from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        if url.path.startswith("/results/"):
            result = await self.env.RESULTS.get(url.path[len("/results/"):], type="json")
            return Response.json(result) if result else Response("no such result", status=404)
        if url.path != "/enqueue" or request.method != "POST":
            return Response("POST /enqueue with a JSON job (or a list of jobs)\n", status=404)
        try:
            body = await request.json()
        except ValueError:
            return Response.json({"error": 'send a JSON job, e.g. {"task": "resize"}'}, status=400)
        delay = int(parse_qs(url.query).get("delay", ["0"])[0])
        jobs = body if isinstance(body, list) else [body]
        try:
            if len(jobs) == 1:
                await self.env.JOBS.send(jobs[0], delaySeconds=delay)
            else:
                await self.env.JOBS.sendBatch([{"body": job} for job in jobs], delaySeconds=delay)
        except (TypeError, ValueError) as exc:  # over the limits: nothing was queued
            return Response.json({"error": str(exc)}, status=400)
        return Response.json({"queued": len(jobs), "delay_seconds": delay}, status=202)

    async def queue(self, batch, env, ctx):
        for message in batch.messages:
            job = message.body
            if isinstance(job, dict) and job.get("fail"):
                print(f"job {message.id} failed (attempt {message.attempts}): {job}")
                message.retry()
                continue
            done = await self.env.COUNTER.getByName("jobs").increment()
            result = {"job": job, "attempts": message.attempts, "jobs_done": done}
            await self.env.RESULTS.put(message.id, json.dumps(result))
            print(f"job {message.id} done (attempt {message.attempts}, #{done}): {job}")
            message.ack()
