"""The Pyodide-era top-level ``import asgi``: the same module as ``workers.asgi``."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("workers.asgi")
