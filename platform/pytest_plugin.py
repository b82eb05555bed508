"""pytest plug-in (entry point ``pytest11``): ``edgelet_platform`` and ``edgelet_virtual_platform``.

Which config: ``@pytest.mark.edgelet(config="path", ...)`` on the test, else the ini option
``edgelet_config``, else ``wrangler_like.toml`` (then wrangler.toml/json/jsonc) in the
rootdir. Marker keywords other than ``config`` go to :class:`edgelet.testing.Platform`.
Works with pytest-asyncio (any mode) and with anyio's pytest plug-in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

try:  # pytest-asyncio's strict mode wants its own decorator for async fixtures
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # anyio's plug-in runs plain async fixtures
    _async_fixture = pytest.fixture


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("edgelet_config", "config file for the edgelet_platform fixtures", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "edgelet(config=None, **options): config file and Platform options for "
                   "the edgelet_platform fixtures")


def _options(request: pytest.FixtureRequest, clock: str) -> tuple[Path, dict[str, Any]]:
    from edgelet.config import find_config

    marker = request.node.get_closest_marker("edgelet")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        options.setdefault("config", marker.args[0])
    root = Path(str(request.config.rootpath))
    config = options.pop("config", None) or request.config.getini("edgelet_config") or None
    path = Path(config) if config else find_config(root)
    if not path.is_absolute():
        path = root / path
    options.setdefault("clock", clock)
    return path, options


@_async_fixture
async def edgelet_platform(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A started :class:`edgelet.testing.Platform` (real clock, in-memory state)."""
    from edgelet.testing import Platform

    path, options = _options(request, "real")
    async with Platform(path, **options) as platform:
        yield platform


@_async_fixture
async def edgelet_virtual_platform(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A started :class:`edgelet.testing.Platform` on a virtual clock."""
    from edgelet.testing import Platform

    path, options = _options(request, "virtual")
    async with Platform(path, **options) as platform:
        yield platform
