"""R2 storage: metadata rows in SQLite (schema.py), bodies as files under the state folder.

Layout: ``<root>/<bucket>/blobs/<version>`` holds object bodies, ``<root>/<bucket>/multipart/
<uploadId>/<part>-<token>`` the parts of unfinished uploads, ``<root>/<bucket>/tmp/`` bodies
being written. A write goes to ``tmp/``, is fsynced, renamed into place and only then
committed to SQLite; a blob an object row no longer names is removed after the commit. So
after a kill -9 a key holds the old body or the new one, whole, and what a crash leaves
behind (temp files, renamed-but-uncommitted blobs, bodies whose unlink was cut short) is
removed by :meth:`R2Storage.cleanup` at the next start.

Everything here is synchronous and runs on the host's loop thread, except
:meth:`BlobWriter.finish` and :func:`copy_into` (fsync, copying parts), which the caller may
run in a thread: they touch only their own files.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from edgelet.bindings.r2 import conditions, errors, schema

#: bytes per message between host and isolate, and per read of a body file
CHUNK = 1 << 20
MAX_KEY_BYTES = 1024
MAX_OBJECT_BYTES = 5 * 1024**3 - 5 * 1024**2
MAX_PART_BYTES = 5 * 1024**3
MIN_PART_BYTES = 5 * 1024**2
MAX_PARTS = 10_000
MAX_CUSTOM_METADATA_BYTES = 2048
MAX_LIST = 1000
MAX_DELETE = 1000
#: bodies up to this size live in their metadata row: one SQLite commit (WAL, durable across
#: kill -9 like every other binding's state) instead of a file, an fsync, a rename and an
#: unlink, which cost ten times as much as the commit for a 1 KiB object
INLINE_MAX = 16 * 1024
HASHES = ("md5", "sha1", "sha256", "sha384", "sha512")
_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}


def check_key(key: Any, where: str) -> str:
    """A key R2 accepts: a non-empty str of at most 1024 UTF-8 bytes."""
    if not isinstance(key, str):
        raise TypeError(f"{where}: the key must be a str, got {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise errors.R2Error(where, errors.INVALID_OBJECT_NAME,
                             f"key {errors.show_key(key)} is not valid Unicode (a lone surrogate)") from None
    if size == 0:
        raise errors.R2Error(where, errors.INVALID_OBJECT_NAME, "the key is empty; give a non-empty key")
    if size > MAX_KEY_BYTES:
        raise errors.R2Error(where, errors.INVALID_OBJECT_NAME,
                             f"key {errors.show_key(key)} is {size} bytes in UTF-8; keys are at most "
                             f"{MAX_KEY_BYTES} bytes")
    return key


#: the storage classes R2 has (r2/buckets/storage-classes); objects default to Standard
STORAGE_CLASSES = ("Standard", "InfrequentAccess")


def check_storage_class(value: Any, where: str) -> str:
    """``storageClass`` of a put or an upload: one R2 has, else an error naming both.

    Why here and not only in the Worker: the host never trusts what crosses the channel, and a
    class R2 does not have must never reach a stored row."""
    if value is None:
        return "Standard"
    if not isinstance(value, str):
        raise TypeError(f"{where}: storageClass must be a str, 'Standard' or 'InfrequentAccess'; "
                        f"got {type(value).__name__}")
    if value not in STORAGE_CLASSES:
        raise errors.R2Error(where, errors.INVALID_ARGUMENT,
                             f"storageClass {value[:80]!r} is not an R2 storage class; use 'Standard' or "
                             f"'InfrequentAccess' (names are case-sensitive); nothing was stored")
    return value


def check_custom_metadata(meta: dict[str, str], key: str, where: str) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > MAX_CUSTOM_METADATA_BYTES:
        raise errors.R2Error(where, errors.METADATA_TOO_LARGE,
                             f"customMetadata of {errors.show_key(key)} is {size} bytes (names plus "
                             f"values); the limit is {MAX_CUSTOM_METADATA_BYTES}")


def _check_part_sizes(sizes: list[tuple[int, int]], where: str) -> None:
    """R2's multipart rule beyond the 5 MiB minimum: every part but the last has the same size,
    and the last is no larger (docs: r2/objects/multipart-objects). Cloudflare refuses the
    complete() otherwise, so an upload with uneven parts must fail here too, not in production.
    ``sizes`` is ``(partNumber, size)`` in part-number order."""
    if len(sizes) < 2:
        return
    first_number, size = sizes[0]
    for number, other in sizes[1:-1]:
        if other != size:
            raise errors.R2Error(where, errors.BAD_UPLOAD,
                                 f"part {number} is {other} bytes but part {first_number} is {size}; every part "
                                 f"but the last must be the same size. Nothing was stored; the upload stays "
                                 f"open, so upload part {number} again with {size} bytes and complete again")
    last_number, last = sizes[-1]
    if last > size:
        raise errors.R2Error(where, errors.BAD_UPLOAD,
                             f"the last part ({last_number}) is {last} bytes, larger than the other parts "
                             f"({size} bytes); the last part may be smaller, never larger. Nothing was "
                             f"stored; the upload stays open, so split the data into equal parts of at "
                             f"least {size} bytes and complete again")


def _dirname(bucket: str) -> str:
    """A bucket's folder name: no separators, no '.'/'..' (the name may be any string)."""
    name = quote(bucket, safe="")
    return name.replace(".", "%2E") if name in (".", "..") else name


