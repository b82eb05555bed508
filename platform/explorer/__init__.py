"""The explorer (SPEC 11): a web page at ``/cdn-cgi/explorer`` that shows and edits what the
platform holds.

Why a package of its own: it is a client of the control API like the CLI, not part of any
binding. Pages are server-rendered Jinja2 skeletons (the section, the names of the API and of
the page's own mount); the small script in ``static/`` fills them from the control API and
does every action through it, so the explorer can do nothing the API cannot and needs the
same guard (``/cdn-cgi/`` is guarded as a whole in :mod:`edgelet.server`).
"""

from __future__ import annotations

from edgelet.explorer.routes import MOUNTS, explorer_routes

__all__ = ["MOUNTS", "explorer_routes"]
