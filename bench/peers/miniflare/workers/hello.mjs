// Mirrors bench/apps/hello/hello.py.
export default {
  async fetch(request) {
    return new Response("Hello World!");
  },
};
