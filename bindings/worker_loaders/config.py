"""Worker Loader bindings: ``worker_loaders = [{binding = "LOADER"}]``."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgelet.config import Section

KEYS: tuple[str, ...] = ("worker_loaders",)


@dataclass(frozen=True)
class WorkerLoader:
    binding: str
    key_path: str = field(default="", compare=False, repr=False)


def parse(key: str, section: Section) -> list[WorkerLoader]:
    out: list[WorkerLoader] = []
    for t in section.tables(key):
        t.warn_unknown(("binding",))
        binding = t.binding_name("binding")
        assert binding is not None
        out.append(WorkerLoader(binding=binding, key_path=t.path))
    return out
