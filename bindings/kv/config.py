"""KV namespaces: ``kv_namespaces = [{binding, id, preview_id?}]``.

The namespace ``id`` is what identifies storage: two Workers binding the same ``id`` share
one namespace, under whatever binding names they choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgelet.config import Section

KEYS: tuple[str, ...] = ("kv_namespaces",)

_EXAMPLE_ID = '"abc123"'


@dataclass(frozen=True)
class KVNamespace:
    """One KV binding of a Worker."""

    binding: str
    id: str
    preview_id: str | None = None
    #: where it was declared (``workers[0].kv_namespaces[1]``), for messages
    key_path: str = field(default="", compare=False, repr=False)


def parse(key: str, section: Section) -> list[KVNamespace]:
    out: list[KVNamespace] = []
    for t in section.tables(key):
        t.warn_unknown(("binding", "id", "preview_id"))
        binding = t.binding_name("binding")
        assert binding is not None
        preview_id = t.str(
            "preview_id",
            fix=f"set preview_id to a namespace id string, e.g. {t.example('preview_id', _EXAMPLE_ID)}",
        )
        ns_id = t.str("id", fix=f"set id to the namespace id string, e.g. {t.example('id', _EXAMPLE_ID)}")
        if ns_id is not None and not ns_id.strip():
            raise t.error(
                "id", "must not be empty", "set id to the namespace id string, or remove it to use the binding name"
            )
        # Like wrangler dev: a namespace without an id runs locally under the binding's name.
        out.append(KVNamespace(binding=binding, id=ns_id or binding, preview_id=preview_id, key_path=t.path))
    return out
