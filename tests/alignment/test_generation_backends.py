"""The generation block: backends, the endpoint backend's requests, seeds, cache and failures,
and (slow) greedy equality with a real third-party server, ``transformers serve``."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from alignment.generation import SamplingSpec
from alignment.generation_backends import GenerationSpec
from alignment.generation_endpoint import request_seed
from alignment.stages.sample import generate_from_checkpoint
from medalign.errors import UserError
from medalign.stage import StageContext


class _Echo(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers what it was asked (and records it)."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.requests.append({"body": body, "auth": self.headers.get("authorization")})
        question = body["messages"][-1]["content"]
        if self.server.fail_on and self.server.fail_on in question:
            self.send_response(400)
            reply = {"error": {"message": "prompt too long", "type": "invalid_request_error"}}
        else:
            self.send_response(200)
            text = f" {question}|seed={body.get('seed')}|t={body['temperature']}|top_k={body.get('top_k')} "
            reply = {"id": "x", "object": "chat.completion", "model": body["model"], "system_fingerprint": "fp_test",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop" if len(question) < 30 else "length"}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}}
        data = json.dumps(reply).encode()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.requests, server.fail_on = [], None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _prompts(*questions):
    return [{"messages": [{"role": "user", "content": q}]} for q in questions]


def test_endpoint_needs_a_url_or_a_launch_command():
    with pytest.raises(ValidationError, match="endpoint.base_url .* or endpoint.launch"):
        GenerationSpec(backend="endpoint")
    with pytest.raises(ValidationError, match="must be an http"):
        GenerationSpec(backend="endpoint", endpoint={"base_url": "gpu-node:8000"})


def test_rsft_refuses_a_fixed_endpoint():
    from alignment.stages.rsft import RSFTStageConfig

    with pytest.raises(ValidationError, match="rsft samples a new checkpoint every iteration"):
        RSFTStageConfig(generation={"backend": "endpoint", "endpoint": {"base_url": "http://h:8000/v1"}})
    RSFTStageConfig(generation={"backend": "endpoint", "endpoint": {"launch": ["vllm", "serve", "{model}"]}})


def test_ray_actors_outside_a_ray_job_is_one_clear_error():
    from alignment import generation_backends

    generation_backends._BACKENDS.pop("ray_actors", None)
    with pytest.raises(UserError, match="medalign run JOB, not --no-ray"):
        generate_from_checkpoint("m", "policy", _prompts("hi"), SamplingSpec(), 1, 0, "auto", StageContext(),
                                 GenerationSpec(backend="ray_actors"))


def test_endpoint_requests_seeds_and_info(echo_server, tmp_path, monkeypatch):
    server, url = echo_server
    monkeypatch.setenv("GEN_KEY", "sk-test-secret-123456")
    gen = GenerationSpec(backend="endpoint", endpoint={"base_url": url, "model": "policy-v1",
                                                       "api_key_env": "GEN_KEY", "concurrency": 3})
    spec = SamplingSpec(temperature=0.8, top_p=0.9, top_k=20, max_new_tokens=33)
    info: dict = {}
    outs = generate_from_checkpoint("ckpt", "policy", _prompts("a", "b", "a much longer question than that"),
                                    spec, 2, 7, "auto", StageContext(progress=False), gen, tmp_path, info)
    assert len(server.requests) == 6                         # k requests per prompt
    body = server.requests[0]["body"]
    assert body["model"] == "policy-v1" and body["max_tokens"] == 33 and body["top_p"] == 0.9
    assert server.requests[0]["auth"] == "Bearer sk-test-secret-123456"
    seeds = sorted(r["body"]["seed"] for r in server.requests)
    assert seeds == sorted(request_seed(7, i, j) for i in range(3) for j in range(2))
    assert outs[1][1].text == f"b|seed={request_seed(7, 1, 1)}|t=0.8|top_k=20"   # in order, stripped
    assert outs[0][0].n_tokens == 7 and outs[0][0].finished and not outs[2][0].finished
    assert info["backend"] == "endpoint" and info["model"] == "policy-v1" and info["requests"] == 6
    assert info["system_fingerprints"] == ["fp_test"] and "seed" in info["seeds"]
    assert "sk-test" not in json.dumps(info)


def test_greedy_sends_one_request_per_prompt_and_the_cache_resumes(echo_server, tmp_path):
    server, url = echo_server
    gen = GenerationSpec(backend="endpoint", endpoint={"base_url": url, "model": "m"})
    spec = SamplingSpec(temperature=0, top_k=0, max_new_tokens=8)
    ctx = StageContext(progress=False)
    first = generate_from_checkpoint("ckpt", "policy", _prompts("x", "y"), spec, 3, 0, "auto", ctx, gen, tmp_path)
    assert len(server.requests) == 2 and "seed" not in server.requests[0]["body"]
    assert "top_k" not in server.requests[0]["body"]          # 0 = off: not sent
    assert [len(r) for r in first] == [3, 3] and first[0][0].text == first[0][2].text
    again = generate_from_checkpoint("ckpt", "policy", _prompts("x", "y", "z"), spec, 3, 0, "auto", ctx, gen, tmp_path)
    assert len(server.requests) == 3                          # only z was asked for
    assert [g.text for g in again[0]] == [g.text for g in first[0]]


def test_a_failed_request_fails_the_generation_in_one_line(echo_server, tmp_path):
    server, url = echo_server
    server.fail_on = "bad"
    gen = GenerationSpec(backend="endpoint", endpoint={"base_url": url, "model": "m"})
    with pytest.raises(UserError, match=r"1 of 2 requests failed .*HTTP 400: .*prompt too long"):
        generate_from_checkpoint("ckpt", "policy", _prompts("good", "bad"), SamplingSpec(temperature=0), 1, 0,
                                 "auto", StageContext(progress=False), gen, tmp_path)


def test_sample_stage_records_the_backend_in_its_metrics(echo_server, tmp_path, tiny_data_dir):
    from alignment.stages import sample

    _, url = echo_server
    cfg = sample.Config(k=2, max_prompts=3, sampling={"temperature": 1.0, "max_new_tokens": 8},
                        generation={"backend": "endpoint", "endpoint": {"base_url": url, "model": "m"}})
    metrics = sample.run(cfg, {"data": str(tiny_data_dir), "policy": "hub/policy"}, tmp_path,
                         StageContext(progress=False))
    assert metrics["samples"] == 6 and metrics["generation"]["backend"] == "endpoint"
    assert (tmp_path / "cache" / "generations" / "completions.jsonl").is_file()


@pytest.mark.slow
def test_transformers_serve_greedy_equals_in_process(tiny_sft_model_dir, tiny_chat_dataset, tmp_path):
    """A real third-party OpenAI-compatible server (transformers' own `transformers serve`),
    launched by medalign on the checkpoint: greedy outputs equal in-process generation token for
    token (text, token count and end-of-turn), single- and multi-turn prompts."""
    pytest.importorskip("fastapi")
    serve = Path(sys.executable).parent / "transformers"
    prompts = [{"messages": r["messages"][:1]} for r in tiny_chat_dataset[:12]]
    prompts += [{"messages": r["messages"][:3]} for r in tiny_chat_dataset if len(r["messages"]) > 2][:3]
    spec = SamplingSpec(temperature=0, max_new_tokens=40, batch_size=8)
    ctx = StageContext(progress=False)
    local = generate_from_checkpoint(str(tiny_sft_model_dir), "policy", prompts, spec, 1, 0, "auto", ctx)
    gen = GenerationSpec(backend="endpoint", endpoint={
        "launch": [str(serve), "serve", "{model}", "--port", "{port}", "--host", "127.0.0.1", "--device", "cpu"],
        "concurrency": 2, "ready_timeout_s": 300})
    info: dict = {}
    served = generate_from_checkpoint(str(tiny_sft_model_dir), "policy", prompts, spec, 1, 0, "auto", ctx, gen,
                                      tmp_path, info)
    pairs = [(a[0], b[0]) for a, b in zip(local, served)]
    assert [(a.text, a.n_tokens, a.finished) for a, _ in pairs] == [(b.text, b.n_tokens, b.finished) for _, b in pairs]
    assert sum(a.n_tokens for a, _ in pairs) > 3 * len(pairs)      # real responses, not empty ones
    assert info["requests"] == len(prompts) and (tmp_path / "logs" / "generation-server.log").is_file()
