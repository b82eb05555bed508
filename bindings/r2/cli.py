"""``edgelet r2``: wrangler's ``r2 bucket list`` and ``r2 object get/put/delete BUCKET/KEY``.

Each command talks to a running ``edgelet dev`` (``--port``/``--ip``) through the control
API; when none answers it opens the state folder (``--persist-to``) directly. Bodies are
streamed both ways in chunks, so a large object never sits whole in memory. ``--local`` is
accepted for wrangler habits and changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import click
import httpx

from edgelet.bindings.r2 import errors
from edgelet.bindings.r2.storage import CHUNK, MAX_OBJECT_BYTES, R2Storage
from edgelet.client import (
    PROGRESS_BYTES,
    ApiClient,
    backend_options,
    print_table,
    with_progress,
)
from edgelet.progress import progress_bar


def _fail(resp: httpx.Response, what: str) -> click.ClickException:
    try:
        data = json.loads(resp.read())
        message = "; ".join(f"{e.get('message')} (code {e.get('code')})" for e in data.get("errors", []))
    except ValueError:
        message = resp.text[:200]
    return click.ClickException(f"{what}: {message or f'HTTP {resp.status_code}'}")


class RemoteR2:
    """Through the control API of a running ``edgelet dev``."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def _url(self, bucket: str, key: str | None = None) -> str:
        url = f"{self.client.base}/r2/buckets/{quote(bucket, safe='')}/objects"
        return url if key is None else f"{url}/{quote(key, safe='/')}"

    def buckets(self) -> list[dict[str, Any]]:
        return self.client.get("/r2/buckets")

    def get(self, bucket: str, key: str, out: BinaryIO, label: str | None = None) -> int:
        with httpx.stream("GET", self._url(bucket, key), headers=self.client.headers, timeout=None) as resp:
            if resp.status_code != 200:
                raise _fail(resp, f"reading {bucket}/{key}")
            length = resp.headers.get("content-length", "")
            return _copy_out(resp.iter_bytes(CHUNK), out, int(length) if length.isdigit() else None, label)

    def put(self, bucket: str, key: str, source: Iterator[bytes], http: dict[str, str]) -> dict[str, Any]:
        headers = dict(self.client.headers)
        if "contentType" in http:
            headers["content-type"] = http["contentType"]
        resp = httpx.put(self._url(bucket, key), content=source, headers=headers, timeout=None)
        if resp.status_code != 200:
            raise _fail(resp, f"writing {bucket}/{key}")
        return resp.json()["result"]

    def delete(self, bucket: str, key: str) -> None:
        resp = httpx.delete(self._url(bucket, key), headers=self.client.headers, timeout=60)
        if resp.status_code != 200:
            raise _fail(resp, f"deleting {bucket}/{key}")


class LocalR2:
    """Straight onto ``<persist-to>/r2.sqlite3`` and ``<persist-to>/r2/`` when no dev answers."""

    def __init__(self, state_dir: Path, *, create: bool) -> None:
        from edgelet.bindings.r2.plugin import DATABASE, FOLDER
        from edgelet.clock import Clock

        path = state_dir / f"{DATABASE}.sqlite3"
        if not path.exists() and not create:
            raise click.ClickException(
                f"no `edgelet dev` answers and there is no R2 state at {path}; start `edgelet dev`, or pass "
                f"--persist-to (and --port) to point at the right one")
        from edgelet.state import StateError, open_database
        try:
            conn = open_database(path)
        except StateError as exc:
            raise click.ClickException(str(exc)) from None
        self.storage = R2Storage(conn, state_dir / FOLDER, Clock())
        self.where = f"R2 state {path}"

    def resolve(self, name: str) -> str:
        records: list[tuple[str, str, str]] = []
        try:  # the config here first; then what the last `dev` recorded
            from edgelet.config import load_config
            config = load_config(cwd=Path.cwd())
            records += [(w.name, d.binding, d.bucket_name) for w in config.workers for d in w.decls("r2")]
        except Exception:  # no readable config here: the recorded bindings must do
            pass
        records += self.storage.recorded_bindings()
        names = {b for _, _, b in records} | set(self.storage.buckets())
        if name in names:
            return name
        for _, binding, bucket in records:
            if binding == name:
                return bucket
        return name  # a new bucket: R2 buckets spring into being locally on first write

    def buckets(self) -> list[dict[str, Any]]:
        usage = self.storage.usage()
        out: dict[str, dict[str, Any]] = {}
        for worker, binding, bucket in self.storage.recorded_bindings():
            out.setdefault(bucket, {"name": bucket, "bindings": []})["bindings"].append(
                {"worker": worker, "binding": binding})
        for bucket in self.storage.buckets():
            out.setdefault(bucket, {"name": bucket, "bindings": []})
        for bucket, entry in out.items():
            entry["object_count"], entry["size"] = usage.get(bucket, (0, 0))
        return [out[b] for b in sorted(out)]

    def get(self, bucket: str, key: str, out: BinaryIO, label: str | None = None) -> int:
        found = self.storage.open_read(self.resolve(bucket), key, None, None, self.where)
        if found is None:
            raise click.ClickException(f"The specified key does not exist: {errors.show_key(key)} in R2 bucket "
                                       f"{bucket!r} ({self.where})")
        reader = found[1]
        assert reader is not None
        return _copy_out(iter(lambda: reader.read(CHUNK), b""), out, found[0]["size"], label)

    def put(self, bucket: str, key: str, source: Iterator[bytes], http: dict[str, str]) -> dict[str, Any]:
        from edgelet.bindings.r2.storage import check_key
        bucket = self.resolve(bucket)
        check_key(key, self.where)
        writer = self.storage.begin_write(bucket, (), MAX_OBJECT_BYTES, f"the body of {errors.show_key(key)}",
                                          self.where)
        try:
            for chunk in source:
                writer.write(chunk)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        meta = self.storage.commit_put(bucket, key, writer, {"httpMetadata": http}, self.where)
        assert meta is not None
        return meta

    def delete(self, bucket: str, key: str) -> None:
        self.storage.delete(self.resolve(bucket), [key], self.where)


