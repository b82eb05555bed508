"""KV put with an expiration or expirationTtl too large to store: refused with the key, the
option and the allowed range (was: OverflowError "Python int too large to convert to SQLite
INTEGER", naming nothing), and nothing is written (review 5, "KV LOW")."""

from __future__ import annotations

import asyncio

import pytest

from edgelet.bindings.kv import limits
from edgelet.bindings.kv.storage import KVStorage
from edgelet.state import open_database

NOW = 1_800_000_000.0


class Clock:
    virtual = True

    def now(self) -> float:
        return NOW


@pytest.mark.parametrize("expiration,ttl,words", [
    (None, 1e20, "expirationTtl 1e+20 for key 'k' is out of range; use 60 to 2147483647 seconds"),
    (None, 10**30, "expirationTtl 1000000000000000000000000000000 for key 'k' is out of range"),
    (None, 2**31, "expirationTtl 2147483648 for key 'k' is out of range"),
    (1e20, None, "expiration 1e+20 for key 'k' is out of range; use epoch seconds from now + 60 "
                 "to 2147483647"),
    (2**63, None, "expiration 9223372036854775808 for key 'k' is out of range"),
])
def test_an_expiry_beyond_range_names_the_key_the_option_and_the_range(expiration, ttl, words) -> None:
    storage = KVStorage(open_database(None), Clock())

    async def put() -> None:
        await storage.call("ns", "env.KV.put()", "put", ["k", b"v", expiration, ttl, None])

    with pytest.raises(ValueError) as caught:
        asyncio.run(put())
    assert str(caught.value).startswith("env.KV.put(): ")
    assert words in str(caught.value)
    assert asyncio.run(storage.call("ns", "env.KV.get()", "get", ["k", False])) is None


def test_the_largest_allowed_expiry_is_stored() -> None:
    storage = KVStorage(open_database(None), Clock())
    assert limits.MAX_EXPIRATION == 2147483647
    assert storage.put("ns", "a", b"v", "put", expiration_ttl=limits.MAX_EXPIRATION) == \
        int(NOW) + limits.MAX_EXPIRATION
    assert storage.put("ns", "b", b"v", "put", expiration=limits.MAX_EXPIRATION) == limits.MAX_EXPIRATION
