"""A Worker's Python dependencies: pip installs them into a folder only its isolates see.

A Worker declares packages as pywrangler reads them: ``[project] dependencies`` of the
``pyproject.toml`` beside its script, else beside its config file. edgelet installs them
with ``pip install --target`` into ``<state>/python/<hash of the list>/`` (a cache folder
under the user's cache dir with ``--in-memory``), once, and again only when the list
changes; the folder is complete or absent, never half-written (it is built aside and
renamed). A ``python_modules/`` folder there (pywrangler's vendored packages) is honoured.

Packages that exist only for Pyodide, Cloudflare's runtime, are named as such: the SDK and
the stubs of Pyodide's ``js`` module are skipped with a warning (edgelet provides
``workers``, ``js`` and ``pyodide`` itself), the rest stop start-up with the reason.
pip's own settings apply (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``pip.conf``).

A requirement that edgelet's own environment already satisfies (name, version and markers)
is not installed again, as pip itself would skip it: isolates import from that environment
too. Without this, the demo app beside edgelet's own pyproject.toml would pip-install every
package edgelet depends on before it could start (a 30 s wait, and a failure offline).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path

from edgelet.config import PlatformConfig, WorkerConfig
from edgelet.supervisor import IsolateStartError

log = logging.getLogger("edgelet")

#: packages edgelet provides itself: skipped with a warning
PROVIDED = {
    "workers-runtime-sdk": "Cloudflare's Python Workers SDK; edgelet provides the `workers` module itself",
    "workers-py": "pywrangler, Cloudflare's packaging tool; edgelet installs dependencies itself",
    "webtypy": "type stubs of Pyodide's `js` module; edgelet provides `js` itself",
    "pyodide-py": "Pyodide's own `pyodide` package; edgelet provides `pyodide` itself",
    "pyodide-http": "Pyodide's patch that lets requests use the browser's fetch; CPython's networking works as is",
}
#: packages that only work inside Pyodide: start-up stops naming them
PYODIDE_ONLY = {
    "micropip": "Pyodide's run-time package installer; declare the packages in [project] dependencies instead",
    "pyodide-js": "the JavaScript half of Pyodide",
}
#: the marker of a finished install folder
_DONE = ".edgelet-complete"


class DependencyError(IsolateStartError):
    """A Worker's declared package could not be installed; start-up stops."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None)


def normalize(name: str) -> str:
    """A distribution name as PyPI compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return normalize(match.group(1)) if match else requirement.strip()


def find_pyproject(worker: WorkerConfig) -> Path | None:
    """The pyproject.toml that declares ``worker``'s packages, as pywrangler finds it."""
    for folder in (worker.main.parent, worker.config_file.parent):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


#: declared()'s lists by (file, size, mtime): Workers that share a pyproject.toml read it once
_declared: dict[tuple[Path, int, int], list[str]] = {}


def declared(pyproject: Path) -> list[str]:
    """``[project] dependencies`` of ``pyproject``; a malformed file stops start-up naming it."""
    try:
        info = pyproject.stat()
        key = (pyproject, info.st_size, info.st_mtime_ns)
        if key in _declared:
            return list(_declared[key])
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DependencyError(f"{pyproject}: cannot read it as TOML ({exc}); fix the file or remove it") from None
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise DependencyError(f"{pyproject}: [project] dependencies must be a list of strings such as "
                              f'["fastapi", "jinja2>=3"]')
    found = _declared[key] = [d.strip() for d in deps if d.strip()]
    return list(found)


def vendored_folders(worker: WorkerConfig) -> list[Path]:
    """``python_modules/`` beside the script or the config, when present."""
    seen: list[Path] = []
    for folder in (worker.main.parent, worker.config_file.parent):
        candidate = folder / "python_modules"
        if candidate.is_dir() and candidate not in seen:
            seen.append(candidate)
    return seen


def cache_root(state_dir: Path | None) -> Path:
    """Where install folders live: the state folder, or the user's cache dir in memory."""
    if state_dir is not None:
        return state_dir / "python"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgelet" / "python"


