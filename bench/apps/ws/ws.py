"""WebSocket benchmark app (mirrors bench/peers/miniflare/workers/ws.mjs): /room/NAME joins a
chat-room Durable Object with the hibernation API. A text message "e:..." is echoed to its
sender; "b:..." is broadcast to every socket of the room."""

from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message.startswith("b:"):
            for other in self.ctx.getWebSockets():
                other.send(message)
        else:
            ws.send(message)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = request.url.rsplit("/", 1)[-1]
        return await self.env.ROOMS.getByName(name).fetch(request)
