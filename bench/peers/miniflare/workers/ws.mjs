// Mirrors bench/apps/ws/ws.py: /room/NAME joins a chat-room Durable Object with the
// hibernation API; "e:..." is echoed to its sender, "b:..." broadcast to the whole room.
import { DurableObject } from "cloudflare:workers";

export class Room extends DurableObject {
  async fetch(request) {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  async webSocketMessage(ws, message) {
    if (message.startsWith("b:")) {
      for (const other of this.ctx.getWebSockets()) other.send(message);
    } else {
      ws.send(message);
    }
  }
}

export default {
  async fetch(request, env) {
    const name = new URL(request.url).pathname.split("/").pop();
    return env.ROOMS.getByName(name).fetch(request);
  },
};