def install_key(requirements: Iterable[str]) -> str:
    """The folder name for one list: the same list (in any order) on the same Python reuses it."""
    text = json.dumps([f"py{sys.version_info[0]}.{sys.version_info[1]}", *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def split(worker: WorkerConfig, pyproject: Path, requirements: list[str]) -> list[str]:
    """The requirements pip must install: provided ones are dropped with a warning,
    Pyodide-only ones stop start-up."""
    keep: list[str] = []
    for req in requirements:
        name = requirement_name(req)
        if name in PROVIDED:
            log.warning("Worker %r: %s lists %r, skipped: %s", worker.name, pyproject, req, PROVIDED[name])
        elif name in PYODIDE_ONLY:
            raise DependencyError(
                f"Worker {worker.name!r}: {pyproject} [project] dependencies lists {req!r}, a package that "
                f"exists only for Pyodide ({PYODIDE_ONLY[name]}). edgelet runs Workers on CPython: "
                f"remove it from the list")
        else:
            keep.append(req)
    return keep


def already_satisfied(requirement: str) -> bool:
    """True when the running environment holds a version ``requirement`` accepts (or its
    markers exclude this platform); unparsable text is left for pip to explain."""
    # imported here: ~25 ms that `dev` spends only for a Worker that declares packages
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return False
    if req.marker is not None and not req.marker.evaluate():
        return True
    if req.url:
        return False
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    if not req.specifier.contains(version, prereleases=True):
        return False
    return all(_extra_satisfied(req.name, extra) for extra in req.extras)


#: already_satisfied's answers, valid while the environment's folders are unchanged (_stamp)
_answers: dict[str, bool] = {}
_answers_stamp: tuple[int, ...] | None = None


def _stamp() -> tuple[int, ...]:
    """When each package folder on ``sys.path`` last changed: installing or removing a
    package adds or removes a ``.dist-info`` entry in one of them, which moves its mtime.
    (Only ``site-packages``/``dist-packages``: the others, such as the current folder,
    change for reasons that have nothing to do with packages.)"""
    stamp = []
    for folder in sys.path:
        if folder.endswith(("site-packages", "dist-packages")):
            try:
                stamp.append(os.stat(folder).st_mtime_ns)
            except OSError:
                stamp.append(0)
    return tuple(stamp)


def satisfied(requirements: Iterable[str]) -> dict[str, bool]:
    """:func:`already_satisfied` of each requirement, remembered while the environment is
    unchanged. Why: every Worker whose pyproject.toml is the same file (the demo app's nine,
    beside edgelet's own) asks the same questions, and each answer reads a package's
    METADATA through the email parser: ~100 of them made a test's ``Platform`` start 6x
    the CPU of the round-2 base (90 ms against 15 ms)."""
    global _answers_stamp
    stamp = _stamp()
    if stamp != _answers_stamp:
        _answers.clear()
        _answers_stamp = stamp
    found = {}
    for requirement in requirements:
        answer = _answers.get(requirement)
        if answer is None:
            answer = _answers[requirement] = already_satisfied(requirement)
        found[requirement] = answer
    return found


def _extra_satisfied(name: str, extra: str) -> bool:
    """Every package ``name[extra]`` adds is present in a version it accepts (one level, as
    the extras of edgelet's own dependencies need)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    for line in metadata.requires(name) or []:
        dep = Requirement(line)
        if dep.marker is None or not dep.marker.evaluate({"extra": extra}):
            continue
        try:
            if not dep.specifier.contains(metadata.version(dep.name), prereleases=True):
                return False
        except metadata.PackageNotFoundError:
            return False
    return True


async def install_worker(worker: WorkerConfig, state_dir: Path | None) -> list[str]:
    """The folders to put on ``worker``'s ``sys.path`` (installed packages, vendored ones)."""
    paths = [str(p) for p in vendored_folders(worker)]
    pyproject = find_pyproject(worker)
    if pyproject is None or worker.is_wasm:
        return paths
    wanted = split(worker, pyproject, declared(pyproject))
    known = satisfied(wanted)
    requirements = [r for r in wanted if not known[r]]
    if not requirements:
        return paths
    target = cache_root(state_dir) / install_key(requirements)
    if not (target / _DONE).exists():
        await _pip_install(worker, pyproject, requirements, target)
    return [*paths, str(target)]


async def install_all(config: PlatformConfig, state_dir: Path | None) -> dict[str, list[str]]:
    """Worker name -> its extra ``sys.path`` folders, installing what is missing."""
    return {w.name: await install_worker(w, state_dir) for w in config.workers}


async def _pip_install(worker: WorkerConfig, pyproject: Path, requirements: list[str], target: Path) -> None:
    """``pip install --target`` into a folder beside ``target``, renamed into place when done."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--target", str(building), "--no-input",
               "--disable-pip-version-check", "--progress-bar", "off", *requirements]
    t0 = time.monotonic()
    shown = ", ".join(requirements)
    lines: list[str] = []
    from edgelet.progress import progress_bar
    log.info("Worker %r: installing %s (from %s) into %s", worker.name, shown, pyproject, target)
    # the bar counts the declared packages pip has collected, then the install itself
    wanted = {requirement_name(r) for r in requirements}
    steps = len(wanted) + 1
    with progress_bar(f"Worker {worker.name!r}: installing {shown}"[:80], steps) as bar:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            step = line.strip()
            if step.startswith(("Collecting", "Downloading", "Installing", "Processing", "Building")):
                bar.update(description=f"Worker {worker.name!r}: {step[:70]}")
            collected = re.match(r"(?:Collecting|Processing)\s+(\S+)", step)
            if collected and requirement_name(collected.group(1)) in wanted:
                wanted.discard(requirement_name(collected.group(1)))
                bar.advance()
        code = await process.wait()
        if code == 0:
            bar.update(completed=steps, description=f"Worker {worker.name!r}: installed {shown}"[:80])
    if code != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise DependencyError(_failure(worker, pyproject, requirements, lines))
    (building / _DONE).write_text(json.dumps(requirements))
    try:
        os.rename(building, target)
    except OSError:  # another edgelet finished the same list first: keep its folder
        shutil.rmtree(building, ignore_errors=True)
    log.info("Worker %r: installed %d package(s) in %.1f s", worker.name, len(requirements), time.monotonic() - t0)


def _failure(worker: WorkerConfig, pyproject: Path, requirements: list[str], lines: list[str]) -> str:
    """One message: the package pip could not install, pip's reason, and the fix."""
    errors = [line.strip() for line in lines if line.strip().startswith("ERROR:")]
    culprit = None
    for line in errors:
        match = re.search(r"(?:No matching distribution found for|satisfies the requirement)\s+(\S+)", line)
        if match:
            culprit = match.group(1)
            break
    reason = " ".join(errors) or " ".join(lines[-5:]) or "pip failed without a message"
    names = repr(culprit) if culprit else ", ".join(repr(r) for r in requirements)
    return (f"Worker {worker.name!r}: could not install {names}, declared in {pyproject} [project] "
            f"dependencies. pip says: {reason} Fix: correct the name or version, make it reachable "
            f"(PIP_INDEX_URL / PIP_FIND_LINKS), or remove it from the list")

