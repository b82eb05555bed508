// Mirrors bench/apps/do_cross/caller.py: RPC to a Durable Object class of another Worker
// ("objects", do_cross_objects.mjs); /one, /many and /obj/K as in do.mjs.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    let name = "one";
    if (url.pathname === "/many") name = `o${Math.floor(Math.random() * 1000)}`;
    else if (url.pathname.startsWith("/obj/")) name = `o${url.pathname.slice(5)}`;
    const stub = env.COUNTER.get(env.COUNTER.idFromName(name));
    const n = await stub.hit();
    return new Response(String(n));
  },
};
