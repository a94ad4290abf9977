"""heartbeat_http: blocking HTTP requests from a heartbeat-host handler.

A small client over `wasi:http/outgoing-handler` (the bindings
componentize-py generates for the `handler-wasi` world), for handlers that
want one request and its answer, not an event loop:

    import heartbeat_http

    response = heartbeat_http.get("https://api.example.com/health")
    if response.status != 200:
        ...
    data = response.json()

The host lets a request out only to an origin in the check's `grants.http`,
and checks every redirect this module follows (up to `max_redirects`) the
same way. A refused request, a connection that fails, a timeout or a body
over the check's `maxHttpBytes` raises `HttpError`, whose `code` is the
WASI error code (`HTTP-request-denied`, `connection-refused`,
`HTTP-response-body-size`, ...). Catch it to turn it into an outcome, or let
it reach `run` (the starter turns any exception into the run's reason).

Import this module at the top of `app.py`, like every other module:
componentize-py loads modules when it builds the component.
"""

import json
import re
from typing import List, Optional, Tuple
from urllib.parse import urljoin, urlsplit

from componentize_py_types import Err
from wit_world.imports import http_types, monotonic_clock, outgoing_handler, poll
from wit_world.imports.streams import StreamError_Closed, StreamError_LastOperationFailed

__all__ = ["HttpError", "Response", "get", "post", "request"]

# How much of a body one read asks for.
_CHUNK = 64 * 1024
# The statuses whose Location this module follows.
_REDIRECTS = (301, 302, 303, 307, 308)
# Words the WASI error codes spell in capitals (`HTTP-request-URI-invalid`).
_ACRONYMS = {"dns": "DNS", "tls": "TLS", "http": "HTTP", "uri": "URI", "ip": "IP"}


class HttpError(Exception):
    """A request that got no response.

    `code` is the WASI `error-code` case as the WIT spells it
    (`HTTP-request-denied` when the origin is not granted), or one this
    module raises itself: `invalid-url`, `invalid-header`,
    `too-many-redirects`; `url` is the request's URL and `detail` what else
    is known.
    """

    def __init__(self, code: str, url: str, detail: Optional[str] = None):
        self.code = code
        self.url = url
        self.detail = detail
        text = f"{code}: {url}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class Response:
    """A response: `status`, `headers` as (name, value) pairs, `body` as bytes,
    and `url`, the URL that answered (after redirects)."""

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes, url: str):
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def text(self) -> str:
        """The body as UTF-8 text (undecodable bytes become U+FFFD)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, url={self.url!r}, {len(self.body)} bytes)"


def get(url: str, headers=None, timeout_ms: Optional[int] = None, max_redirects: int = 5) -> Response:
    """GET `url`; `headers` is a dict or a list of (name, value) pairs."""
    return request("GET", url, headers=headers, timeout_ms=timeout_ms, max_redirects=max_redirects)


def post(
    url: str,
    body,
    content_type: str = "application/json",
    headers=None,
    timeout_ms: Optional[int] = None,
    max_redirects: int = 5,
) -> Response:
    """POST `body` (bytes, or str sent as UTF-8) to `url` as `content_type`."""
    pairs = _pairs(headers)
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.append(("content-type", content_type))
    return request("POST", url, headers=pairs, body=body, timeout_ms=timeout_ms, max_redirects=max_redirects)


def request(
    method: str,
    url: str,
    headers=None,
    body=None,
    timeout_ms: Optional[int] = None,
    max_redirects: int = 5,
) -> Response:
    """Sends one request and reads the whole response, following redirects.

    `timeout_ms` bounds the whole request, every hop and the last byte of
    the body included: past it, `HttpError("HTTP-response-timeout")`. The
    check's `timeoutMs` bounds the whole run anyway (and stops it, rather
    than raising). A 303, or a 301/302 answering anything but GET or HEAD,
    is followed with a GET without body, as browsers do.
    """
    method = method.upper()
    pairs = _pairs(headers)
    if isinstance(body, str):
        body = body.encode("utf-8")
    deadline = None if timeout_ms is None else monotonic_clock.now() + int(timeout_ms) * 1_000_000
    for _ in range(max_redirects + 1):
        response = _send(method, url, pairs, body, deadline)
        location = response.header("location")
        if response.status not in _REDIRECTS or location is None:
            return response
        url = urljoin(url, location)
        if response.status == 303 or (response.status in (301, 302) and method not in ("GET", "HEAD")):
            method, body = "GET", None
            pairs = [(k, v) for k, v in pairs if k.lower() not in ("content-type", "content-length")]
    raise HttpError("too-many-redirects", url, f"more than {max_redirects}")


def _pairs(headers) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def _code_name(code) -> str:
    """`ErrorCode_HttpRequestDenied()` -> `HTTP-request-denied`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = re.findall(r"[A-Z][a-z0-9]*", name)
    return "-".join(_ACRONYMS.get(word.lower(), word.lower()) for word in words)


