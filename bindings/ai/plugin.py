"""Host side of Workers AI: mocks first, then the local server, else say how to answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.ai.config import AIBinding

if TYPE_CHECKING:  # pragma: no cover - typing only
    import httpx

    from edgelet.bindings.ai.handle import AIHandle

REMOTE_ONLY = (
    "Workers AI runs remotely on Cloudflare's GPUs; edgelet does not run models. To answer "
    "env.{binding}.run({model!r}) locally, point the binding at an OpenAI-compatible server "
    '(ai = {{binding = "{binding}", local_url = "http://127.0.0.1:11434/v1"}} for Ollama), or '
    'mock it in tests: p.ai("{binding}").mock({model!r}, result)')


class Plugin(BindingPlugin):
    kind = "ai"
    test_accessor = "ai"

    def __init__(self) -> None:
        super().__init__()
        self.bindings: dict[tuple[str, str], AIBinding] = {}
        #: (worker, binding) -> model -> the result to answer (``"*"``: any model)
        self.mocks: dict[tuple[str, str], dict[str, Any]] = {}
        self._client: httpx.AsyncClient | None = None

    def configure(self, config: Any) -> None:
        self.bindings = {(w.name, d.binding): d for w in config.workers for d in w.decls(self.kind)}

    def env_bindings(self, worker: Any) -> dict[str, dict[str, Any]]:
        return {d.binding: {} for d in worker.decls(self.kind)}

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        if method != "run":
            return await super().handle_call(worker, binding, method, args)
        model, inputs, options = (list(args) + [None, None])[:3]
        if not isinstance(model, str) or not model:
            raise TypeError(f"env.{binding}.run(model, inputs): model must be a model name such as "
                            f"'@cf/meta/llama-3.1-8b-instruct', got {model!r}")
        mocks = self.mocks.get((worker, binding), {})
        for key in (model, "*"):
            if key in mocks:
                return mocks[key]
        decl = self.bindings[(worker, binding)]
        if decl.local_url is None:
            raise RuntimeError(REMOTE_ONLY.format(binding=binding, model=model))
        from edgelet.bindings.ai.local import run_local  # imports httpx: only when a Worker asks
        if self._client is None:
            import httpx
            self._client = httpx.AsyncClient()
        return await run_local(self._client, decl.local_url, decl.local_model or model, inputs or {}, options)

    def test_handle(self, worker: str, binding: str) -> AIHandle:
        from edgelet.bindings.ai.handle import AIHandle  # tests only: not imported by `dev`
        return AIHandle(self, worker, binding)
