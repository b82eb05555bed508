"""A minimal ``pyodide`` so scripts written for Pyodide-based Python Workers import cleanly."""

__version__ = "0.28.0"
