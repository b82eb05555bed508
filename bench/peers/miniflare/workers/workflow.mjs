// Mirrors bench/apps/workflow/workflow.py: a workflow of `steps` trivial steps, and routes to
// create instances one at a time (/create), 100 at a time (/batch), scan for completion
// (/scan) and run one instance end to end inside the Worker (/e2e).
import { WorkflowEntrypoint } from "cloudflare:workers";

export class Steps extends WorkflowEntrypoint {
  async run(event, step) {
    const n = event.payload?.steps ?? 10;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += await step.do(`step-${i}`, async () => i);
    }
    return acc;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = url.searchParams;
    if (url.pathname === "/create") {
      const instance = await env.STEPS.create({ params: { steps: Number(q.get("steps") || "1") } });
      return new Response(instance.id);
    }
    if (url.pathname === "/batch") {
      const prefix = q.get("prefix"), start = Number(q.get("start") || "0");
      const n = Number(q.get("n") || "100"), steps = Number(q.get("steps") || "10");
      const batch = [];
      for (let i = start; i < start + n; i++) batch.push({ id: `${prefix}-${i}`, params: { steps } });
      await env.STEPS.createBatch(batch);
      return new Response("ok");
    }
    if (url.pathname === "/scan") {
      // index of the first instance, from `from`, that has not completed (or `n` if all have)
      const prefix = q.get("prefix"), n = Number(q.get("n"));
      let i = Number(q.get("from") || "0");
      for (; i < n; i++) {
        const instance = await env.STEPS.get(`${prefix}-${i}`);
        const { status, error } = await instance.status();
        instance[Symbol.dispose]?.(); // an RPC stub: release it now, not at garbage collection
        if (status === "errored" || status === "terminated") {
          return new Response(`instance ${prefix}-${i} ${status}: ${JSON.stringify(error)}`, { status: 500 });
        }
        if (status !== "complete") break;
      }
      return new Response(String(i));
    }
    if (url.pathname === "/e2e") {
      const instance = await env.STEPS.create({ params: { steps: Number(q.get("steps") || "10") } });
      for (;;) {
        const { status, error } = await instance.status();
        if (status === "complete") return new Response("ok");
        if (status === "errored" || status === "terminated") {
          return new Response(`${status}: ${JSON.stringify(error)}`, { status: 500 });
        }
        await sleep(1);
      }
    }
    return new Response("not found", { status: 404 });
  },
};
