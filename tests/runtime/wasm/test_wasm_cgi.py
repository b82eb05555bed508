"""The CGI response parser: the C fast path agrees with the Python parser, which is the
contract (docs/wasm.md), on every output the Python one accepts, and leaves to it every
output it rejects (so the message that explains the problem is always the Python one)."""

from __future__ import annotations

import random

import pytest

from edgelet.runtime.wasm import native as wasm_native
from edgelet.runtime.wasm.cgi import MalformedResponse, parse_response

CASES = [
    b"", b"\n", b"\r\n", b"\nbody", b"\r\nbody", b"\n\n", b"X: 1\n\n", b"X: 1\r\n\r\n",
    b"Content-Type: text/plain\n\nHello", b"Content-Type: text/plain;charset=UTF-8\n\nHello World!",
    b"Status: 404 Not Found\r\nX-A: b\r\n\r\nnope", b"Status: 404\n\n", b"Status:404\n\n",
    b"Status: 404x\n\n", b"Status: 4040\n\n", b"Status: 199\n\n", b"Status: 600\n\n",
    b"Status: 200\nStatus: 500\n\n", b"status:  201   Created  \n\n", b"Status: \t302\tFound\n\n",
    b"Location: /elsewhere\n\n", b"LOCATION: /x\nStatus: 201\n\n", b"Content-Type: text/html\n\n<p>\n\n</p>",
    b"A: b\r\nC: d\n\nmixed", b"A: b\n\r\n\r\nbody", b"A: b\r\n\r\nx\n\ny", b"A: b\r\r\n\r\n",
    b"no colon\n\nbody", b": empty name\n\n", b"Bad Name: x\n\n", b"Na(me: x\n\n", b"Name: va\rlue\n\n",
    b"Name: va\0lue\n\n", b"Name: \xe9t\xe9\n\n", b"Name:\n\n", b"Name:   \n\n", b"A: 1\n\nB: 2\n\n",
    b"Content-Type: text/plain\nno blank line follows", b"X-Tab:\tv\t\n\n", b"X: a:b:c\n\n",
    b"A: 1\n\x0bB: 2\n\n", b"A: 1\n\n" + bytes(range(256)),
]


def _python(out: bytes) -> list | None:
    try:
        return parse_response(out)
    except MalformedResponse:
        return None


def _mutations(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = [b"\n", b"\r", b":", b" ", b"\t", b"Status", b"200", b"404", b"Location", b"X",
                b"-", b"\0", b"\xff", b"(", b"a"]
    out = []
    for _ in range(count):
        base = bytearray(rng.choice(CASES))
        for _ in range(rng.randint(1, 4)):
            at = rng.randint(0, len(base))
            if rng.random() < 0.6:
                base[at:at] = rng.choice(alphabet)
            elif base:
                del base[at:at + rng.randint(1, 3)]
        out.append(bytes(base))
    return out


needs_extension = pytest.mark.skipif(wasm_native.response_parser() is None,
                                     reason="the C extension is not built")


def _check(out: bytes) -> bool:
    """Whether the C parser answered ``out``; asserts it agrees with the contract."""
    fast = wasm_native.response_parser()
    assert fast is not None
    got = fast(out)
    if got is not None:  # where the C parser answers, it answers as the contract does
        assert got == parse_response(out), out
        return True
    if _python(out) is not None:  # valid output it leaves to Python: only a repeated Status
        assert out.lower().count(b"status") > 1, out
    return False


@needs_extension
@pytest.mark.parametrize("out", CASES)
def test_the_c_parser_agrees_with_the_python_parser(out: bytes) -> None:
    _check(out)


@needs_extension
def test_the_c_parser_agrees_on_thousands_of_mutated_outputs() -> None:
    outputs = _mutations(7, 5000)
    answered = sum(_check(out) for out in outputs)
    valid = sum(_python(out) is not None for out in outputs)
    assert valid > 1000 and answered >= valid * 0.95
