"""A minimal ``pyodide`` so scripts written for Pyodide-based Python Workers import cleanly."""
