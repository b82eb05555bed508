// Mirrors bench/apps/r2/r2.py: one put and one get per request, of a 1 KiB object (/small)
// or a 1 MiB one (/large), on a key drawn from 1,000.
const SMALL = new Uint8Array(1024).fill(115);
const LARGE = new Uint8Array(1024 * 1024).fill(76);

export default {
  async fetch(request, env) {
    const large = request.url.endsWith("/large");
    const key = `${large ? "l" : "s"}${Math.floor(Math.random() * 1000)}`;
    await env.B.put(key, large ? LARGE : SMALL);
    const obj = await env.B.get(key);
    const data = await obj.arrayBuffer();
    return new Response(String(data.byteLength));
  },
};
