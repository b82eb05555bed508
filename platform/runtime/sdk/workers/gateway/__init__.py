"""Options shared by the ASGI and WSGI adapters (Cloudflare's ``workers.gateway``)."""

from dataclasses import dataclass
from typing import Any, Literal, get_args

EncodeBody = Literal["automatic", "manual"]


@dataclass(frozen=True, kw_only=True)
class BaseOptions:
    """``encode_body="manual"``: the body is already encoded per its Content-Encoding."""

    encode_body: EncodeBody = "automatic"

    def __post_init__(self) -> None:
        if self.encode_body not in get_args(EncodeBody):
            raise ValueError(f"encode_body must be one of {get_args(EncodeBody)}, got {self.encode_body!r}")

    def response_init(self) -> dict[str, Any]:
        return {} if self.encode_body == "automatic" else {"encodeBody": self.encode_body}


__all__ = ["BaseOptions", "EncodeBody"]