class BlobWriter:
    """A body being written, hashed as it goes: kept in memory while it is at most ``inline``
    bytes, else in a temp file (created when the body outgrows ``inline``)."""

    def __init__(self, path: Path, hashes: Iterable[str], limit: int, what: str, where: str,
                 inline: int = INLINE_MAX) -> None:
        self.path = path
        self.file: BinaryIO | None = None
        #: the body while it is small enough to live in its row; None once it went to a file
        self.data: bytearray | None = bytearray()
        self.inline = inline
        self.hashes = {name: hashlib.new(name) for name in {"md5", *hashes}}
        self.size = 0
        self.limit = limit
        self.what = what
        self.where = where

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self.abort()
            raise errors.R2Error(self.where, errors.ENTITY_TOO_LARGE,
                                 f"{self.what} passed {self.limit} bytes; nothing was stored")
        if self.data is not None:
            if self.size <= self.inline:
                self.data += data
                for h in self.hashes.values():
                    h.update(data)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "wb")  # noqa: SIM115 - closed by finish/abort
            self.file.write(self.data)
            self.data = None
        assert self.file is not None
        self.file.write(data)
        for h in self.hashes.values():
            h.update(data)

    def finish(self) -> None:
        """Flush and fsync (safe to run in a thread)."""
        if self.data is not None and self.size > self.inline:  # never opened: write it now
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "wb")  # noqa: SIM115
            self.file.write(self.data)
            self.data = None
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None

    @property
    def in_memory(self) -> bool:
        """Small enough to live in its row: finish() has nothing to write or fsync."""
        return self.data is not None and self.size <= self.inline

    def abort(self) -> None:
        self.data = None
        if self.file is not None:
            self.file.close()
            self.file = None
        self.path.unlink(missing_ok=True)

    def digests(self) -> dict[str, bytes]:
        return {name: h.digest() for name, h in self.hashes.items()}


def copy_into(writer: BlobWriter, files: list[Path]) -> None:
    """Concatenate ``files`` into ``writer`` chunk by chunk, then fsync (thread-safe)."""
    for path in files:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                writer.write(chunk)
    writer.finish()


