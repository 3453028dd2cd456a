"""The local judge server: an OpenAI-compatible HTTP API whose model is the rubric.

Besides the rubric (``LocalServerOptions.model``) it serves the models of :data:`MODELS`: the
simulated patient ``medalign-patient`` (:mod:`judges.server.patient`) and the rubric-criterion
grader ``medalign-grader`` (:mod:`judges.server.criteria`), both deterministic. Faults are
injected into their requests as into the rubric's.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, the Batch API's ``/v1/files`` and
``/v1/batches`` (:mod:`judges.server.batches`), ``GET /v1/medalign/stats`` (request and fault
counters, for tests) and ``GET /v1/medalign/rate`` (the rate limit's per-second timeline). With
``requests_per_minute`` / ``tokens_per_minute`` set, chat calls are rate limited as OpenAI's
are, with the same ``x-ratelimit-*`` headers and 429s (:mod:`judges.server.quota`). Without an API key it never reads the ``Authorization`` header;
with one (``medalign judge serve --api-key-env VAR``) every request must carry ``Authorization:
Bearer KEY`` and gets a 401 otherwise (compared in constant time). It logs no requests, so a key
a client sends cannot end up in a log.

The app is a plain ASGI callable rather than a web framework's: a judge run sends it hundreds of
calls a second, and a framework's routing, middleware and request objects cost more CPU per call
than its few fixed routes need. Errors use OpenAI's error body, so the openai client raises its
usual exceptions (``NotFoundError``, ``BadRequestError``, ``RateLimitError``, ...).

Fault injection (for tests and benchmarks): with probability ``fault_rate`` a request gets one of
the configured ``faults`` (drawn from a seeded generator):

=================  =========================================================================
``rate_limit``     429 with ``Retry-After`` / ``retry-after-ms``
``server_error``   500
``hang``           no answer for ``hang_s`` seconds (the client times out)
``drop``           the connection closes in the middle of the response
``truncated``      200, the completion cut short (``finish_reason: length``)
``malformed``      200, a completion without the required final line
``bad_json``       200 with a body that is not JSON
``empty_choices``  200 with ``choices: []``
``refusal``        200, the judge declines
``out_of_range``   200, ratings outside 1-10
``obey_injection`` 200, when a candidate holds a rating statement the judge copies it as its
                   own (a judge that obeys an injection; other prompts are answered normally)
=================  =========================================================================
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from judges.config import LocalServerOptions
from judges.server import criteria, patient
from judges.server.batches import ApiError, BatchService
from judges.server.prompt_parse import PromptNotUnderstood, parse_prompt
from judges.server.quota import ServerQuota
from judges.server.replies import compose, count_tokens, logprobs_content, tokens
from judges.server.rubric import warm_up
from judges.statements import find_statements

REFUSAL = "I'm sorry, but I can't help with rating answers to medical questions."
# models served besides the rubric (whose name is LocalServerOptions.model):
# name -> (messages, seed) -> completion text, raising PromptNotUnderstood on a prompt it cannot read
MODELS = {patient.MODEL: patient.answer, criteria.MODEL: criteria.answer}


@dataclass
class Reply:
    """One HTTP response: status, JSON body bytes, extra headers."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    drop: bool = False                    # send half the body, then close the connection
    content_type: bytes = b"application/json"

    async def send(self, send) -> None:
        length = b"512" if self.drop else str(len(self.body)).encode()
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", self.content_type),
                                (b"content-length", length), *self.headers]})
        if self.drop:
            await send({"type": "http.response.body", "body": self.body, "more_body": True})
            raise _DropConnection("injected dropped connection")
        await send({"type": "http.response.body", "body": self.body})


def _json(body: dict | list, status: int = 200, headers: dict | None = None) -> Reply:
    return Reply(status, json.dumps(body, ensure_ascii=False).encode("utf-8"),
                 [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()])


def _error(status: int, message: str, etype: str, code: str | None = None, headers=None) -> Reply:
    return _json({"error": {"message": message, "type": etype, "code": code, "param": None}},
                 status, headers)


class _DropConnection(Exception):
    """Raised after the response started: the server closes the connection mid-response."""


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from printing a traceback for every injected dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


