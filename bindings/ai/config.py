"""Workers AI: ``ai = {binding = "AI", local_url? = "http://127.0.0.1:11434/v1", local_model?}``.

Cloudflare runs the models; edgelet answers ``env.AI.run`` from test mocks or from an
OpenAI-compatible server named by ``local_url`` (edgelet's own key: wrangler ignores it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from edgelet.config import Section

KEYS: tuple[str, ...] = ("ai",)


@dataclass(frozen=True)
class AIBinding:
    binding: str
    #: base URL of an OpenAI-compatible API (``.../v1``); None: mocks only
    local_url: str | None = None
    #: the model name sent to that server instead of Cloudflare's (``@cf/...``) name
    local_model: str | None = None
    key_path: str = field(default="", compare=False, repr=False)


def parse(key: str, section: Section) -> list[AIBinding]:
    t = section.table(key)
    if t is None:
        return []
    t.warn_unknown(("binding", "local_url", "local_model", "remote", "experimental_remote"))
    binding = t.binding_name("binding")
    assert binding is not None
    url = t.str("local_url", fix='set local_url to an http URL, e.g. "http://127.0.0.1:11434/v1"')
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise t.error("local_url", f"{url!r} is not an http(s) URL",
                          'set it to an OpenAI-compatible API base, e.g. "http://127.0.0.1:11434/v1" (Ollama)')
    model = t.str("local_model", fix='set local_model to the model name your local server knows, e.g. "llama3.2"')
    return [AIBinding(binding=binding, local_url=url.rstrip("/") if url else None, local_model=model,
                      key_path=t.path)]