def _copy_out(chunks: Iterator[bytes], out: BinaryIO, total: int | None, label: str | None) -> int:
    """Write ``chunks`` to ``out``; a progress bar (``label``) for a large object in a terminal."""
    size = 0
    with progress_bar(label or "", total, unit="bytes",
                      when=label is not None and total is not None and total >= PROGRESS_BYTES) as bar:
        for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
            bar.advance(len(chunk))
    return size


#: Add --persist-to/--local (and --port/--ip) and hand the command ``r2`` (a backend).
_backend = backend_options(RemoteR2, LocalR2, name="r2", creates="put_object")


def _split(path: str) -> tuple[str, str]:
    bucket, sep, key = path.partition("/")
    if not bucket or not sep or not key:
        raise click.BadParameter(f"{path!r} is not BUCKET/KEY; write the bucket name (or binding), a slash, "
                                 f"then the key, e.g. my-bucket/images/cat.png", param_hint="OBJECT_PATH")
    return bucket, key


@click.group()
def r2() -> None:
    """Read and write R2 buckets (of a running `edgelet dev`, or of the state folder)."""


@r2.group()
def bucket() -> None:
    """R2 buckets known to the platform."""


@bucket.command("list")
@_backend
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_buckets(r2: Any, as_json: bool) -> None:
    """Bucket names, the bindings that reach them, their object counts and sizes."""
    rows = r2.buckets()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table([{"name": r["name"], "objects": r["object_count"], "bytes": r["size"],
                  "bindings": ", ".join(f"{b['worker']}.{b['binding']}" for b in r["bindings"])} for r in rows],
                ["name", "objects", "bytes", "bindings"])


@r2.group("object")
def object_() -> None:
    """Get, put and delete objects: BUCKET/KEY."""


@object_.command("get")
@_backend
@click.argument("object_path", metavar="BUCKET/KEY")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False), help="Write the object to this file.")
@click.option("-p", "--pipe", is_flag=True, help="Write the object to standard output.")
def get_object(r2: Any, object_path: str, file: str | None, pipe: bool) -> None:
    """Download an object (to --file, to stdout with --pipe, else to a file named after the key)."""
    bucket_name, key = _split(object_path)
    if file and pipe:
        raise click.UsageError("give --file or --pipe, not both")
    if pipe:
        r2.get(bucket_name, key, sys.stdout.buffer)
        sys.stdout.flush()
        return
    name = file or key.rsplit("/", 1)[-1]
    if not name:
        raise click.UsageError(f"key {key!r} ends with '/', so it names no file; give --file FILE or --pipe")
    target = Path(name)
    partial = target.with_name(target.name + ".part")
    try:
        out = open(partial, "wb")
    except OSError as exc:  # before any byte is read: nothing to clean up
        raise click.ClickException(
            f"cannot write {target}: {exc.strerror} ({partial}). Fix: create the folder or choose "
            f"a writable --file path; nothing was downloaded") from None
    try:
        with out:
            size = r2.get(bucket_name, key, out, f"Downloading {bucket_name}/{key}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"Downloaded {size} bytes of {bucket_name}/{key} to {target}.")


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


@object_.command("put")
@_backend
@click.argument("object_path", metavar="BUCKET/KEY")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False, exists=True), help="Upload this file.")
@click.option("-p", "--pipe", is_flag=True, help="Upload standard input.")
@click.option("--content-type", "--ct", "content_type", default=None, help="The object's content type.")
@click.option("--content-disposition", "--cd", "content_disposition", default=None)
@click.option("--content-encoding", "--ce", "content_encoding", default=None)
@click.option("--content-language", "--cl", "content_language", default=None)
@click.option("--cache-control", "--cc", "cache_control", default=None)
def put_object(r2: Any, object_path: str, file: str | None, pipe: bool, content_type: str | None,
               content_disposition: str | None, content_encoding: str | None, content_language: str | None,
               cache_control: str | None) -> None:
    """Upload --file or standard input (--pipe) to BUCKET/KEY."""
    bucket_name, key = _split(object_path)
    if bool(file) == pipe:
        raise click.UsageError("give either --file FILE or --pipe")
    http = {k: v for k, v in (("contentType", content_type), ("contentDisposition", content_disposition),
                              ("contentEncoding", content_encoding), ("contentLanguage", content_language),
                              ("cacheControl", cache_control)) if v}
    if file:
        with open(file, "rb") as source:
            chunks = with_progress(_read_chunks(source), os.fstat(source.fileno()).st_size,
                                   f"Uploading {bucket_name}/{key}")
            meta = r2.put(bucket_name, key, chunks, http)
    else:
        meta = r2.put(bucket_name, key, _read_chunks(sys.stdin.buffer), http)
    click.echo(f"Uploaded {meta['size']} bytes to {bucket_name}/{key} (etag {meta['etag']}).", err=pipe)


@object_.command("delete")
@_backend
@click.argument("object_path", metavar="BUCKET/KEY")
def delete_object(r2: Any, object_path: str) -> None:
    """Delete BUCKET/KEY (deleting an absent key is not an error)."""
    bucket_name, key = _split(object_path)
    r2.delete(bucket_name, key)
    click.echo(f"Deleted {bucket_name}/{key}.")
