"""A Worker's pyproject dependencies: installed by pip (from a wheel this test builds, no
network) into the state folder once, again when the list changes, seen only by that
Worker; python_modules/ honoured; a package that cannot be installed stops start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgelet.python_deps import already_satisfied, install_key

BACKEND = '''
"""A zero-dependency PEP 517 backend, so `pip wheel --no-build-isolation` needs no network."""
import base64, hashlib, os, zipfile

NAME, VERSION = os.environ["TINY_NAME"], os.environ["TINY_VERSION"]


def _record(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    module = NAME.replace("-", "_")
    filename = f"{module}-{VERSION}-py3-none-any.whl"
    info = f"{module}-{VERSION}.dist-info"
    files = {
        f"{module}.py": f"VERSION = {VERSION!r}\\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = "".join(f"{n},{_record(d)},{len(d)}\\n" for n, d in files.items()) + f"{info}/RECORD,,\\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
        zf.writestr(f"{info}/RECORD", record)
    return filename
'''


def build_wheel(tmp: Path, name: str, version: str, wheels: Path) -> None:
    """A tiny package `name` written into tmp and built with `pip wheel` into ``wheels``."""
    src = tmp / f"src-{name}-{version}"
    src.mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "tiny_backend"\nbackend-path = ["."]\n')
    (src / "tiny_backend.py").write_text(BACKEND)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True,
                   env={**__import__("os").environ, "TINY_NAME": name, "TINY_VERSION": version})


@pytest.fixture
def wheels(tmp_path, monkeypatch):
    """A local package index folder; pip (run by edgelet dev) reads it through PIP_* variables."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    build_wheel(tmp_path, "edgelet-tinydep", "1.0", folder)
    build_wheel(tmp_path, "edgelet-tinydep", "2.0", folder)
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return folder


CONFIG = """
[[workers]]
name = "app"
main = "a/w.py"

[[workers]]
name = "other"
main = "b/w.py"
"""

APP = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        import edgelet_tinydep
        import vendored_helper
        return Response(f"tinydep {edgelet_tinydep.VERSION}, {vendored_helper.NAME}")
"""

OTHER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        try:
            import edgelet_tinydep  # noqa: F401
        except ImportError:
            return Response("not visible")
        return Response("visible")
"""


def pyproject(*deps: str) -> str:
    listed = ", ".join(f'"{d}"' for d in deps)
    return f'[project]\nname = "app"\nversion = "0.1.0"\ndependencies = [{listed}]\n'


def files(*deps: str) -> dict[str, str]:
    return {"wrangler_like.toml": CONFIG, "a/w.py": APP, "a/pyproject.toml": pyproject(*deps),
            "a/python_modules/vendored_helper.py": 'NAME = "vendored"\n', "b/w.py": OTHER}


def call_other(s) -> str:
    import httpx
    # NAME.localhost picks a Worker (SPEC 5)
    return httpx.get(s.url + "/", headers={"host": "other.localhost"}, timeout=30).text


def test_declared_packages_install_once_reinstall_on_change_and_stay_private(dev, wheels, tmp_path):
    s = dev(files("edgelet-tinydep==1.0", "workers-runtime-sdk"))
    assert s.get("/").text == "tinydep 1.0, vendored"
    logs = s.logs()
    assert "installing edgelet-tinydep==1.0" in logs
    assert "'workers-runtime-sdk', skipped" in logs and "edgelet provides the `workers` module" in logs
    folders = [p.parent for p in (tmp_path / ".edgelet/state/python").glob("*/.edgelet-complete")]
    assert len(folders) == 1 and (folders[0] / "edgelet_tinydep.py").is_file()
    s.stop()

    again = dev(None, cwd=tmp_path)  # same list: nothing installed
    assert again.get("/").text == "tinydep 1.0, vendored"
    assert "installing" not in again.logs()
    again.stop()

    (tmp_path / "a/pyproject.toml").write_text(pyproject("edgelet-tinydep==2.0"))
    changed = dev(None, cwd=tmp_path)
    assert changed.get("/").text == "tinydep 2.0, vendored"
    assert "installing edgelet-tinydep==2.0" in changed.logs()


def test_only_the_declaring_worker_sees_its_packages(dev, wheels):
    s = dev(files("edgelet-tinydep==1.0"), "--in-memory")
    assert s.get("/").text == "tinydep 1.0, vendored"
    assert call_other(s) == "not visible"


def test_a_package_that_cannot_be_installed_stops_start_up_naming_it(dev, wheels, tmp_path):
    with pytest.raises(RuntimeError) as info:
        dev(files("edgelet-tinydep==1.0", "no-such-package-edgelet"), "--in-memory")
    text = str(info.value)
    assert "could not install 'no-such-package-edgelet'" in text
    assert "No matching distribution found for no-such-package-edgelet" in text
    assert "a/pyproject.toml" in text and "Traceback" not in text
    assert not list((tmp_path / "cache").rglob("*.edgelet-complete"))  # nothing half-written kept


def test_a_pyodide_only_package_is_named_as_such(dev, wheels):
    with pytest.raises(RuntimeError) as info:
        dev(files("micropip"), "--in-memory")
    assert "'micropip', a package that exists only for Pyodide" in str(info.value)


def test_the_install_folder_depends_on_the_list_not_its_order():
    assert install_key(["a", "b==1"]) == install_key(["b==1", "a"]) != install_key(["a", "b==2"])


def test_packages_edgelet_already_has_are_not_installed_again(dev, wheels, tmp_path):
    # the demo app sits beside edgelet's own pyproject.toml: its list is all satisfied here
    s = dev(files("edgelet-tinydep==1.0", "click>=8", "uvicorn[standard]>=0.30",
                  "pywin32; sys_platform == 'win32'"))
    assert s.get("/").text == "tinydep 1.0, vendored"
    logs = s.logs()
    assert "installing edgelet-tinydep==1.0 " in logs and "click" not in logs and "pywin32" not in logs


def test_already_satisfied_reads_versions_extras_and_markers():
    assert already_satisfied("click>=8") and already_satisfied("uvicorn[standard]")
    assert already_satisfied("pywin32; sys_platform == 'win32'")  # not for this platform
    assert not already_satisfied("click>=999") and not already_satisfied("no-such-package-edgelet")
    assert not already_satisfied("not a requirement ==")  # left for pip to explain


def test_the_demo_app_starts_without_installing_anything():
    """README's first command runs `edgelet dev` at the repository root, whose pyproject.toml
    is edgelet's own: every package it lists is already installed."""
    from edgelet.config import load_config
    from edgelet.python_deps import declared, find_pyproject, split

    root = Path(__file__).resolve().parents[2]
    for worker in load_config([root / "wrangler_like.toml"]).workers:
        pyproject = find_pyproject(worker)
        if pyproject is not None and not worker.is_wasm:
            left = [r for r in split(worker, pyproject, declared(pyproject)) if not already_satisfied(r)]
            assert left == [], f"{worker.name} would pip-install {left}"