class BlobReader:
    """``length`` bytes of a body from ``offset``: of a file, whose open descriptor keeps the
    body readable even if the key is overwritten or deleted meanwhile (POSIX unlink), or of
    a small body held in memory."""

    def __init__(self, path: Path | None, offset: int, length: int, data: bytes | None = None) -> None:
        self.file: Any
        if data is not None:
            self.file = io.BytesIO(data)
        else:
            assert path is not None
            self.file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.file.seek(offset)
        self.remaining = length

    def read(self, size: int = CHUNK) -> bytes:
        if self.file is None or self.remaining <= 0:
            self.close()
            return b""
        data = self.file.read(min(size, self.remaining))
        self.remaining -= len(data)
        if not data or self.remaining <= 0:
            self.close()
        return data

    @property
    def done(self) -> bool:
        return self.file is None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _loads(text: str) -> Any:
    return json.loads(text)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


_OBJECT_COLUMNS = ("key, version, size, etag, uploaded, http_metadata, custom_metadata, checksums, "
                   "storage_class, blob")


def _meta(row: tuple[Any, ...], *, include: tuple[bool, bool] = (True, True)) -> dict[str, Any]:
    """An object row as the wire dict binding.py turns into an R2Object."""
    key, version, size, etag, uploaded, http, custom, checksums, storage_class, _ = row
    return {"key": key, "version": version, "size": size, "etag": etag, "uploaded": uploaded,
            "httpMetadata": _loads(http) if include[0] else {},
            "customMetadata": _loads(custom) if include[1] else {},
            "checksums": _loads(checksums), "storageClass": storage_class}