def _code_detail(code) -> Optional[str]:
    value = getattr(code, "value", None)
    if value is None:
        return None
    if hasattr(value, "__dataclass_fields__"):  # DNS-error, TLS-alert-received, ... payloads
        said = [f"{k} {v}" for k, v in vars(value).items() if v is not None]
        return ", ".join(said) or None
    return str(value)


def _fail(code, url: str) -> HttpError:
    return HttpError(_code_name(code), url, _code_detail(code))


def _untyped(said: str, url: str) -> HttpError:
    """A stream error without a WASI code: wasmtime-wasi-http 48 gives a body
    over the check's `maxHttpBytes` only as text (`... body size exceeds
    limit: N bytes`), so that text is read back into its code."""
    if "body size exceeds limit" in said:
        side = "request" if "request body size" in said.lower() else "response"
        return HttpError(f"HTTP-{side}-body-size", url, said)
    return HttpError("HTTP-response-incomplete", url, said)


def _method(method: str):
    known = {
        "GET": http_types.Method_Get,
        "HEAD": http_types.Method_Head,
        "POST": http_types.Method_Post,
        "PUT": http_types.Method_Put,
        "DELETE": http_types.Method_Delete,
        "OPTIONS": http_types.Method_Options,
        "PATCH": http_types.Method_Patch,
    }
    if method in known:
        return known[method]()
    return http_types.Method_Other(method)


def _wait(pollable, deadline: Optional[int], url: str) -> None:
    """Blocks until `pollable` is ready, or raises at `deadline` (monotonic ns)."""
    if deadline is None:
        pollable.block()
        return
    left = deadline - monotonic_clock.now()
    if left > 0 and not pollable.ready():
        with monotonic_clock.subscribe_duration(left) as timer:
            poll.poll([pollable, timer])
    if not pollable.ready():
        raise HttpError("HTTP-response-timeout", url, "timeout_ms passed")


def _send(method: str, url: str, headers, body: Optional[bytes], deadline: Optional[int]) -> Response:
    parts = urlsplit(url)
    if parts.scheme == "http":
        scheme = http_types.Scheme_Http()
    elif parts.scheme == "https":
        scheme = http_types.Scheme_Https()
    else:
        raise HttpError("invalid-url", url, "the scheme must be http or https")
    if not parts.netloc:
        raise HttpError("invalid-url", url, "no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    entries = [(name.lower(), value.encode("utf-8")) for name, value in headers]
    # A body of known length goes out with its length, not chunked.
    if body and not any(name == "content-length" for name, _ in entries):
        entries.append(("content-length", str(len(body)).encode("ascii")))
    try:
        fields = http_types.Fields.from_list(entries)
    except Err as e:
        raise HttpError("invalid-header", url, type(e.value).__name__.removeprefix("HeaderError_")) from None
    outgoing = http_types.OutgoingRequest(fields)
    try:
        outgoing.set_method(_method(method))
        outgoing.set_scheme(scheme)
        outgoing.set_authority(parts.netloc)
        outgoing.set_path_with_query(path)
    except Err:
        raise HttpError("invalid-url", url, f"refused by the request: {method} {path}") from None

    outgoing_body = outgoing.body()
    try:
        future = outgoing_handler.handle(outgoing, None)
    except Err as e:
        raise _fail(e.value, url) from None
    with future:
        # The body is written after the request is handed over, so that a
        # large one streams to the host as it is sent.
        if body:
            with outgoing_body.write() as stream:
                for start in range(0, len(body), 4096):
                    try:
                        stream.blocking_write_and_flush(body[start : start + 4096])
                    except Err:
                        break
        try:
            http_types.OutgoingBody.finish(outgoing_body, None)
        except Err as e:
            raise _fail(e.value, url) from None

        with future.subscribe() as ready:
            _wait(ready, deadline, url)
        answer = future.get()
    # option<result<result<incoming-response, error-code>>>: none while
    # pending, the outer err when taken twice (neither, once it is ready).
    if answer is None or isinstance(answer, Err):
        raise HttpError("internal-error", url, "no response after the wait")
    result = answer.value
    if isinstance(result, Err):
        raise _fail(result.value, url)
    with result.value as incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            pairs = [(name, value.decode("utf-8", errors="replace")) for name, value in fields.entries()]
        data = _read_body(incoming, url, deadline)
    return Response(status, pairs, data, url)


def _read_body(incoming, url: str, deadline: Optional[int]) -> bytes:
    chunks = []
    with incoming.consume() as body:
        with body.stream() as stream, stream.subscribe() as readable:
            while True:
                try:
                    chunk = stream.read(_CHUNK)
                    if chunk:
                        chunks.append(chunk)
                    else:
                        _wait(readable, deadline, url)
                except Err as e:
                    if isinstance(e.value, StreamError_Closed):
                        break
                    if isinstance(e.value, StreamError_LastOperationFailed):
                        code = http_types.http_error_code(e.value.value)
                        if code is not None:
                            raise _fail(code, url) from None
                        raise _untyped(e.value.value.to_debug_string(), url) from None
                    raise
    return b"".join(chunks)
