"""The throughput work kept behaviour: fast paths agree with plain ones, errors stay precise."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import urllib.error
import urllib.request

import pytest

from data_recipes.synthetic.lexicon import NameSet, find_names, world_lexicon
from judges.api import run_sync
from judges.client import CallFailed, OpenAIJudge
from judges.config import JudgeConfig, RetryConfig
from judges.server import running_server
from judges.server.replies import count_tokens, tokens

# characters that exercise every branch of the tokenizer: ASCII and other Unicode digits and
# letters, CJK, several kinds of whitespace, punctuation
ALPHABET = list("ab Z09 \t\n.,;?") + ["中", "文", "٣", "１", "é", "\u00a0", "\u2003", "\x1c", "Ⅻ"]


def test_count_tokens_is_the_length_of_tokens(cases):
    rng = random.Random(0)
    texts = ["", " ", "  x  ", "12ab34", "ab\n\n"]
    texts += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    texts += [t for c in cases(6) for t in (c["question"], c["reference"], *c["answers"].values())]
    for text in texts:
        assert count_tokens(text) == len(tokens(text)), repr(text)


def _brute_force_names(names: dict[str, str], text: str) -> list[str]:
    """Scan positions left to right; at each, the longest name that stands there (ASCII names
    as whole words); continue after it. Keys in order of first mention."""
    low, keys, pos = text.lower(), [], 0
    by_length = sorted(names, key=len, reverse=True)
    while pos < len(low):
        for name in by_length:
            end = pos + len(name)
            if low.startswith(name, pos) and (not name.isascii() or (
                    (pos == 0 or not (low[pos - 1].isascii() and low[pos - 1].isalpha()))
                    and (end == len(low) or not (low[end].isascii() and low[end].isalpha())))):
                if names[name] not in keys:
                    keys.append(names[name])
                pos = end
                break
        else:
            pos += 1
    return keys


def test_name_search_skips_only_names_that_cannot_occur():
    lex = world_lexicon()
    names = {**lex.condition_names, "x-ray 2": "xray", "42": "answer", "b超": "ultrasound"}
    name_set = NameSet.of(names)
    assert "42" in name_set.other and "b超" in name_set.wide and "x-ray 2" in name_set.lettered
    rng = random.Random(1)
    pieces = list(names) + ["a", "patient", " ", "，", "中", "K", "4", "2", "-"]
    for _ in range(1000):
        text = rng.choice(["", " ", "x"]).join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        text = text.upper() if rng.random() < 0.2 else text
        assert find_names(name_set, text) == _brute_force_names(names, text), repr(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_a_connection_error_not_a_timeout():
    cfg = JudgeConfig(retry=RetryConfig(max_attempts=2, backoff_base_s=0.01), timeout_s=5.0)

    async def call():
        judge = OpenAIJudge(cfg, f"http://127.0.0.1:{_free_port()}/v1", None)
        try:
            await judge.complete([{"role": "user", "content": "x"}])
        finally:
            await judge.aclose()

    with pytest.raises(CallFailed) as failed:
        run_sync(call())
    attempts = failed.value.attempts
    assert len(attempts) == 2
    assert all(a["error"].startswith("connection error: ConnectionRefused") for a in attempts)
    assert all(a["latency_s"] < 4.0 for a in attempts)     # refused at once, no timeout waited


def test_a_hung_request_is_a_timeout():
    cfg = JudgeConfig(retry=RetryConfig(max_attempts=1), timeout_s=0.3)
    messages = [{"role": "user", "content": "x"}]

    async def call(url):
        judge = OpenAIJudge(cfg, url, None)
        try:
            await judge.complete(messages)
        finally:
            await judge.aclose()

    with running_server(faults=["hang"], fault_rate=1.0, hang_s=5.0) as url:
        with pytest.raises(CallFailed) as failed:
            run_sync(call(url))
    assert failed.value.attempts[0]["error"] == "timeout after 0.3s"


def test_one_client_on_the_aiohttp_transport_and_uvloop():
    import openai

    async def inspect():
        judge = OpenAIJudge(JudgeConfig(concurrency=64), "http://127.0.0.1:9/v1", None)
        try:
            return type(asyncio.get_running_loop()).__module__, judge.client._client
        finally:
            await judge.aclose()

    loop_module, http_client = run_sync(inspect())
    assert loop_module.startswith("uvloop")
    assert isinstance(http_client, openai.DefaultAioHttpClient)


def _http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_routes_and_errors_in_openai_format(server_url):
    status, body = _http(server_url + "/nowhere")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = _http(server_url + "/chat/completions")               # GET on a POST route
    assert status == 405 and "not allowed" in body["error"]["message"]
    status, body = _http(server_url + "/chat/completions", "POST", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = _http(server_url + "/medalign/stats")
    assert status == 200 and body["requests"] >= 1


def test_server_reads_a_body_that_arrives_in_many_chunks(server_url, cases):
    from judges.templates import load_template, render

    case = cases(1)[0]
    long_answer = case["answers"]["hybrid"] + " x" * 150_000               # several TCP reads
    spec = load_template("huatuo_pairwise")
    _, messages = render(spec, language=case["language"], history=[], question=case["question"],
                         reference=case["reference"],
                         responses={"response_a": long_answer, "response_b": case["answers"]["weak"]})
    payload = json.dumps({"model": "medalign-rubric-v2", "messages": messages}).encode()
    status, body = _http(server_url + "/chat/completions", "POST", payload)
    assert status == 200 and body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > 150_000