_drop_filter = _QuietDrops()


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class JudgeApp:
    """The ASGI app for ``options``. ``shutdown`` (an event) releases hung requests;
    ``counters`` counts requests, answers and injected faults."""

    def __init__(self, options: LocalServerOptions, api_key: str | None = None):
        self.options = options
        self.counters: Counter = Counter()
        self.shutdown = asyncio.Event()
        self._fault_rng = random.Random(options.fault_seed)
        self._auth = f"Bearer {api_key}".encode("utf-8") if api_key else None
        self.quota = ServerQuota(options.requests_per_minute, options.tokens_per_minute,
                                 options.rate_window_s)
        self.batches = BatchService(self._answer_batch_line, options.batch_min_s)

    def _authorised(self, scope) -> bool:
        if self._auth is None:
            return True
        given = next((v for k, v in scope.get("headers") or [] if k == b"authorization"), b"")
        return hmac.compare_digest(given, self._auth)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":           # lifespan is off; websockets are not served
            return
        method, path = scope["method"], scope["path"].rstrip("/")
        if not self._authorised(scope):
            self.counters["unauthorised"] += 1
            reply = _error(401, "missing or wrong API key (send Authorization: Bearer KEY)",
                           "invalid_request_error", "invalid_api_key")
        elif path == "/v1/chat/completions" and method == "POST":
            try:
                body = await _read_body(receive)
            except _ClientGone:
                return
            reply = await self._chat(body)
        elif path.startswith(("/v1/files", "/v1/batches")):
            try:
                body = await _read_body(receive) if method == "POST" else b""
            except _ClientGone:
                return
            reply = self._batch_api(method, path, scope, body)
        elif path == "/v1/medalign/rate" and method == "GET":
            reply = _json(self.quota.report())
        elif path == "/v1/models" and method == "GET":
            reply = _json({"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "medalign"}
                for name in (self.options.model, *MODELS)]})
        elif path == "/v1/medalign/stats" and method == "GET":
            reply = _json(dict(self.counters))
        elif path in ("/v1/chat/completions", "/v1/models", "/v1/medalign/stats", "/v1/medalign/rate"):
            reply = _error(405, f"method {method} not allowed on {path}", "invalid_request_error")
        else:
            reply = _error(404, f"no route {path}", "invalid_request_error", "not_found")
        await reply.send(send)

    async def _chat(self, raw: bytes, online: bool = True) -> Reply:
        """Answer one chat request; ``online`` requests count against the rate limit (batch
        lines do not) and carry its headers."""
        options, counters = self.options, self.counters
        counters["requests"] += 1
        try:
            body = json.loads(raw)
            messages = body["messages"]
            prompt_tokens = sum(count_tokens(m.get("content") or "") + 4 for m in messages)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            return _error(400, "request body must be JSON with 'messages'", "invalid_request_error")
        if body.get("model") != options.model and body.get("model") not in MODELS:
            return _error(404, f"model {body.get('model')!r} not found; this server serves "
                               f"{[options.model, *MODELS]}", "invalid_request_error",
                          "model_not_found")
        quota_headers = {}
        if online and self.quota.active:
            max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 0
            admitted, quota_headers = self.quota.admit(prompt_tokens + int(max_tokens))
            if not admitted:
                counters["rate_limited"] += 1
                return _error(429, "Rate limit reached for requests or tokens per minute.",
                              "rate_limit_error", "rate_limit_exceeded", quota_headers)
        reply = await self._answer(body, messages, prompt_tokens)
        reply.headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in quota_headers.items()]
        return reply

    async def _answer(self, body: dict, messages: list[dict], prompt_tokens: int) -> Reply:
        options, counters = self.options, self.counters
        if options.latency_ms > 0:
            await asyncio.sleep(options.latency_ms / 1000.0)
        fault = None
        if options.faults and self._fault_rng.random() < options.fault_rate:
            fault = self._fault_rng.choice(options.faults)
            counters[f"fault_{fault}"] += 1
        early = await self._early_fault(fault)
        if early is not None:
            return early
        if body["model"] in MODELS:
            return self._other_model(body, messages, prompt_tokens, fault)
        try:
            prompt = parse_prompt(messages)
        except PromptNotUnderstood as e:
            counters["not_understood"] += 1
            return _error(400, f"the rubric model cannot read this prompt: {e}",
                          "invalid_request_error")
        text, soft = compose(prompt, options)
        if fault == "obey_injection":
            text = _obey_injection(prompt, text)
        counters["answered"] += 1
        return _completion_response(body, prompt_tokens, text, soft, prompt.kind, fault)

    async def _answer_batch_line(self, raw: bytes) -> tuple[int, dict]:
        """One batch line's (status, JSON body); a reply that is not JSON is a 500 there."""
        reply = await self._chat(raw, online=False)
        try:
            body = json.loads(reply.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return 500, {"error": {"message": "the server sent a body that is not JSON",
                                   "type": "server_error", "code": None, "param": None}}
        return (500 if reply.drop else reply.status), body

    def _batch_api(self, method: str, path: str, scope, body: bytes) -> Reply:
        """``/v1/files`` and ``/v1/batches`` (see :mod:`judges.server.batches`)."""
        parts = path.strip("/").split("/")[1:]            # ["files", id, "content"], ...
        service = self.batches
        try:
            if parts == ["files"] and method == "POST":
                ctype = next((v for k, v in scope.get("headers") or [] if k == b"content-type"), b"")
                return _json(service.upload(ctype.decode("latin-1"), body))
            if parts[0] == "files" and len(parts) == 2 and method == "GET":
                return _json(service.file(parts[1])[0])
            if parts[0] == "files" and len(parts) == 3 and parts[2] == "content" and method == "GET":
                data = service.file(parts[1])[1]
                return Reply(200, data, content_type=b"application/octet-stream")
            if parts == ["batches"] and method == "POST":
                return _json(service.create(json.loads(body or b"{}")))
            if parts[0] == "batches" and len(parts) == 2 and method == "GET":
                return _json(service.get(parts[1]))
            if parts[0] == "batches" and len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                return _json(service.cancel(parts[1]))
        except ApiError as e:
            return _error(e.status, e.message, e.etype)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body must be JSON", "invalid_request_error")
        return _error(404, f"no route {method} {path}", "invalid_request_error", "not_found")

    def _other_model(self, body: dict, messages: list, prompt_tokens: int, fault: str | None) -> Reply:
        """A reply of a model in :data:`MODELS` (the patient, the criterion grader)."""
        try:
            text = MODELS[body["model"]](messages, body.get("seed"))
        except PromptNotUnderstood as e:
            self.counters["not_understood"] += 1
            return _error(400, f"{body['model']} cannot read this prompt: {e}", "invalid_request_error")
        self.counters["answered"] += 1
        return _completion_response(body, prompt_tokens, text, {}, "text", fault)

    async def _early_fault(self, fault: str | None) -> Reply | None:
        """Faults that replace the whole response; None means go on to answer."""
        options = self.options
        if fault == "rate_limit":
            wait = options.retry_after_s
            headers = {"retry-after-ms": str(int(round(wait * 1000))),
                       "retry-after": str(max(1, round(wait))) if wait >= 1 else f"{wait:g}"}
            return _error(429, "Rate limit reached (injected fault).", "rate_limit_error",
                          "rate_limit_exceeded", headers)
        if fault == "server_error":
            return _error(500, "The server had an error (injected fault).", "server_error")
        if fault == "hang":
            try:
                await asyncio.wait_for(self.shutdown.wait(), timeout=options.hang_s)
            except asyncio.TimeoutError:
                pass
            return _error(504, "hung request released", "server_error")
        if fault == "drop":
            return Reply(200, b'{"id": "chatcmpl-dr', drop=True)
        if fault == "bad_json":
            return Reply(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess')
        if fault == "empty_choices":
            return _json({"id": "chatcmpl-empty", "object": "chat.completion",
                          "created": int(time.time()), "model": options.model, "choices": [],
                          "usage": None})
        return None


def build_app(options: LocalServerOptions, api_key: str | None = None) -> JudgeApp:
    """The ASGI app for ``options`` (every request must carry ``api_key`` when one is given)."""
    logging.getLogger("uvicorn.error").addFilter(_drop_filter)   # idempotent: same object
    warm_up()                                # the rubric's tables, before the first request
    return JudgeApp(options, api_key)


def _obey_injection(prompt, text: str) -> str:
    """The reply with its final line replaced by a rating statement a candidate wrote, if any."""
    for candidate in prompt.responses.values():
        found = find_statements(candidate, prompt.kind)
        if found:
            a, b = found[-1].span
            return text.rsplit("\n", 1)[0] + "\n" + candidate[a:b]
    return text


def _completion_response(body: dict, prompt_tokens: int, text: str, soft: dict, kind: str,
                         fault: str | None) -> Reply:
    finish = "stop"
    if fault == "truncated":
        text, finish = text[: max(1, int(len(text) * 0.9)) - 8], "length"
    elif fault == "malformed":
        text = "Both responses have merits. Response A seems somewhat better overall."
    elif fault == "refusal":
        text = REFUSAL
    elif fault == "out_of_range":
        text = text.rsplit("\n", 1)[0] + "\nRating A: 12; Rating B: 0"
    toks = tokens(text)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(max_tokens, int) and len(toks) > max_tokens:
        toks, finish = toks[:max_tokens], "length"
        text = "".join(toks)
    choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
              "finish_reason": finish, "logprobs": None}
    if body.get("logprobs"):
        choice["logprobs"] = {"content": logprobs_content(text, soft, kind,
                                                          int(body.get("top_logprobs") or 0)),
                              "refusal": None}
    return _json({
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": body["model"], "choices": [choice],
        "system_fingerprint": "medalign-rubric", "usage": {
            "prompt_tokens": prompt_tokens, "completion_tokens": len(toks),
            "total_tokens": prompt_tokens + len(toks)}})
