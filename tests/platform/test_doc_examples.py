"""Every example in README.md and docs/*.md runs as written (issue 19).

Each fenced ```python, ```console, ```sh and ```bash block is one test:

- a python block with ``def test_...`` is a test module: it runs under pytest in a copy of
  the demo app (the repository's wrangler_like.toml and workers/), with the pytest config
  docs/testing.md tells users to write (``asyncio_mode = "auto"``);
- a python block that is a Worker script (``from workers import ...`` and a class) is loaded
  by a real platform: its top level runs and it must define a handler;
- any other python block is an excerpt of a Worker (``await self.env...`` lines): it must
  compile as the body of an async handler;
- console/sh/bash blocks run their commands (``$ `` lines in console blocks) in bash, in a
  copy of the demo app with ``edgelet dev`` running on it; ``8787`` in a command becomes
  that dev's port (``EDGELET_PORT`` tells the CLI). ``edgelet dev`` lines are that running
  dev; ``edgelet tail`` runs for a moment. A console command whose shown output contains
  ``Error`` must fail, every other command must succeed.

A block that cannot run here carries ``<!-- doc-test: skip: why -->`` on the line before its
fence (a browser, a command that never ends, a synopsis); PyPI is reachable on developers'
machines and in CI, so a ``pip install`` of a package runs; ``<!-- doc-test: app: PATH -->`` runs it in another app folder, and
``<!-- doc-test: app: page -->`` in the app the page itself shows (its first ```toml block and
the scripts it names ``# <file>.py``), so a page's test runs here with its own Worker.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, DevServer, free_port

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = ("python", "console", "sh", "bash")
MARKER = re.compile(r"^<!--\s*doc-test:\s*(skip|app)\s*:\s*(.+?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
BIN = Path(sys.executable).parent


@dataclass
class Block:
    file: Path
    line: int
    lang: str
    text: str
    skip: str | None = None
    app: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.line}"


def collect() -> list[Block]:
    blocks: list[Block] = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            lang, start = m.group(1), i
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            if lang in LANGS:
                block = Block(doc, start + 1, lang, "\n".join(lines[start + 1:i]) + "\n")
                before = start - 1
                while before >= 0 and MARKER.match(lines[before]):
                    kind, value = MARKER.match(lines[before]).groups()  # type: ignore[union-attr]
                    if kind == "skip":
                        block.skip = value
                    else:
                        block.app = value
                    before -= 1
                blocks.append(block)
            i += 1
    return blocks


BLOCKS = collect()


def _page_app(block: Block, app: Path) -> None:
    """The app a page builds: its first ```toml block and the script its ``main`` names
    (the python block starting ``# <main>``, else the page's first Worker script), beside
    every other script the page names that way (``# room.py``), so a test may load any."""
    import tomllib
    fences = re.findall(r"^```(\w+)\n(.*?)^```", block.file.read_text(), re.S | re.M)
    config = next(code for lang, code in fences if lang == "toml")
    main = tomllib.loads(config)["main"]
    scripts = [code for lang, code in fences if lang == "python"]
    named = {m.group(1): c for c in scripts if (m := re.match(r"# ([\w/.-]+\.py)\n", c))
             and not Path(m.group(1)).name.startswith("test_")}
    script = named.get(main) or next(c for c in scripts if _is_worker_script(ast.parse(c)))
    app.mkdir()
    for name in ("wrangler_like.toml", "wrangler.toml"):  # pages name either in their tests
        (app / name).write_text(config)
    for name, code in {**named, main: script}.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(code)


def _copy_app(block: Block, dest: Path) -> Path:
    app = dest / "app"
    if block.app == "page":
        _page_app(block, app)
    elif block.app:
        shutil.copytree(ROOT / block.app, app)
    else:
        app.mkdir()
        shutil.copy(ROOT / "wrangler_like.toml", app)
        shutil.copytree(ROOT / "workers", app / "workers")
    return app


def _is_worker_script(tree: ast.Module) -> bool:
    imports_workers = any(isinstance(n, ast.ImportFrom) and n.module == "workers" for n in tree.body)
    return imports_workers and any(isinstance(n, ast.ClassDef) for n in tree.body)


def _run_python(block: Block, tmp_path: Path) -> None:
    source = textwrap.dedent(block.text)
    try:
        tree = ast.parse(source)
        compile(tree, block.id, "exec")
    except SyntaxError:  # e.g. `await` outside a function: an excerpt of a handler
        tree = None
    if tree is not None and any(isinstance(n, (ast.AsyncFunctionDef, ast.FunctionDef))
                                and n.name.startswith("test_") for n in tree.body):
        app = _copy_app(block, tmp_path)
        (app / "pyproject.toml").write_text('[tool.pytest.ini_options]\nasyncio_mode = "auto"\n')
        (app / "tests").mkdir(exist_ok=True)
        (app / "tests" / "test_doc_example.py").write_text(source)
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "tests/test_doc_example.py"], cwd=app, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{block.id}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        return
    if tree is not None and not _is_worker_script(tree):  # a whole module (a plug-in file)
        compile(source, block.id, "exec")
        return
    if tree is not None:
        (tmp_path / "doc_worker.py").write_text(source)
        (tmp_path / "wrangler_like.toml").write_text('name = "doc"\nmain = "doc_worker.py"\n')
        check = (
            "import asyncio\n"
            "from edgelet.testing import Platform\n"
            "async def main():\n"
            "    async with Platform('wrangler_like.toml') as p:\n"
            "        pass\n"
            "asyncio.run(main())\n")
        result = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"{block.id}: the Worker does not load:\n{result.stderr[-3000:]}"
        return
    # an excerpt of a Worker: it must compile as the body of an async handler
    body = textwrap.indent(source, "        ")
    wrapped = f"class _Doc:\n    async def _handler(self, request, env, ctx):\n{body}\n        pass\n"
    try:
        compile(wrapped, block.id, "exec")
    except SyntaxError as exc:
        pytest.fail(f"{block.id}: does not compile: {exc}")


def _commands(block: Block) -> list[tuple[str, bool]]:
    """(command, must_fail) pairs; continuation lines are joined."""
    out: list[tuple[str, bool]] = []
    lines = block.text.splitlines()
    if block.lang == "console":
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:]
            i += 1
            while command.endswith("\\") and i < len(lines):
                command = command[:-1] + " " + lines[i].strip()
                i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            out.append((command, any("Error" in s or s.startswith("✘") for s in shown)))
        return out
    pending = ""
    for line in lines:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            out.append((pending, False))
            pending = ""
    return out


def _run_shell(block: Block, tmp_path: Path) -> None:
    commands = _commands(block)
    assert commands, f"{block.id}: no command found"
    app = _copy_app(block, tmp_path)
    port = free_port()
    server = DevServer(app, [], port)
    env = {**os.environ, "EDGELET_PORT": str(port), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "NO_COLOR": "1"}
    server.start()
    prelude = ""  # VAR=value lines stay set for the commands after them, as in one shell
    try:
        for command, must_fail in commands:
            if re.match(r"^(\S*/)?edgelet dev\b", command.strip()):
                continue  # the running dev is this command
            command = command.replace("8787", str(port))
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$", command.strip()):
                prelude += command.strip() + "\n"
                continue
            command = prelude + command
            long_running = re.match(r"^(\S*/)?edgelet tail\b", command.strip()) is not None
            try:
                result = subprocess.run(["bash", "-c", command], cwd=app, env=env, capture_output=True,
                                        text=True, timeout=3 if long_running else 120)
            except subprocess.TimeoutExpired:
                assert long_running, f"{block.id}: `{command}` did not finish"
                continue
            failed = result.returncode != 0
            assert failed == must_fail, (
                f"{block.id}: `{command}` exited {result.returncode}"
                f"{' (the doc shows an error)' if must_fail else ''}:\n{result.stdout[-2000:]}\n"
                f"{result.stderr[-2000:]}\n-- dev's log --\n{server.logs()[-2000:]}")
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_example_runs_as_written(block: Block, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    if block.lang == "python":
        _run_python(block, tmp_path)
    else:
        _run_shell(block, tmp_path)


def test_every_opt_out_says_why() -> None:
    assert BLOCKS, "no examples found"
    for block in BLOCKS:
        if block.skip is not None:
            assert len(block.skip) > 10, f"{block.id}: say why the example cannot run offline"
