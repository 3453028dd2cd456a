"""The local judge server answers the real openai client, in every template's format."""

from __future__ import annotations

import openai
import pytest

from judges.parsers import parse_completion, soft_scores
from judges.server import running_server
from judges.templates import load_template, render

MODEL = "medalign-rubric-v2"


def _messages(template: str, case: dict, a: str = "hybrid", b: str = "weak"):
    spec = load_template(template)
    texts = ({"response": case["answers"][a]} if spec.kind == "single_rating"
             else {"response_a": case["answers"][a], "response_b": case["answers"][b]})
    return spec, render(spec, language=case["language"], history=[], question=case["question"],
                        reference=case["reference"], responses=texts)[1]


def test_models_and_chat_with_the_openai_client(server_url, cases):
    client = openai.OpenAI(base_url=server_url, api_key="EMPTY", max_retries=0)
    assert [m.id for m in client.models.list()] == [MODEL, "medalign-patient", "medalign-grader"]
    for case in cases(2):                                  # one zh, one en
        for template in ("huatuo_pairwise", "verdict_pairwise", "single_rubric"):
            spec, messages = _messages(template, case)
            reply = client.chat.completions.create(model=MODEL, messages=messages,
                                                   logprobs=True, top_logprobs=5)
            text = reply.choices[0].message.content
            parsed = parse_completion(spec, text)
            assert parsed.status == "ok", (template, text)
            if spec.kind != "single_rating":
                assert parsed.scores["A"] > parsed.scores["B"], (template, text)
            assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
            lp = [t.model_dump() for t in reply.choices[0].logprobs.content]
            soft = soft_scores(spec, text, parsed, lp)
            assert soft is not None and abs(soft["A"] - parsed.scores["A"]) <= 1.0


def test_errors_in_openai_format(server_url, cases):
    client = openai.OpenAI(base_url=server_url, api_key="EMPTY", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="cannot read this prompt"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    _, messages = _messages("huatuo_pairwise", cases(1)[0])
    short = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5


def test_position_bias_and_noise_are_seeded(cases):
    case = cases(1)[0]
    spec, messages = _messages("huatuo_pairwise", case, "doctor", "distilled")
    swapped = _messages("huatuo_pairwise", case, "distilled", "doctor")[1]

    def ask(url, msgs):
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        text = client.chat.completions.create(model=MODEL, messages=msgs).choices[0].message.content
        return parse_completion(spec, text).scores

    with running_server() as url:
        plain, plain_swapped = ask(url, messages), ask(url, swapped)
    assert plain == {"A": plain_swapped["B"], "B": plain_swapped["A"]}     # no bias: symmetric
    with running_server(position_bias=3.0) as url:
        biased = ask(url, messages)
    assert biased["A"] == min(10.0, plain["A"] + 3) and biased["B"] == plain["B"]
    with running_server(noise_std=2.0, noise_seed=1) as url:
        first, again = ask(url, messages), ask(url, messages)
    assert first == again                                   # noise is a function of the request


def test_no_api_key_reaches_the_server_log(capfd, cases):
    secret = "sk-test-SECRET-0123456789abcdef"
    _, messages = _messages("huatuo_pairwise", cases(1)[0])
    with running_server() as url:
        client = openai.OpenAI(base_url=url, api_key=secret, max_retries=0)
        client.chat.completions.create(model=MODEL, messages=messages)
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err


def test_a_non_loopback_server_needs_a_key_and_rejects_calls_without_it(tmp_path, cases,
                                                                        monkeypatch, pair_items):
    from judges.api import judge_pairs
    from judges.config import JudgeConfig
    from judges.errors import JudgeSetupError
    from judges.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("node7")
    with pytest.raises(JudgeSetupError, match="--api-key-env"):
        with running_server(host="0.0.0.0"):
            pass
    key = "cluster-judge-key-0123456789"
    _, messages = _messages("huatuo_pairwise", cases(1)[0])
    with running_server(host="0.0.0.0", api_key=key) as url:
        for wrong in ("EMPTY", key + "x"):
            client = openai.OpenAI(base_url=url, api_key=wrong, max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(model=MODEL, messages=messages)
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
        assert [m.id for m in client.models.list()] == [MODEL, "medalign-patient", "medalign-grader"]
        # a worker's judge with the key in its environment works; without it, one api_error
        monkeypatch.setenv("MEDALIGN_TEST_CLUSTER_KEY", key)
        cfg = JudgeConfig(name="remote", base_url=url, api_key_env="MEDALIGN_TEST_CLUSTER_KEY")
        assert [r.status for r in judge_pairs(pair_items(2), cfg, tmp_path / "ok")] == ["ok", "ok"]
        bad = judge_pairs(pair_items(1), cfg.model_copy(update={"api_key_env": None}), tmp_path / "no")
        assert bad[0].status == "api_error"
