"""Wasm Workers, inside their isolate: ``runner.WasmRunner`` runs a ``.wasm`` module the
way ``edgelet.runtime.isolate`` runs a Python script (see docs/wasm.md)."""
