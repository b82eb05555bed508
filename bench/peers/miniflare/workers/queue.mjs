// Mirrors bench/apps/queue/consumer.py: /send?n=N sends N messages in one sendBatch; the
// consumer counts what it acknowledged; /count reports the count.
let acked = 0;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/send") {
      const n = Number(url.searchParams.get("n") || "100");
      const base = Number(url.searchParams.get("base") || "0");
      const messages = [];
      for (let i = 0; i < n; i++) messages.push({ body: { i: base + i } });
      await env.Q.sendBatch(messages);
      return new Response("ok");
    }
    if (url.pathname === "/count") return new Response(String(acked));
    return new Response("not found", { status: 404 });
  },
  async queue(batch, env) {
    acked += batch.messages.length; // returning normally acknowledges every message
  },
};
