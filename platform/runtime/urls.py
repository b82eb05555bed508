"""``js.URL`` and ``js.URLSearchParams``: the WHATWG URL API a Worker reaches through ``js``.

Why ada (``ada_url``, the parser Node uses) rather than ``urllib.parse``: a Worker's URLs
are parsed by workerd with the WHATWG standard, which refuses what urllib accepts (``http://a
b/``), normalizes what urllib keeps (``HTTP://E.com:80/a/../b`` is ``http://e.com/b``) and
resolves against a base its own way. A URL that parses here parses on Cloudflare, and
serializes the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def _ada() -> Any:
    import ada_url  # imported on first use: most isolates never build a URL
    return ada_url


class URLSearchParams:
    """A query string as ordered name/value pairs (``get``, ``getAll``, ``has``, ``set``,
    ``append``, ``delete``, ``sort``, ``toString``, ``entries``/``keys``/``values``, ``size``).

    Tied to a :class:`URL` when it came from ``url.searchParams``: a change updates
    ``url.search``, as in JavaScript."""

    def __init__(self, init: Any = None, _owner: URL | None = None) -> None:
        if init is None:
            query = ""
        elif isinstance(init, str):
            query = init[1:] if init.startswith("?") else init
        elif isinstance(init, URLSearchParams):
            query = str(init)
        else:
            pairs = init.items() if isinstance(init, Mapping) else init
            params = _ada().URLSearchParams("")
            for pair in pairs:
                if isinstance(pair, (str, bytes)) or len(pair) != 2:
                    raise TypeError(f"URLSearchParams(): expected [name, value] pairs, got {pair!r}")
                params.append(str(pair[0]), str(pair[1]))
            query = str(params)
        self._params = _ada().URLSearchParams(query)
        self._owner = _owner

    @classmethod
    def new(cls, init: Any = None) -> URLSearchParams:
        return cls(init)

    def _changed(self) -> None:
        if self._owner is not None:
            text = str(self._params)
            self._owner._url.search = f"?{text}" if text else ""

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None (JavaScript's null)."""
        return self._params.get(str(name)) if self._params.has(str(name)) else None

    def getAll(self, name: str) -> list[str]:  # noqa: N802
        return list(self._params.get_all(str(name)))

    get_all = getAll

    def has(self, name: str) -> bool:
        return bool(self._params.has(str(name)))

    def set(self, name: str, value: Any) -> None:
        self._params.set(str(name), str(value))
        self._changed()

    def append(self, name: str, value: Any) -> None:
        self._params.append(str(name), str(value))
        self._changed()

    def delete(self, name: str) -> None:
        self._params.delete(str(name))
        self._changed()

    def sort(self) -> None:
        self._params.sort()
        self._changed()

    @property
    def size(self) -> int:
        return int(self._params.size)

    def entries(self) -> list[tuple[str, str]]:
        return list(self._params.items())

    items = entries

    def keys(self) -> list[str]:
        return [k for k, _ in self._params.items()]

    def values(self) -> list[str]:
        return [v for _, v in self._params.items()]

    def toString(self) -> str:  # noqa: N802
        return str(self._params)

    def __str__(self) -> str:
        return str(self._params)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.entries())

    def __len__(self) -> int:
        return self.size

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def __getitem__(self, name: str) -> str:
        """``params["q"]``, which edgelet's dict-like searchParams allowed: the first value."""
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __repr__(self) -> str:
        return f"URLSearchParams({str(self._params)!r})"


class URL:
    """The WHATWG URL: ``href``, ``protocol``, ``username``, ``password``, ``host``,
    ``hostname``, ``port``, ``pathname``, ``search``, ``hash``, ``origin`` and
    ``searchParams``; each part can be set, as in JavaScript."""

    _PARTS = ("href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search",
              "hash")

    def __init__(self, url: Any, base: Any = None) -> None:
        ada = _ada()
        text = str(url)
        try:
            self._url = ada.URL(text) if base is None else ada.URL(text, str(base))
        except ValueError:
            shown = repr(text) if len(text) <= 100 else repr(text[:97]) + "..."
            where = "" if base is None else f" against base {str(base)[:100]!r}"
            raise TypeError(f"Invalid URL: {shown}{where}: not a URL by the WHATWG URL standard "
                            f"(a path needs a base: URL.new('/x', 'https://example.com'))") from None
        self._params: URLSearchParams | None = None

    @classmethod
    def new(cls, url: Any, base: Any = None) -> URL:
        return cls(url, base)

    @staticmethod
    def canParse(url: Any, base: Any = None) -> bool:  # noqa: N802
        try:
            URL(url, base)
        except TypeError:
            return False
        return True

    can_parse = canParse

    def __getattr__(self, name: str) -> Any:
        if name in URL._PARTS:
            return str(getattr(self.__dict__["_url"], name))
        raise AttributeError(f"URL has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in URL._PARTS:
            try:
                setattr(self._url, name, str(value))
            except ValueError:
                if name == "href":
                    raise TypeError(f"Invalid URL: {str(value)[:100]!r}") from None
                # JavaScript ignores a part it cannot set (url.port = "x" leaves the port)
            return
        object.__setattr__(self, name, value)

    @property
    def origin(self) -> str:
        return str(self._url.origin)

    @property
    def searchParams(self) -> URLSearchParams:  # noqa: N802
        """The query as a live :class:`URLSearchParams`."""
        params = URLSearchParams(str(self._url.search), _owner=self)
        return params

    search_params = searchParams

    def toString(self) -> str:  # noqa: N802
        return str(self._url.href)

    toJSON = toString  # noqa: N815

    def __str__(self) -> str:
        return str(self._url.href)

    def __repr__(self) -> str:
        return f"URL({str(self._url.href)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))
