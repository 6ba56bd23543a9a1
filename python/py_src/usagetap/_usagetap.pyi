"""Type stubs for the compiled module ``usagetap._usagetap`` (checked by ``mypy.stubtest``)."""

import sys
from types import TracebackType
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type, Union, final

if sys.version_info >= (3, 11):
    from typing import Self
else:
    from typing_extensions import Self

# A request or response body: raw bytes as they crossed the wire, or text.
_BytesLike = Union[bytes, bytearray, memoryview, str]
# A request body may also be a parsed JSON object (serialized with json.dumps, key order kept).
_RequestBody = Union[bytes, bytearray, memoryview, str, Dict[str, Any]]

__all__ = [
    "__version__",
    "UsageRecord",
    "Meter",
    "EnvelopeRecord",
    "meter_envelope",
    "consumer_id",
    "RewriteResult",
    "ensure_include_usage",
    "UsageChunkFilter",
    "meter",
    "count_tokens",
    "count_prompt",
    "_panic_for_tests",
    "UsagetapError",
    "InvalidJsonError",
    "InvalidRequestError",
    "InvalidOptionsError",
    "MeterFinishedError",
    "LimitExceededError",
    "InternalError",
]

__version__: str

class UsagetapError(ValueError):
    """Base class of every usagetap error. ``kind`` is the core's name of the error kind."""

    kind: str

class InvalidJsonError(UsagetapError): ...
class InvalidRequestError(UsagetapError): ...
class InvalidOptionsError(UsagetapError): ...
class MeterFinishedError(UsagetapError): ...
class LimitExceededError(UsagetapError): ...
class InternalError(UsagetapError): ...

@final
class UsageRecord:
    """One usage record per exchange; immutable, compared and hashed by content."""

    @property
    def endpoint(self) -> str: ...
    @property
    def model(self) -> Optional[str]: ...
    @property
    def deployment(self) -> Optional[str]: ...
    @property
    def encoding(self) -> str: ...
    @property
    def stream(self) -> bool: ...
    @property
    def status(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def total_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> Optional[int]: ...
    @property
    def reasoning_tokens(self) -> Optional[int]: ...
    @property
    def image_tokens(self) -> Optional[int]: ...
    @property
    def response_id(self) -> Optional[str]: ...
    @property
    def created(self) -> Optional[int]: ...
    @property
    def system_fingerprint(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def flags(self) -> Tuple[str, ...]: ...
    @property
    def reported(self) -> Optional[Dict[str, Any]]: ...
    @property
    def computed(self) -> Optional[Dict[str, Any]]: ...
    @property
    def choices(self) -> List[Dict[str, Any]]: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Meter:
    """Meters one exchange whose response arrives in pieces. An internal error (a caught Rust
    panic, raised as ``InternalError``) breaks the meter for good: every later call raises it
    again, ``finished`` stays false and ``record`` None."""

    def __new__(
        cls,
        request: Optional[_RequestBody] = None,
        *,
        model: Optional[str] = None,
        deployment: Optional[str] = None,
        endpoint: Optional[str] = None,
        reconcile: bool = False,
        deployments: Optional[Dict[str, str]] = None,
        image_sizes: Optional[Dict[str, Sequence[int]]] = None,
        limits: Optional[Dict[str, int]] = None,
    ) -> Self: ...
    def feed(self, chunk: _BytesLike) -> None: ...
    def finish(self) -> UsageRecord: ...
    @property
    def record(self) -> Optional[UsageRecord]: ...
    @property
    def finished(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: Optional[Type[BaseException]] = None,
        _exc: Optional[BaseException] = None,
        _tb: Optional[TracebackType] = None,
    ) -> bool: ...

@final
class EnvelopeRecord:
    """A usage record with the envelope's who and when; ``consumer`` is the hashed key."""

    @property
    def record(self) -> UsageRecord: ...
    @property
    def consumer(self) -> Optional[str]: ...
    @property
    def event_time(self) -> Optional[str]: ...
    @property
    def api_operation(self) -> Optional[str]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class RewriteResult:
    """The body to send upstream, whether it was changed, and whether the client asked for usage."""

    @property
    def body(self) -> bytes: ...
    @property
    def changed(self) -> bool: ...
    @property
    def client_asked(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

def ensure_include_usage(body: _RequestBody) -> RewriteResult: ...

@final
class UsageChunkFilter:
    """Removes usage-only chunks from an SSE stream on its way to a client that did not ask."""

    def __new__(cls, max_event_bytes: int = 8388608) -> Self: ...
    def feed(self, chunk: _BytesLike) -> bytes: ...
    def finish(self) -> bytes: ...
    @property
    def removed(self) -> int: ...
    @property
    def finished(self) -> bool: ...

def meter(
    request: Optional[_RequestBody],
    response: _BytesLike,
    *,
    model: Optional[str] = None,
    deployment: Optional[str] = None,
    endpoint: Optional[str] = None,
    reconcile: bool = False,
    deployments: Optional[Dict[str, str]] = None,
    image_sizes: Optional[Dict[str, Sequence[int]]] = None,
    limits: Optional[Dict[str, int]] = None,
) -> UsageRecord: ...
def meter_envelope(
    envelope: _RequestBody,
    *,
    secret: _BytesLike,
    model: Optional[str] = None,
    deployment: Optional[str] = None,
    endpoint: Optional[str] = None,
    reconcile: bool = False,
    deployments: Optional[Dict[str, str]] = None,
    image_sizes: Optional[Dict[str, Sequence[int]]] = None,
    limits: Optional[Dict[str, int]] = None,
) -> EnvelopeRecord: ...
def consumer_id(key: str, *, secret: _BytesLike) -> str: ...
def count_tokens(text: str, model: Optional[str] = None) -> int: ...
def count_prompt(request: _RequestBody, model: Optional[str] = None, *, endpoint: Optional[str] = None) -> int: ...
def _panic_for_tests() -> None: ...
