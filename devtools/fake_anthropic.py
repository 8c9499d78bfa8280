"""A small, protocol-faithful fake of Anthropic's Messages API for tests and benchmarks.

Lives outside ``tests/`` because ``bench/advisor.py`` uses it too (bench never
imports the tests); ``tests/fakes/anthropic_server.py`` re-exports it with a
pytest fixture.

It speaks the wire format the real ``anthropic`` client expects (JSON bodies,
SSE streams with ``message_start`` … ``message_stop``, tool_use blocks built from
``input_json_delta`` pieces, the error body shape and ``retry-after`` headers), so
the app is tested through the real client with no mocks.

Usage::

    with FakeAnthropic() as fake:
        fake.add_text("Hello there", chunks=3)
        client = anthropic.Anthropic(api_key="sk-test", base_url=fake.url)
        ...
        assert fake.requests[0].body["system"]

Each POST to /v1/messages takes the next scripted response from a queue; when
the queue is empty it answers a short default text. Requests are recorded
(path, headers, parsed body) so tests can check tool_result round trips, the
system prompt and where the key went. The server also validates message
structure the way the real API does (roles alternate, tool_results answer the
previous tool_uses, tools are defined when tool blocks appear) and answers 400
otherwise, so a malformed request from the app fails the test instead of
passing silently.

Usage reports prompt caching as the real API does: the prompt is read in the API's
prefix order (tools, system, messages), a block with ``cache_control`` is a breakpoint,
the prefix up to each breakpoint is stored (if it reaches the model's minimum cacheable
length) for five minutes per key, and a later request whose prefix up to a breakpoint is
identical reads it: ``cache_read_input_tokens`` (the longest stored prefix),
``cache_creation_input_tokens`` (from there to the last breakpoint) and ``input_tokens``
(the rest). Token counts are estimated as 4 characters of JSON per token.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def system_text(self) -> str:
        """The system prompt, whether sent as a string or as text blocks (with cache_control)."""
        system = (self.body or {}).get("system") or ""
        return system if isinstance(system, str) else "".join(b.get("text", "") for b in system)

    @property
    def api_key(self) -> str | None:
        key = self.headers.get("x-api-key")
        if key:
            return key
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class Scripted:
    kind: str  # "message", "http_error", "stream_error"
    blocks: list[dict] = field(default_factory=list)
    stop_reason: str = "end_turn"
    chunks: int = 3
    status: int = 200
    error_type: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


CACHE_TTL_S = 300            # "ephemeral": five minutes, refreshed by each hit
MIN_CACHEABLE_TOKENS = 1024  # Sonnet / Opus (Haiku: 2048); shorter prefixes are not cached
MAX_BREAKPOINTS = 4


def _tokens(obj: Any) -> int:
    return max(1, len(json.dumps(obj)) // 4)


def prompt_blocks(body: dict) -> list[tuple[Any, bool]]:
    """(block, is_breakpoint) in the order the API caches: tools, system, then message blocks."""
    out: list[tuple[Any, bool]] = [(t, "cache_control" in t) for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, str) and system:
        out.append((system, False))
    elif isinstance(system, list):
        out += [(b, "cache_control" in b) for b in system]
    for msg in body.get("messages") or []:
        content = msg.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        out += [({"role": msg.get("role"), **b}, isinstance(b, dict) and "cache_control" in b) for b in blocks]
    return out


def _strip_cc(block: Any) -> Any:
    # cache_control marks where to cache; it is not part of the cached content.
    return {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block


def free_port() -> int:
    """A port nothing listens on (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text) or 1))
    size = -(-len(text) // n) if text else 0
    return [text[i : i + size] for i in range(0, len(text), size)] if text else [""]


class FakeAnthropic:
    """Scriptable fake Messages API server on an ephemeral 127.0.0.1 port."""

    def __init__(self, *, delay_s: float = 0.0, default_text: str = "(fake default reply)"):
        self.delay_s = delay_s  # fixed delay before each response (benchmarks)
        self.default_text = default_text
        self.requests: list[RecordedRequest] = []
        self.usages: list[dict] = []   # input-side usage of each answered /v1/messages request
        self._cache: dict[tuple, float] = {}   # (api key, model, prefix) -> expiry (monotonic)
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------
    def add_text(self, text: str, *, chunks: int = 3, stop_reason: str = "end_turn", delay_s: float = 0.0):
        self._push(Scripted("message", [{"type": "text", "text": text}], stop_reason, chunks, delay_s=delay_s))

    def add_tool_use(self, name: str, tool_input: dict, *, text_before: str = "", tool_id: str | None = None, chunks: int = 3):
        blocks: list[dict] = []
        if text_before:
            blocks.append({"type": "text", "text": text_before})
        blocks.append({"type": "tool_use", "id": tool_id or f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": tool_input})
        self._push(Scripted("message", blocks, "tool_use", chunks))

    def add_message(self, blocks: list[dict], *, stop_reason: str = "end_turn", chunks: int = 3):
        self._push(Scripted("message", blocks, stop_reason, chunks))

    def add_http_error(self, status: int, *, error_type: str | None = None, message: str | None = None,
                       retry_after: float | None = None):
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        etype = error_type or ERROR_TYPES.get(status, "api_error")
        self._push(Scripted("http_error", status=status, error_type=etype,
                            message=message or f"fake {etype}", headers=headers))

    def add_stream_error(self, partial_text: str, *, error_type: str = "overloaded_error", chunks: int = 2):
        """A stream that starts normally, sends some text, then an ``event: error``."""
        self._push(Scripted("stream_error", [{"type": "text", "text": partial_text}], chunks=chunks,
                            error_type=error_type, message="Overloaded"))

    def _push(self, item: Scripted):
        with self._lock:
            self._script.append(item)

    def _pop(self) -> Scripted:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return Scripted("message", [{"type": "text", "text": self.default_text}])

    def prompt_usage(self, api_key: str, body: dict) -> dict:
        """input / cache-write / cache-read tokens of a request, updating the cache like the API."""
        blocks = prompt_blocks(body)
        sizes = [_tokens(_strip_cc(b)) for b, _ in blocks]
        ends = [i + 1 for i, (_, bp) in enumerate(blocks) if bp]   # prefix lengths at breakpoints
        now = time.monotonic()
        with self._lock:
            for key in [k for k, exp in self._cache.items() if exp <= now]:
                del self._cache[key]
            keys = {}
            for end in ends:
                if sum(sizes[:end]) >= MIN_CACHEABLE_TOKENS:
                    keys[end] = (api_key, body.get("model"),
                                 json.dumps([_strip_cc(b) for b, _ in blocks[:end]], sort_keys=True))
            read = max((end for end, key in keys.items() if key in self._cache), default=0)
            write = max(keys, default=0)
            for key in keys.values():
                self._cache[key] = now + CACHE_TTL_S
        read_t = sum(sizes[:read])
        write_t = sum(sizes[read:write]) if write > read else 0
        usage = {"input_tokens": sum(sizes) - read_t - write_t, "cache_creation_input_tokens": write_t,
                 "cache_read_input_tokens": read_t}
        with self._lock:
            self.usages.append(usage)
        return usage

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith("/v1/messages")]

    # -- lifecycle -------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeAnthropic":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def validate_request(body: Any) -> str | None:
    """The structural checks the real API makes; returns an error message or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: must be a positive integer"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    tools = {t.get("name") for t in body.get("tools") or []}
    prev_role = None
    pending_tool_ids: set[str] = set()
    uses_tools = False
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        if i == 0 and role != "user":
            return "messages: first message must use the user role"
        if role == prev_role:
            return f"messages.{i}: roles must alternate between user and assistant"
        content = msg.get("content")
        if isinstance(content, str):
            if not content.strip() and not (i == len(messages) - 1 and role == "assistant"):
                return f"messages.{i}: text content blocks must be non-empty"
            blocks = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content:
            blocks = content
        else:
            return f"messages.{i}.content: must be a non-empty string or list"
        result_ids = set()
        for block in blocks:
            btype = block.get("type")
            if btype == "text" and not block.get("text", "").strip():
                return f"messages.{i}: text content blocks must be non-empty"
            if btype == "tool_use":
                uses_tools = True
                if role != "assistant":
                    return f"messages.{i}: tool_use only in assistant messages"
                if block.get("name") not in tools:
                    return f"messages.{i}: tool_use names a tool that is not defined"
            if btype == "tool_result":
                uses_tools = True
                if role != "user":
                    return f"messages.{i}: tool_result only in user messages"
                result_ids.add(block.get("tool_use_id"))
        if pending_tool_ids and result_ids != pending_tool_ids:
            return (f"messages.{i}: each tool_use must have a tool_result right after it "
                    f"(missing {sorted(pending_tool_ids - result_ids)})")
        if result_ids and not pending_tool_ids:
            return f"messages.{i}: tool_result without a preceding tool_use"
        pending_tool_ids = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
        prev_role = role
    if prev_role != "user":
        # Prefill (ending on assistant) is legal in the real API, but this app never
        # uses it, so treat it as a bug in the request.
        return "messages: the last message must be from the user"
    if sum(bp for _, bp in prompt_blocks(body)) > MAX_BREAKPOINTS:
        return f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided."
    if uses_tools and not tools:
        return "tools must be defined when messages contain tool_use or tool_result blocks"
    return None


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    # -- helpers ---------------------------------------------------------
    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, etype: str, message: str, headers: dict[str, str] | None = None):
        self._send_json(status, {"type": "error", "error": {"type": etype, "message": message},
                                 "request_id": f"req_{uuid.uuid4().hex[:16]}"}, headers)

    def _chunk(self, text: str):
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, name: str, payload: dict):
        self._chunk(f"event: {name}\ndata: {json.dumps(payload)}\n\n")

    # -- routes ----------------------------------------------------------
    def do_GET(self):
        self._error(404, "not_found_error", "Not found")

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        owner = self.owner
        with owner._lock:
            owner.requests.append(RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if not self.path.startswith("/v1/messages"):
            return self._error(404, "not_found_error", f"Unknown path {self.path}")
        recorded = owner.requests[-1]
        if not recorded.api_key:
            return self._error(401, "authentication_error", "x-api-key header is required")
        problem = validate_request(body)
        if problem:
            return self._error(400, "invalid_request_error", problem)
        item = owner._pop()
        delay = owner.delay_s + item.delay_s
        if delay:
            time.sleep(delay)  # simulates service latency (benchmarks); not used to synchronise tests
        if item.kind == "http_error":
            return self._error(item.status, item.error_type, item.message, item.headers)
        self._in_usage = owner.prompt_usage(recorded.api_key, body)  # an answered request reads/writes the cache
        if body.get("stream"):
            return self._stream(body, item)
        return self._send_json(200, self._message(body, item.blocks, item.stop_reason))

    def _usage(self, body: dict, blocks: list[dict]) -> dict:
        return {**self._in_usage, "output_tokens": max(1, len(json.dumps(blocks)) // 4)}

    def _message(self, body: dict, blocks: list[dict], stop_reason: str) -> dict:
        return {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
                "model": body.get("model"), "content": blocks, "stop_reason": stop_reason,
                "stop_sequence": None, "usage": self._usage(body, blocks)}

    def _stream(self, body: dict, item: Scripted):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        message = self._message(body, [], None)
        usage = self._usage(body, item.blocks)
        message["usage"] = {**usage, "output_tokens": 1}
        message["stop_reason"] = None
        self._event("message_start", {"type": "message_start", "message": message})
        for index, block in enumerate(item.blocks):
            if block["type"] == "text":
                self._event("content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": {"type": "text", "text": ""}})
                if index == 0:
                    self._event("ping", {"type": "ping"})
                for piece in _split(block["text"], item.chunks):
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "text_delta", "text": piece}})
                if item.kind == "stream_error":
                    # The real API can fail mid-stream (e.g. overloaded) after HTTP 200.
                    self._event("error", {"type": "error", "error": {"type": item.error_type, "message": item.message}})
                    self._chunk("")  # zero-length chunk ends the chunked body
                    return
            elif block["type"] == "tool_use":
                self._event("content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": {"type": "tool_use", "id": block["id"],
                                                                      "name": block["name"], "input": {}}})
                for piece in _split(json.dumps(block["input"]), item.chunks):
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "input_json_delta", "partial_json": piece}})
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        self._event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": item.stop_reason, "stop_sequence": None},
                                      "usage": {"output_tokens": usage["output_tokens"]}})
        self._event("message_stop", {"type": "message_stop"})
        self._chunk("")
