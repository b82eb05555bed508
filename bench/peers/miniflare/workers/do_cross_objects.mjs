// Mirrors bench/apps/do_cross/objects.py: the Durable Object class the caller Worker uses.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  n = 0;
  hit() {
    this.n += 1;
    return this.n;
  }
}

export default {
  async fetch() {
    return new Response("the objects Worker; call it through caller");
  },
};