def _upper(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        if last == 0xD7FF:
            return prefix[:-1] + chr(0xE000)
        prefix = prefix[:-1]
    return None


class R2Storage:
    """Every bucket of one state folder."""

    def __init__(self, conn: sqlite3.Connection, root: Path, clock: Any) -> None:
        self.conn = conn
        self.root = root
        self.clock = clock
        schema.migrate(conn)

    # -- paths ----------------------------------------------------------------------------
    def bucket_dir(self, bucket: str) -> Path:
        return self.root / _dirname(bucket)

    def _tmp(self, bucket: str) -> Path:
        return self.bucket_dir(bucket) / "tmp" / f"{secrets.token_hex(12)}.tmp"

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    # -- start-up -------------------------------------------------------------------------
    def cleanup(self) -> dict[str, int]:
        """Remove what a crash left: temp files, blobs no row names, parts of gone uploads."""
        removed = {"temp": 0, "blobs": 0, "parts": 0}
        if not self.root.is_dir():
            return removed
        blobs = {(b, p) for b, p in self.conn.execute("SELECT bucket, blob FROM r2_objects")}
        parts = {(b, p) for b, p in self.conn.execute(
            "SELECT u.bucket, p.blob FROM r2_parts p JOIN r2_uploads u USING (upload_id)")}
        uploads = {(b, u) for b, u in self.conn.execute("SELECT bucket, upload_id FROM r2_uploads")}
        buckets = {_dirname(b): b for b in self.buckets()}
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            bucket = buckets.get(folder.name)
            tmp = folder / "tmp"
            if tmp.is_dir():
                for f in tmp.iterdir():
                    f.unlink(missing_ok=True)
                    removed["temp"] += 1
            blob_dir = folder / "blobs"
            if blob_dir.is_dir():
                for f in blob_dir.iterdir():
                    if bucket is None or (bucket, f"blobs/{f.name}") not in blobs:
                        f.unlink(missing_ok=True)
                        removed["blobs"] += 1
            mp = folder / "multipart"
            if mp.is_dir():
                for d in mp.iterdir():
                    if bucket is None or (bucket, d.name) not in uploads:
                        shutil.rmtree(d, ignore_errors=True)
                        removed["parts"] += 1
                        continue
                    for f in d.iterdir():
                        if (bucket, f"multipart/{d.name}/{f.name}") not in parts:
                            f.unlink(missing_ok=True)
                            removed["parts"] += 1
        return removed

    # -- bindings and buckets ---------------------------------------------------------------
    def record_bindings(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Remember which Worker binds which bucket, for the CLI when no dev runs."""
        with self.conn:
            self.conn.execute("DELETE FROM r2_bindings")
            self.conn.executemany("INSERT OR REPLACE INTO r2_bindings VALUES (?, ?, ?)", list(rows))

    def recorded_bindings(self) -> list[tuple[str, str, str]]:
        return list(self.conn.execute("SELECT worker, binding, bucket FROM r2_bindings ORDER BY worker, binding"))

    def buckets(self) -> list[str]:
        found = {b for (b,) in self.conn.execute("SELECT DISTINCT bucket FROM r2_objects")}
        found |= {b for (b,) in self.conn.execute("SELECT DISTINCT bucket FROM r2_uploads")}
        found |= {b for (b,) in self.conn.execute("SELECT bucket FROM r2_bindings")}
        return sorted(found)

    def usage(self) -> dict[str, tuple[int, int]]:
        """bucket -> (object count, total bytes)."""
        return {b: (n, s or 0) for b, n, s in self.conn.execute(
            "SELECT bucket, count(*), sum(size) FROM r2_objects GROUP BY bucket")}

    # -- reads ----------------------------------------------------------------------------
    def _row(self, bucket: str, key: str) -> tuple[Any, ...] | None:
        return self.conn.execute(f"SELECT {_OBJECT_COLUMNS} FROM r2_objects WHERE bucket = ? AND key = ?",
                                 (bucket, key)).fetchone()

    def head(self, bucket: str, key: str, where: str) -> dict[str, Any] | None:
        row = self._row(bucket, check_key(key, where))
        return None if row is None else _meta(row)

    def open_read(self, bucket: str, key: str, only_if: dict[str, Any] | None, range_spec: dict[str, Any] | None,
                  where: str) -> tuple[dict[str, Any], BlobReader | None] | None:
        """None when absent; ``(meta, None)`` when ``only_if`` fails; else a reader of the body
        (or of the range, which ``meta["range"]`` then states)."""
        row = self._row(bucket, check_key(key, where))
        if row is None:
            return None
        meta = _meta(row)
        if not conditions.passes(only_if, meta["etag"], meta["uploaded"]):
            return meta, None
        span = conditions.resolve_range(range_spec, meta["size"], key, where)
        offset, length = span if span is not None else (0, meta["size"])
        if span is not None:
            meta["range"] = {"offset": offset, "length": length}
        if not row[-1]:
            body = self.conn.execute("SELECT body FROM r2_objects WHERE bucket = ? AND key = ?",
                                     (bucket, key)).fetchone()
            return meta, BlobReader(None, offset, length, bytes(body[0] or b"") if body else b"")
        return meta, BlobReader(self.bucket_dir(bucket) / row[-1], offset, length)

    def list(self, bucket: str, opts: dict[str, Any], where: str) -> dict[str, Any]:
        """One page: ``{objects, truncated, cursor, delimitedPrefixes}`` in key byte order."""
        limit = opts.get("limit")
        limit = MAX_LIST if limit is None else limit
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
            raise errors.R2Error(where, errors.INVALID_MAX_KEYS,
                                 f"limit is {limit!r}; give a whole number from 1 to {MAX_LIST}")
        prefix = opts.get("prefix") or ""
        delimiter = opts.get("delimiter") or None
        include = opts.get("include") or []
        want = ("httpMetadata" in include, "customMetadata" in include)
        # position: resume strictly after a key, or at/after a bound (past a delimited prefix)
        after: str | None = opts.get("startAfter")
        at: str | None = None
        cursor = opts.get("cursor")
        if cursor:
            after, at = _read_cursor(cursor, where)
        upper = _upper(prefix) if prefix else None
        objects: list[dict[str, Any]] = []
        prefixes: list[str] = []
        last: tuple[str, str] | None = None  # ("key", k) or ("prefix", p): what the cursor resumes after
        truncated = False
        while True:
            sql = f"SELECT {_OBJECT_COLUMNS} FROM r2_objects WHERE bucket = ? AND key >= ?"
            args: list[Any] = [bucket, max(prefix, at or "")]
            if after is not None:
                sql += " AND key > ?"
                args.append(after)
            if upper is not None:
                sql += " AND key < ?"
                args.append(upper)
            row = self.conn.execute(sql + " ORDER BY key LIMIT 1", args).fetchone()
            if row is None:
                break
            if len(objects) + len(prefixes) >= limit:
                truncated = True
                break
            key = row[0]
            if delimiter is not None:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[:cut + len(delimiter)]
                    prefixes.append(common)
                    last = ("prefix", common)
                    after, at = None, _upper(common)
                    if at is None:
                        break
                    continue
            objects.append(_meta(row, include=want))
            last = ("key", key)
            after, at = key, None
        out_cursor = _write_cursor(last) if truncated and last is not None else None
        return {"objects": objects, "truncated": truncated, "cursor": out_cursor, "delimitedPrefixes": prefixes}

    # -- writes ---------------------------------------------------------------------------
    def begin_write(self, bucket: str, hashes: Iterable[str], limit: int, what: str, where: str) -> BlobWriter:
        return BlobWriter(self._tmp(bucket), hashes, limit, what, where)

    def commit_put(self, bucket: str, key: str, writer: BlobWriter, opts: dict[str, Any],
                   where: str) -> dict[str, Any] | None:
        """Make a finished (fsynced) temp file the body of ``key``; None if ``onlyIf`` fails.

        Checks run before anything moves, so a refused put leaves the old object as it was."""
        try:
            storage_class = check_storage_class(opts.get("storageClass"), where)
        except BaseException:
            writer.abort()
            raise
        digests = writer.digests()
        checksums = {"md5": digests["md5"].hex()}
        for name in HASHES:
            given = (opts.get("checksums") or {}).get(name)
            if given is None:
                continue
            if given.lower() != digests[name].hex():
                writer.abort()
                label = _HASH_NAMES[name]
                raise errors.R2Error(where, errors.BAD_DIGEST,
                                     f"the {label} you gave for {errors.show_key(key)} is {given}, the "
                                     f"body's {label} is {digests[name].hex()}; nothing was stored")
            checksums[name] = digests[name].hex()
        old = self._row(bucket, key)
        if not conditions.passes(opts.get("onlyIf"), old[3] if old else None, old[4] if old else None):
            writer.abort()
            return None
        return self._commit(bucket, key, writer, etag=digests["md5"].hex(), checksums=checksums,
                            http=opts.get("httpMetadata") or {}, custom=opts.get("customMetadata") or {},
                            storage_class=storage_class, old=old)

    def _commit(self, bucket: str, key: str, writer: BlobWriter, *, etag: str, checksums: dict[str, str],
                http: dict[str, Any], custom: dict[str, str], storage_class: str, old: tuple[Any, ...] | None,
                upload_id: str | None = None) -> dict[str, Any]:
        version = secrets.token_hex(16)
        body = None if writer.data is None else bytes(writer.data)
        blob = "" if body is not None else f"blobs/{version}"
        if body is None:
            final = self.bucket_dir(bucket) / blob
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(writer.path, final)
        row = (key, version, writer.size, etag, self._now_ms(), _dumps(http), _dumps(custom), _dumps(checksums),
               storage_class, blob)
        with self.conn:
            self.conn.execute(f"INSERT OR REPLACE INTO r2_objects (bucket, {_OBJECT_COLUMNS}, body) "
                              f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (bucket, *row, body))
            if upload_id is not None:
                self.conn.execute("DELETE FROM r2_parts WHERE upload_id = ?", (upload_id,))
                self.conn.execute("DELETE FROM r2_uploads WHERE upload_id = ?", (upload_id,))
        if old is not None and old[-1]:
            (self.bucket_dir(bucket) / old[-1]).unlink(missing_ok=True)
        if upload_id is not None:
            shutil.rmtree(self.bucket_dir(bucket) / "multipart" / upload_id, ignore_errors=True)
        return _meta(row)

    def delete(self, bucket: str, keys: builtins.list[str], where: str) -> None:
        if len(keys) > MAX_DELETE:
            raise errors.R2Error(where, errors.INVALID_ARGUMENT,
                                 f"{len(keys)} keys given; delete at most {MAX_DELETE} keys per call "
                                 f"(nothing was deleted)")
        for key in keys:
            check_key(key, where)
        blobs = []
        with self.conn:
            for key in keys:
                row = self.conn.execute("SELECT blob FROM r2_objects WHERE bucket = ? AND key = ?",
                                        (bucket, key)).fetchone()
                if row is not None:
                    self.conn.execute("DELETE FROM r2_objects WHERE bucket = ? AND key = ?", (bucket, key))
                    blobs.append(row[0])
        for blob in blobs:
            if blob:
                (self.bucket_dir(bucket) / blob).unlink(missing_ok=True)

    # -- multipart ------------------------------------------------------------------------
    def create_upload(self, bucket: str, key: str, opts: dict[str, Any], where: str) -> str:
        check_key(key, where)
        custom = opts.get("customMetadata") or {}
        check_custom_metadata(custom, key, where)
        storage_class = check_storage_class(opts.get("storageClass"), where)
        upload_id = secrets.token_hex(24)
        (self.bucket_dir(bucket) / "multipart" / upload_id).mkdir(parents=True, exist_ok=True)
        with self.conn:
            self.conn.execute("INSERT INTO r2_uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (upload_id, bucket, key, _dumps(opts.get("httpMetadata") or {}), _dumps(custom),
                               storage_class, self._now_ms()))
        return upload_id

    def _upload(self, bucket: str, key: str, upload_id: Any, where: str) -> tuple[Any, ...]:
        row = self.conn.execute(
            "SELECT upload_id, key, http_metadata, custom_metadata, storage_class FROM r2_uploads "
            "WHERE upload_id = ? AND bucket = ?", (str(upload_id), bucket)).fetchone()
        if row is None or row[1] != key:
            detail = (f"uploadId {str(upload_id)[:80]!r} belongs to key {errors.show_key(row[1])}, not "
                      f"{errors.show_key(key)}" if row is not None else
                      f"no upload {str(upload_id)[:80]!r} for key {errors.show_key(key)} in bucket {bucket!r} "
                      f"(never created, or already completed or aborted); start one with createMultipartUpload")
            raise errors.NoSuchUpload(where, errors.NO_SUCH_UPLOAD, detail)
        return row

    def begin_part(self, bucket: str, key: str, upload_id: str, number: Any, where: str) -> BlobWriter:
        self._upload(bucket, check_key(key, where), upload_id, where)
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= MAX_PARTS:
            raise errors.R2Error(where, errors.INVALID_ARGUMENT,
                                 f"part number {number!r}; give a whole number from 1 to {MAX_PARTS}")
        return BlobWriter(self._tmp(bucket), (), MAX_PART_BYTES, f"part {number} of {errors.show_key(key)}", where,
                          inline=-1)  # parts are always files

    def commit_part(self, bucket: str, key: str, upload_id: str, number: int, writer: BlobWriter,
                    where: str) -> dict[str, Any]:
        try:
            self._upload(bucket, key, upload_id, where)  # aborted while the part streamed in?
        except errors.R2Error:
            writer.abort()
            raise
        etag = writer.digests()["md5"].hex()
        blob = f"multipart/{upload_id}/{number:05d}-{secrets.token_hex(6)}"
        final = self.bucket_dir(bucket) / blob
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, final)
        old = self.conn.execute("SELECT blob FROM r2_parts WHERE upload_id = ? AND part_number = ?",
                                (upload_id, number)).fetchone()
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO r2_parts VALUES (?, ?, ?, ?, ?)",
                              (upload_id, number, writer.size, etag, blob))
        if old is not None:
            (self.bucket_dir(bucket) / old[0]).unlink(missing_ok=True)
        return {"partNumber": number, "etag": etag}

    def plan_complete(self, bucket: str, key: str, upload_id: str, parts: builtins.list[dict[str, Any]],
                      where: str) -> tuple[builtins.list[Path], dict[str, Any]]:
        """Check ``parts`` against what was uploaded; the files to join and what to commit."""
        upload = self._upload(bucket, check_key(key, where), upload_id, where)
        stored = {n: (size, etag, blob) for n, size, etag, blob in self.conn.execute(
            "SELECT part_number, size, etag, blob FROM r2_parts WHERE upload_id = ?", (upload_id,))}
        if not parts:
            raise errors.R2Error(where, errors.BAD_UPLOAD, "complete() got no parts; pass the list of "
                                 "{partNumber, etag} that uploadPart returned")
        numbers = [p.get("partNumber") for p in parts]
        if len(set(numbers)) != len(numbers):
            raise errors.R2Error(where, errors.BAD_UPLOAD, f"part numbers repeat in {numbers}; list each part once")
        files: builtins.list[Path] = []
        md5s = b""
        sizes: builtins.list[tuple[int, int]] = []
        for i, part in enumerate(sorted(parts, key=lambda p: p["partNumber"])):
            number, etag = part["partNumber"], part.get("etag")
            found = stored.get(number)
            if found is None or found[1] != etag:
                raise errors.R2Error(where, errors.INVALID_PART,
                                     f"part {number} with etag {etag!r} was not uploaded to this upload "
                                     f"({'its etag is ' + repr(found[1]) if found else 'no such part'}); "
                                     f"uploaded parts: {sorted(stored)}")
            if i < len(parts) - 1 and found[0] < MIN_PART_BYTES:
                raise errors.R2Error(where, errors.ENTITY_TOO_SMALL,
                                     f"part {number} is {found[0]} bytes; every part but the last must be "
                                     f"at least {MIN_PART_BYTES} bytes (5 MiB). Nothing was stored; the "
                                     f"upload stays open, so upload a larger part {number} and complete again")
            files.append(self.bucket_dir(bucket) / found[2])
            md5s += bytes.fromhex(found[1])
            sizes.append((number, found[0]))
        _check_part_sizes(sizes, where)
        etag = f"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"
        return files, {"etag": etag, "http": _loads(upload[2]), "custom": _loads(upload[3]),
                       "storage_class": upload[4]}

    def commit_complete(self, bucket: str, key: str, upload_id: str, writer: BlobWriter,
                        plan: dict[str, Any], where: str) -> dict[str, Any]:
        try:
            self._upload(bucket, key, upload_id, where)
        except errors.R2Error:
            writer.abort()
            raise
        return self._commit(bucket, key, writer, etag=plan["etag"], checksums={}, http=plan["http"],
                            custom=plan["custom"], storage_class=plan["storage_class"],
                            old=self._row(bucket, key), upload_id=upload_id)

    def abort_upload(self, bucket: str, key: str, upload_id: str, where: str) -> None:
        self._upload(bucket, check_key(key, where), upload_id, where)
        with self.conn:
            self.conn.execute("DELETE FROM r2_parts WHERE upload_id = ?", (upload_id,))
            self.conn.execute("DELETE FROM r2_uploads WHERE upload_id = ?", (upload_id,))
        shutil.rmtree(self.bucket_dir(bucket) / "multipart" / upload_id, ignore_errors=True)


def _write_cursor(last: tuple[str, str]) -> str:
    import base64
    return base64.urlsafe_b64encode(_dumps(list(last)).encode()).decode().rstrip("=")


def _read_cursor(cursor: Any, where: str) -> tuple[str | None, str | None]:
    """(after, at) from a cursor of a previous list() page."""
    import base64
    try:
        text = str(cursor)
        kind, value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if kind == "key":
            return value, None
        if kind == "prefix":
            return None, _upper(value) or "\U0010ffff"
    except (ValueError, TypeError):
        pass
    raise errors.R2Error(where, errors.INVALID_ARGUMENT,
                         f"cursor {str(cursor)[:40]!r} is not one list() returned; pass the cursor of the "
                         f"previous page unchanged, or none to start over")
