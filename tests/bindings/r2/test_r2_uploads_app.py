"""The upload app in tests/fixtures/apps/r2-uploads, run under `edgelet dev` as a user would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "r2-uploads"


def test_upload_app_round_trip(dev: Any, tmp_path: Path) -> None:
    shutil.copytree(APP, tmp_path, dirs_exist_ok=True)
    s = dev(None, cwd=tmp_path)
    photo = os.urandom(2 * 1024 * 1024 + 5)
    put = s.request("PUT", "/files/photos/cat.jpg", content=photo, headers={"content-type": "image/jpeg"})
    assert put.status_code == 201 and put.json()["size"] == len(photo)
    got = s.get("/files/photos/cat.jpg")
    assert got.status_code == 200 and got.content == photo and got.headers["content-type"] == "image/jpeg"
    etag = got.headers["etag"]
    assert s.get("/files/photos/cat.jpg", headers={"if-none-match": etag}).status_code == 304
    part = s.get("/files/photos/cat.jpg", headers={"range": "bytes=-10"})
    assert part.status_code == 206 and part.content == photo[-10:]

    form = s.post("/files", files={"file": ("notes.txt", b"remember the milk", "text/plain")})
    assert form.status_code == 201, form.text
    url = form.json()["url"]
    assert url.endswith("-notes.txt")
    served = s.get(url)
    assert served.text == "remember the milk" and served.headers["content-type"] == "text/plain"

    listing = s.get("/files").json()
    assert sorted(i["key"] for i in listing) == sorted(["photos/cat.jpg", url[len("/files/"):]])
    assert s.request("DELETE", "/files/photos/cat.jpg").json() == {"deleted": "photos/cat.jpg"}
    assert s.get("/files/photos/cat.jpg").status_code == 404
    # the uploads survive a restart: they are files under the state folder
    s.stop()
    s2 = dev(None, cwd=tmp_path)
    assert s2.get(url).text == "remember the milk"
