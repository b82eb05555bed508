"""The app most R2 tests run: one Worker, ``w.py``, with bucket ``files`` bound as ``B``
(each test module brings its own ``w.py``)."""

from __future__ import annotations

CONFIG = """
    name = "app"
    main = "w.py"
    r2_buckets = [{ binding = "B", bucket_name = "files" }]
"""
