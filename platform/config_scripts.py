"""What a Worker's script defines, read with ``ast`` and never imported: config checks that
point at a class (Durable Objects, Workflows, service entrypoints) must not run user code."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from edgelet.config_model import PlatformConfig, WorkerConfig
from edgelet.config_section import ConfigError, display_path


def script_classes(path: Path) -> set[str]:
    """Names of the classes a ``.py`` script defines at module level, read with ``ast``.

    The script is parsed, not imported, so checking config never runs user code. Classes
    inside module-level ``if``/``try``/``with`` blocks count (conditional definitions are
    still module attributes). So do names taken with ``from module import Name``: the
    platform looks a class up on the script's module, and re-exporting a class defined in a
    helper module is a common layout; flagging it would be a false error.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(
            path, None, f"cannot read the script: {exc.strerror or exc}", "check that the file exists"
        ) from None
    return set(_script_classes_cached(path.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _script_classes_cached(path: Path, _mtime_ns: int, _size: int) -> frozenset[str]:
    source = path.read_bytes()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(
            path,
            None,
            f"syntax error: {exc.msg}",
            f"correct the Python syntax at line {exc.lineno}" if exc.lineno else "correct the Python syntax",
            line=exc.lineno,
            column=exc.offset,
        ) from None
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names if a.name != "*")
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif hasattr(ast, "TryStar") and isinstance(node, ast.TryStar):  # 3.11+
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return frozenset(names)


def require_class(
    config: PlatformConfig,
    owner: WorkerConfig,
    script_name: str | None,
    class_name: str,
    key_path: str,
    *,
    script_key: str = "script_name",
    class_key: str = "class_name",
) -> WorkerConfig:
    """Check that ``class_name`` is defined by Worker ``script_name`` (default: ``owner``).

    Shared by Durable Objects, Workflows and service entrypoints, which all point at a
    class in some Worker's script. Errors are reported in ``owner``'s file at
    ``key_path.script_key`` / ``key_path.class_key``. ``.wasm`` Workers are not checked:
    their exports cannot be read without compiling them. Returns the target Worker.
    """
    target_name = script_name or owner.name
    try:
        target = config.worker(target_name)
    except KeyError:
        known = ", ".join(w.name for w in config.workers)
        raise ConfigError(
            owner.config_file,
            f"{key_path}.{script_key}" if key_path else script_key,
            f"Worker '{target_name}' is not in the configuration (Workers: {known})",
            f"add that Worker with another -c FILE or a [[workers]] table, or correct {script_key}",
        ) from None
    if target.is_wasm:
        return target
    if class_name not in script_classes(target.main):
        shown = display_path(target.main, owner.config_file.parent)
        raise ConfigError(
            owner.config_file,
            f"{key_path}.{class_key}" if key_path else class_key,
            f"class '{class_name}' is not defined in {shown}",
            f"define class {class_name} in {shown} or correct {class_key}",
        )
    return target
