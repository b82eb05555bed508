"""R2 buckets: ``r2_buckets = [{binding, bucket_name, preview_bucket_name?, jurisdiction?}]``.

The ``bucket_name`` is what identifies storage: two Workers binding the same bucket name share
one bucket, under whatever binding names they choose. ``preview_bucket_name`` and
``jurisdiction`` are wrangler's keys for deploying; they are accepted and kept for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgelet.config import Section

KEYS: tuple[str, ...] = ("r2_buckets",)

_EXAMPLE = '"my-bucket"'


@dataclass(frozen=True)
class R2Bucket:
    """One R2 binding of a Worker."""

    binding: str
    bucket_name: str
    preview_bucket_name: str | None = None
    jurisdiction: str | None = None
    #: where it was declared (``r2_buckets[0]``), for messages
    key_path: str = field(default="", compare=False, repr=False)


def parse(key: str, section: Section) -> list[R2Bucket]:
    out: list[R2Bucket] = []
    for t in section.tables(key):
        t.warn_unknown(("binding", "bucket_name", "preview_bucket_name", "jurisdiction", "remote"))
        binding = t.binding_name("binding")
        assert binding is not None
        name = t.str("bucket_name", fix=f"set bucket_name to the bucket's name, e.g. "
                                        f"{t.example('bucket_name', _EXAMPLE)}")
        if name is not None and not name.strip():
            raise t.error("bucket_name", "must not be empty",
                          "set bucket_name to the bucket's name, or remove it to use the binding name")
        preview = t.str("preview_bucket_name", fix=f"set preview_bucket_name to a bucket name, e.g. "
                                                   f"{t.example('preview_bucket_name', _EXAMPLE)}")
        jurisdiction = t.str("jurisdiction", fix='set jurisdiction to "eu" or "fedramp", or remove it')
        # Like wrangler dev: a bucket without a name runs locally under the binding's name.
        out.append(R2Bucket(binding=binding, bucket_name=name or binding, preview_bucket_name=preview,
                            jurisdiction=jurisdiction, key_path=t.path))
    return out
