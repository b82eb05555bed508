"""Consumer of ``jobs-dlq``: jobs that failed every attempt on the ``jobs`` queue end here."""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("jobs-dlq: the dead-letter consumer of the jobs queue; "
                        "see GET /cdn-cgi/edgelet/api/queues\n")

    async def queue(self, batch):
        for message in batch.messages:
            print(f"dead job {message.id} (sent {message.timestamp:%H:%M:%S}): {message.body}")
        # returning normally acknowledges them all
