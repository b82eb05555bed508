"""``Blob``, ``File`` and ``FormData`` with the signatures of Cloudflare's ``workers`` SDK.

The SDK wraps JavaScript objects; here the data is Python bytes, and a FormData knows how to
write itself as ``multipart/form-data`` (a Response or fetch body) and how to be read from
one (``await request.form_data()``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, MutableMapping
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

BlobValue = "str | bytes | js.ArrayBuffer | js.TypedArray | js.DataView | js.Blob | Blob | File"
FormDataValue = "str | js.Blob | Blob"


class BlobEnding(StrEnum):
    TRANSPARENT = "transparent"
    NATIVE = "native"


def _part_bytes(part: Any) -> bytes:
    if isinstance(part, Blob):
        return part._data
    if isinstance(part, str):
        return part.encode("utf-8")
    try:
        return bytes(memoryview(part))
    except TypeError:
        raise TypeError(f"Don't know how to handle {type(part)} for Blob(): pass str, bytes, "
                        f"a Blob or a File") from None


def _is_iterable(obj: Any) -> bool:
    if isinstance(obj, (str, bytes, bytearray, memoryview, Blob)):
        return False
    try:
        iter(obj)
    except TypeError:
        return False
    return True


class Blob:
    """Immutable bytes with a content type (the Fetch API's ``Blob``)."""

    def __init__(self, blob_parts: Any, content_type: str | None = None,
                 endings: BlobEnding | str | None = None) -> None:
        if not _is_iterable(blob_parts):
            if not content_type and isinstance(blob_parts, Blob):
                content_type = blob_parts.content_type
            blob_parts = [blob_parts]
        self._data = b"".join(_part_bytes(p) for p in blob_parts)
        self._type = (content_type or "").lower()

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def content_type(self) -> str:
        return self._type

    type = content_type

    @property
    def js_object(self) -> Blob:
        return self

    async def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")

    async def bytes(self) -> bytes:
        return self._data

    async def arrayBuffer(self) -> Any:  # noqa: N802 - JavaScript's name
        from edgelet.runtime.jstypes import ArrayBuffer
        return ArrayBuffer(self._data)

    def slice(self, start: int | None = None, end: int | None = None,
              content_type: str | None = None) -> Blob:
        return Blob([self._data[start:end]], content_type)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, content_type={self._type!r})"


class File(Blob):
    """A Blob with a file name and a modification time (ms since the epoch)."""

    def __init__(self, blob_parts: Any, filename: str, content_type: str | None = None,
                 endings: BlobEnding | str | None = None, last_modified: int | None = None) -> None:
        if not last_modified and isinstance(blob_parts, File):
            last_modified = blob_parts.last_modified
        super().__init__(blob_parts, content_type, endings)
        self._name = filename
        self._last_modified = last_modified if last_modified is not None else int(time.time() * 1000)

    @property
    def name(self) -> str:
        return self._name

    @property
    def last_modified(self) -> int:
        return self._last_modified

    lastModified = last_modified  # noqa: N815


class FormData(MutableMapping[str, Any]):
    """Ordered, multi-valued form fields (values are str, Blob or File)."""

    def __init__(self, form_data: Any = None) -> None:
        self._items: list[tuple[str, Any]] = []
        if not form_data:
            return
        if isinstance(form_data, FormData):
            self._items = list(form_data._items)
        elif isinstance(form_data, dict):
            for key, value in form_data.items():
                self.append(key, value)
        else:
            raise TypeError("Expected form_data to be a dict or an instance of FormData")

    def __getitem__(self, key: str) -> Any:
        """The first value of ``key``, or None when there is none: Cloudflare's SDK reads
        ``form["name"]`` through JavaScript's ``FormData.get``, which gives null, not an
        error, so scripts check ``if not form["name"]``."""
        for k, v in self._items:
            if k == key:
                return v
        return None

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, list):
            raise TypeError("Expected single item in arguments to FormData.__setitem__")
        self.set(key, value)

    def set(self, key: str, value: Any, filename: str | None = None) -> None:
        self.delete(key)
        self.append(key, value, filename)

    def append(self, key: str, value: Any, filename: str | None = None) -> None:
        if isinstance(value, Blob) and filename is not None:
            value = File([value], filename, value.content_type)
        elif isinstance(value, Blob) and not isinstance(value, File):
            value = File([value], "blob", value.content_type)
        elif not isinstance(value, Blob):
            value = str(value)
        self._items.append((key, value))

    def delete(self, key: str) -> None:
        self._items = [(k, v) for k, v in self._items if k != key]

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self._items)

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._items)

    def __delitem__(self, key: str) -> None:
        """``del form["name"]``: like ``delete`` (and the SDK), no error for a missing key."""
        self.delete(key)

    def keys(self) -> Iterator[str]:  # type: ignore[override]
        seen: dict[str, None] = {}
        for k, _ in self._items:
            seen.setdefault(k, None)
        yield from seen

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for _, v in self._items:
            yield v

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        yield from self._items

    entries = items

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __len__(self) -> int:
        return len(list(self.keys()))

    def get_all(self, key: str) -> list[Any]:
        return [v for k, v in self._items if k == key]

    getAll = get_all  # noqa: N815

    @property
    def js_object(self) -> FormData:
        return self

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"

    # -- wire forms ----------------------------------------------------------------------
    def encode(self) -> tuple[bytes, str]:
        """The ``multipart/form-data`` body and its content type."""
        boundary = "----edgelet" + secrets.token_hex(12)
        out: list[bytes] = []
        for key, value in self._items:
            name = _quote(key)
            out.append(f"--{boundary}\r\n".encode())
            if isinstance(value, File):
                out.append(f'Content-Disposition: form-data; name="{name}"; '
                           f'filename="{_quote(value.name)}"\r\n'.encode())
                out.append(f"Content-Type: {value.content_type or 'application/octet-stream'}"
                           f"\r\n\r\n".encode())
                out.append(value._data)
            else:
                out.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
                out.append(str(value).encode("utf-8"))
            out.append(b"\r\n")
        out.append(f"--{boundary}--\r\n".encode())
        return b"".join(out), f"multipart/form-data; boundary={boundary}"

    @classmethod
    def parse(cls, body: bytes, content_type: str | None) -> FormData:
        """Read a ``multipart/form-data`` or ``application/x-www-form-urlencoded`` body."""
        ctype = (content_type or "").lower()
        form = cls()
        if ctype.startswith("application/x-www-form-urlencoded"):
            for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
                form.append(key, value)
            return form
        if not ctype.startswith("multipart/form-data"):
            raise TypeError(f"can't read the body as FormData: its Content-Type is {content_type!r}; "
                            f"send multipart/form-data or application/x-www-form-urlencoded")
        from email.parser import BytesParser
        from email.policy import HTTP
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + (content_type or "").encode("latin-1") + b"\r\n\r\n" + body)
        if not message.is_multipart():
            raise TypeError("can't read the body as FormData: the multipart body is malformed "
                            "(no boundary or no parts)")
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                continue
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            assert isinstance(payload, bytes)  # decode=True on a leaf part gives bytes
            if filename is not None:
                form.append(str(name), File([payload], filename, part.get_content_type()))
            else:
                charset = part.get_content_charset() or "utf-8"
                form.append(str(name), payload.decode(charset, errors="replace"))
        return form


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

