// Mirrors bench/apps/d1/d1.py: /setup?i=N creates the table and index and seeds key N;
// every other request runs one indexed SELECT (a key drawn from 1,000) and one INSERT.
const SCHEMA = [
  "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, body TEXT NOT NULL)",
  "CREATE INDEX IF NOT EXISTS items_k ON items (k)",
];
const BODY = "v".repeat(100);

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/setup") {
      const i = Number(url.searchParams.get("i"));
      await env.DB.batch(SCHEMA.map((sql) => env.DB.prepare(sql)));
      await env.DB.prepare("INSERT INTO items (k, body) VALUES (?, ?)").bind(i, BODY).run();
      return new Response("ok");
    }
    const k = Math.floor(Math.random() * 1000);
    const row = await env.DB.prepare("SELECT id, body FROM items WHERE k = ? LIMIT 1").bind(k).first();
    await env.DB.prepare("INSERT INTO items (k, body) VALUES (?, ?)").bind(k, BODY).run();
    return new Response(row ? String(row.id) : "none");
  },
};
