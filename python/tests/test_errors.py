"""Errors: one class per core ErrorKind under UsagetapError(ValueError); no panic escapes."""

from __future__ import annotations

import pytest

import usagetap
from usagetap import _usagetap

# ErrorKind name (ErrorKind::as_str in the core) -> the class it must raise.
KINDS = {
    "invalid_json": usagetap.InvalidJsonError,
    "invalid_request": usagetap.InvalidRequestError,
    "invalid_options": usagetap.InvalidOptionsError,
    "finished": usagetap.MeterFinishedError,
    "limit_exceeded": usagetap.LimitExceededError,
    "internal": usagetap.InternalError,
}


def test_hierarchy() -> None:
    assert issubclass(usagetap.UsagetapError, ValueError)
    assert not issubclass(usagetap.UsagetapError, (TypeError, RuntimeError))
    classes = set(KINDS.values())
    assert len(classes) == len(KINDS)
    for cls in classes:
        assert issubclass(cls, usagetap.UsagetapError) and cls is not usagetap.UsagetapError
        assert cls.__name__ in usagetap.__all__


@pytest.mark.parametrize(
    "call, kind",
    [
        (lambda: usagetap.count_prompt(b"{"), "invalid_json"),
        (lambda: usagetap.count_prompt("not json at all"), "invalid_json"),
        (lambda: usagetap.count_prompt(b"[1, 2]"), "invalid_request"),
        (lambda: usagetap.count_prompt('"just a string"'), "invalid_request"),
        (lambda: usagetap.meter(None, b"{}", endpoint="bogus"), "invalid_options"),
        (lambda: usagetap.Meter(endpoint="/v1/nothing-here"), "invalid_options"),
        (lambda: usagetap.count_prompt(b"{}", endpoint="x"), "invalid_options"),
        (lambda: usagetap.meter_envelope(b"not an envelope", secret="s"), "invalid_json"),
        (lambda: usagetap.meter_envelope(b"{}", secret=""), "invalid_options"),
        (_usagetap._panic_for_tests, "internal"),
    ],
)
def test_mapping(call, kind: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(usagetap.UsagetapError) as info:
        call()
    assert type(info.value) is KINDS[kind]
    assert info.value.kind == kind
    assert str(info.value)


def test_finished_meter() -> None:
    m = usagetap.Meter()
    m.feed(b'{"choices": []}')
    rec = m.finish()
    assert "empty_response" not in rec.flags
    for call in (lambda: m.feed(b"x"), m.finish):
        with pytest.raises(usagetap.MeterFinishedError) as info:
            call()
        assert info.value.kind == "finished"
        assert isinstance(info.value, ValueError)
    assert m.record is rec


def test_panic_is_not_a_panic_exception() -> None:
    try:
        _usagetap._panic_for_tests()
    except BaseException as e:  # noqa: BLE001 - checking what escapes
        assert type(e).__name__ != "PanicException"
        assert isinstance(e, usagetap.InternalError)
    else:
        raise AssertionError("expected InternalError")


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match="response must be"):
        usagetap.meter(None, 12)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="request must be"):
        usagetap.meter([1], b"{}")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        usagetap.meter(None, {"choices": []})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="chunk must be"):
        usagetap.Meter().feed(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        usagetap.count_tokens(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        usagetap.meter(None, b"{}", deployments={"a": 1})  # type: ignore[dict-item]


def test_bad_bytes_never_raise() -> None:
    """Garbage responses become flags on a record, never exceptions."""
    for body in [b"", b"\xff\xfe\x00", b"{", b"data: {\n\n", b"data: [DONE]", "é".encode() * 3, b"[" * 10000]:
        rec = usagetap.meter(b"", body)
        assert isinstance(rec, usagetap.UsageRecord)
