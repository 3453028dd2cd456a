"""``/v1/files`` and ``/v1/batches`` of the local judge server: OpenAI's Batch API, in memory.

A client uploads a JSONL of requests (``POST /v1/files``, multipart, ``purpose=batch``), one a
line: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``; creates
a batch over it (``POST /v1/batches`` with ``input_file_id``, ``endpoint``,
``completion_window``); polls it (``GET /v1/batches/{id}``: ``validating`` -> ``in_progress`` ->
``finalizing`` -> ``completed``, or ``failed`` when a line is invalid, ``cancelling`` ->
``cancelled`` after ``POST /v1/batches/{id}/cancel``); and downloads ``output_file_id`` (2xx
replies) and ``error_file_id`` (the others) with ``GET /v1/files/{id}/content``. Result lines
are ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``, in no
particular order. Batch requests are answered by the same rubric as online calls (faults
included) but do not count against the online rate limit, as at OpenAI. Files and batches live
as long as the server.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import time
import uuid
from collections.abc import Awaitable, Callable

ENDPOINTS = ("/v1/chat/completions",)
TERMINAL = ("completed", "failed", "expired", "cancelled")
CONCURRENCY = 8                           # batch lines answered at once


class ApiError(Exception):
    """An OpenAI-style error reply: status, message, type."""

    def __init__(self, status: int, message: str, etype: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.etype = status, message, etype


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a ``multipart/form-data`` body: name -> (filename or None, bytes)."""
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "upload a file as multipart/form-data (fields 'file' and 'purpose')")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class BatchService:
    """Files and batches; ``answer(body_bytes) -> (status, json body)`` answers one request."""

    def __init__(self, answer: Callable[[bytes], Awaitable[tuple[int, dict]]], min_s: float = 0.0):
        self.answer, self.min_s = answer, min_s
        self.files: dict[str, tuple[dict, bytes]] = {}
        self.batches: dict[str, dict] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    # -- files ---------------------------------------------------------------------------------
    def upload(self, content_type: str, body: bytes) -> dict:
        fields = parse_multipart(content_type, body)
        if "file" not in fields:
            raise ApiError(400, "missing form field 'file'")
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if purpose != "batch":
            raise ApiError(400, f"purpose {purpose!r} is not supported here; use 'batch'")
        filename, data = fields["file"]
        return self._store(data, filename or "upload.jsonl", "batch")

    def _store(self, data: bytes, filename: str, purpose: str) -> dict:
        meta = {"id": f"file-{uuid.uuid4().hex[:24]}", "object": "file", "bytes": len(data),
                "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                "status": "processed", "expires_at": None, "status_details": None}
        self.files[meta["id"]] = (meta, data)
        return meta

    def file(self, file_id: str) -> tuple[dict, bytes]:
        if file_id not in self.files:
            raise ApiError(404, f"no file {file_id!r}")
        return self.files[file_id]

    # -- batches -------------------------------------------------------------------------------
    def create(self, body: dict) -> dict:
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        self.file(str(file_id))
        if endpoint not in ENDPOINTS:
            raise ApiError(400, f"endpoint {endpoint!r} is not supported; use {ENDPOINTS[0]}")
        if body.get("completion_window") != "24h":
            raise ApiError(400, "completion_window must be '24h'")
        now = int(time.time())
        batch = {"id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch", "endpoint": endpoint,
                 "input_file_id": file_id, "completion_window": "24h", "status": "validating",
                 "created_at": now, "expires_at": now + 86400, "output_file_id": None,
                 "error_file_id": None, "errors": None, "in_progress_at": None,
                 "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "cancelling_at": None, "cancelled_at": None, "expired_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "metadata": body.get("metadata")}
        self.batches[batch["id"]] = batch
        self._tasks[batch["id"]] = asyncio.get_running_loop().create_task(self._run(batch))
        return batch

    def get(self, batch_id: str) -> dict:
        if batch_id not in self.batches:
            raise ApiError(404, f"no batch {batch_id!r}")
        return self.batches[batch_id]

    def cancel(self, batch_id: str) -> dict:
        batch = self.get(batch_id)
        if batch["status"] not in TERMINAL:
            batch.update(status="cancelling", cancelling_at=int(time.time()))
        return batch

    async def _run(self, batch: dict) -> None:
        started = time.monotonic()
        lines, errors = _validate(self.file(batch["input_file_id"])[1], batch["endpoint"])
        if errors:
            batch.update(status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": errors[:100]})
            return
        batch.update(status="in_progress", in_progress_at=int(time.time()))
        batch["request_counts"]["total"] = len(lines)
        results: list[tuple[bool, dict]] = []
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(line: dict) -> None:
            async with gate:
                if batch["status"] == "cancelling":
                    return
                status, reply = await self.answer(json.dumps(line["body"]).encode("utf-8"))
            ok = 200 <= status < 300
            batch["request_counts"]["completed" if ok else "failed"] += 1
            results.append((ok, {"id": f"batch_req_{uuid.uuid4().hex[:24]}", "custom_id": line["custom_id"],
                                 "response": {"status_code": status, "request_id": uuid.uuid4().hex[:16],
                                              "body": reply},
                                 "error": None}))

        await asyncio.gather(*(one(line) for line in lines))
        while batch["status"] != "cancelling" and time.monotonic() - started < self.min_s:
            await asyncio.sleep(min(0.05, self.min_s))
        cancelled = batch["status"] == "cancelling"
        if not cancelled:
            batch.update(status="finalizing", finalizing_at=int(time.time()))
        for ok, field in ((True, "output_file_id"), (False, "error_file_id")):
            rows = [r for good, r in results if good is ok]
            if rows:
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
                batch[field] = self._store(data, f"{batch['id']}_{field[:-8]}.jsonl", "batch_output")["id"]
        now = int(time.time())
        batch.update(status="cancelled", cancelled_at=now) if cancelled else \
            batch.update(status="completed", completed_at=now)


def _validate(data: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
    """(request lines, errors as OpenAI's ``errors.data``: code, line, message)."""
    lines, errors, seen = [], [], set()
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            errors.append({"code": "invalid_json_line", "line": n, "message": "not a JSON object", "param": None})
            continue
        problem = None
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            problem = "each line needs a 'body' object"
        elif line.get("custom_id") in seen or not line.get("custom_id"):
            problem = f"custom_id {line.get('custom_id')!r} is missing or repeated"
        elif line.get("method") != "POST" or line.get("url") != endpoint:
            problem = f"method must be POST and url {endpoint}"
        if problem:
            errors.append({"code": "invalid_request", "line": n, "message": problem, "param": None})
            continue
        seen.add(line["custom_id"])
        lines.append(line)
    if not lines and not errors:
        errors.append({"code": "empty_file", "line": None, "message": "the input file has no requests",
                       "param": None})
    return lines, errors
