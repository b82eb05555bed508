// Mirrors bench/apps/kv/kv.py: one put and one get of a 100-byte value per request,
// on a key drawn from 10,000.
const VALUE = "v".repeat(100);

export default {
  async fetch(request, env) {
    const key = `k${Math.floor(Math.random() * 10000)}`;
    await env.KV.put(key, VALUE);
    const got = await env.KV.get(key);
    return new Response(got);
  },
};
