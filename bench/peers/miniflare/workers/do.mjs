// Mirrors bench/apps/do/do.py: an RPC call to a Durable Object that counts in memory.
// /one calls the object "one"; /many calls one of 1,000 objects at random; /obj/K calls
// object K (the harness touches all 1,000 once before measuring /many).
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  n = 0;
  hit() {
    this.n += 1;
    return this.n;
  }
}

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
