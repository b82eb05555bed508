"""R2's errors: Cloudflare's message and code first, then what edgelet knows about the cause.

Workers see ``<op>: <Cloudflare's message> (<code>)`` as on Cloudflare, so code that matches
on the code keeps working; edgelet adds the key, the binding and the fix after it. The
Python type is one the isolate channel rebuilds (ValueError, LookupError), so the Worker
catches what it would expect.
"""

from __future__ import annotations

INVALID_OBJECT_NAME = (10020, "The specified object name is not valid.")
ENTITY_TOO_LARGE = (100100, "Your proposed upload exceeds the maximum allowed object size.")
ENTITY_TOO_SMALL = (10011, "Your proposed upload is smaller than the minimum allowed object size.")
METADATA_TOO_LARGE = (10012, "Your metadata headers exceed the maximum allowed metadata size.")
INVALID_MAX_KEYS = (10022, "MaxKeys params must be positive integer <= 1000.")
NO_SUCH_UPLOAD = (10024, "The specified multipart upload does not exist.")
INVALID_PART = (10025, "One or more of the specified parts could not be found.")
INVALID_ARGUMENT = (10029, "Invalid argument.")
BAD_DIGEST = (10037, "The checksum you specified did not match what we received.")
INVALID_RANGE = (10039, "The requested range is not satisfiable")
BAD_UPLOAD = (10048, "There was a problem with the multipart upload.")


class R2Error(ValueError):
    """A refused R2 operation; ``code`` is Cloudflare's v4 error code."""

    def __init__(self, where: str, error: tuple[int, str], detail: str) -> None:
        code, message = error
        super().__init__(f"{where}: {message} ({code}): {detail}")
        self.code = code
        #: carried over the isolate channel as structured data
        self.wire_data = {"code": code}


class NoSuchUpload(R2Error, LookupError):
    """An uploadId the bucket does not know (never created, completed or aborted)."""


def show_key(key: str) -> str:
    """A key for a message: quoted, and cut short when long."""
    return repr(key) if len(key) <= 80 else repr(key[:60]) + f"... ({len(key.encode('utf-8', 'replace'))} bytes)"
