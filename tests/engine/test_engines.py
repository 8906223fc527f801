"""Engines: batched in-process generation, the vLLM-style HTTP engine, scripted replies, build_engine."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from astuner.config.schema_rollout import (
    EngineConfig,
    OpenAIEngineConfig,
    ScriptedEngineConfig,
    TransformersEngineConfig,
)
from astuner.engine import EngineError, SamplingParams, build_engine
from astuner.engine.openai_engine import OpenAIEngine
from astuner.engine.scripted_engine import ScriptedEngine
from astuner.engine.transformers_engine import TransformersEngine
from astuner.tiny_model import build_tiny_model

pytestmark = pytest.mark.integration

TEXTS = [
    "Emma has 12 apples and buys 7 more. How many apples does she have?",
    "def f(x):\n    return",
    "hi",
    "What is 17 * 23? Let's think step by step and use the tool to check the product carefully.",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def engine(tiny_dir):
    eng = TransformersEngine(str(tiny_dir), device="cpu", dtype="float32", seed=0)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def prompts(engine):
    return [engine.tokenizer.encode(t, add_special_tokens=False) for t in TEXTS]


def run(coro):
    return asyncio.run(coro)


async def run_all(*coros):
    return await asyncio.gather(*coros)


async def gather(engine, prompts, params):
    return await run_all(*[engine.generate(p, params) for p in prompts])


def full_logits(engine, prompt, completion_ids):
    ids = torch.tensor([prompt + completion_ids])
    with torch.no_grad():
        logits = engine.model(input_ids=ids).logits[0].float()
    return logits[len(prompt) - 1 : len(prompt) - 1 + len(completion_ids)]


def test_batched_greedy_equals_unbatched(engine, prompts):
    params = SamplingParams(max_tokens=24, temperature=0.0)
    alone = [run(engine.generate(p, params)) for p in prompts]
    batches_before = engine.batches_run
    together = run(gather(engine, prompts, params))
    assert engine.batches_run - batches_before < len(prompts)
    for a, b in zip(alone, together):
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        assert a.finish_reason == b.finish_reason == "length"
    assert len({tuple(c.token_ids) for c in alone}) > 1
    assert any(len(set(c.token_ids)) > 3 for c in alone)


def test_greedy_logprobs_are_the_unscaled_distribution(engine, prompts):
    out = run(engine.generate(prompts[0], SamplingParams(max_tokens=10, temperature=0.0)))
    logits = full_logits(engine, prompts[0], out.token_ids)
    assert out.token_ids == logits.argmax(-1).tolist()
    expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(out.token_ids)[:, None]).squeeze(1)
    assert out.logprobs == pytest.approx(expected.tolist(), abs=1e-4)


@pytest.mark.parametrize("top_p,top_k", [(1.0, -1), (0.8, 20)])
def test_sampled_logprobs_match_a_full_forward_pass(engine, prompts, top_p, top_k):
    params = SamplingParams(max_tokens=16, temperature=0.7, top_p=top_p, top_k=top_k, seed=11)
    outs = run(gather(engine, prompts, params))
    for prompt, out in zip(prompts, outs):
        logits = full_logits(engine, prompt, out.token_ids)
        expected = torch.log_softmax(logits / 0.7, -1).gather(1, torch.tensor(out.token_ids)[:, None]).squeeze(1)
        assert out.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
        if top_k > 0:
            ranks = (logits > logits.gather(1, torch.tensor(out.token_ids)[:, None])).sum(-1)
            assert int(ranks.max()) < top_k


def test_seeded_requests_reproduce_and_unseeded_vary(engine, prompts):
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=5)
    first = run(gather(engine, [prompts[1]] * 3, seeded))
    assert first[0].token_ids == first[1].token_ids == first[2].token_ids
    assert run(engine.generate(prompts[1], seeded)).token_ids == first[0].token_ids
    free = run(gather(engine, [prompts[1]] * 4, SamplingParams(max_tokens=12, temperature=1.0)))
    assert len({tuple(c.token_ids) for c in free}) > 1


def test_stop_token_is_included_with_finish_stop(engine, prompts):
    greedy = run(engine.generate(prompts[3], SamplingParams(max_tokens=16, temperature=0.0))).token_ids
    cut = next(i for i in range(1, len(greedy)) if greedy[i] not in greedy[:i])
    params = SamplingParams(max_tokens=16, temperature=0.0, stop_token_ids=[greedy[cut]])
    out, other = run(gather(engine, [prompts[3], prompts[0]], params))
    assert out.token_ids == greedy[: cut + 1]
    assert out.finish_reason == "stop"
    assert len(out.logprobs) == cut + 1
    assert len(other.token_ids) <= 16


def test_max_tokens_gives_length(engine, prompts):
    short, longer = run(
        run_all(
            engine.generate(prompts[2], SamplingParams(max_tokens=3, temperature=0.0)),
            engine.generate(prompts[2], SamplingParams(max_tokens=9, temperature=0.0)),
        )
    )
    assert (len(short.token_ids), short.finish_reason) == (3, "length")
    assert (len(longer.token_ids), longer.finish_reason) == (9, "length")
    assert longer.token_ids[:3] == short.token_ids


def test_sixteen_concurrent_requests_are_batched(engine, prompts):
    requests = [
        (prompts[i % len(prompts)], SamplingParams(max_tokens=4 + i, temperature=0.0 if i % 2 else 0.9))
        for i in range(16)
    ]
    before = engine.batches_run
    outs = run(run_all(*[engine.generate(p, s) for p, s in requests]))
    assert [len(o.token_ids) for o in outs] == [4 + i for i in range(16)]
    assert engine.batches_run - before < 16
    assert engine.largest_batch > 1


def test_closed_engine_refuses_and_swaps_weights(tiny_dir, engine, prompts):
    from transformers import AutoModelForCausalLM

    other = TransformersEngine(str(tiny_dir), device="cpu", dtype="float32", tokenizer=engine.tokenizer)
    params = SamplingParams(max_tokens=6, temperature=0.0)
    base = run(other.generate(prompts[0], params)).token_ids
    changed = AutoModelForCausalLM.from_pretrained(build_tiny_model(tiny_dir.parent / "seed7", seed=7))
    other.load_state_dict(changed.state_dict())
    assert run(other.generate(prompts[0], params)).token_ids != base
    other.reload(engine.model)
    assert run(other.generate(prompts[0], params)).token_ids == base
    other.close()
    other.close()
    with pytest.raises(EngineError):
        run(other.generate(prompts[0], params))


# ---- OpenAI-compatible engine against a local fake vLLM server ----


class FakeVLLM(BaseHTTPRequestHandler):
    """Answers POST /v1/completions the way vLLM does with token-id extras."""

    bodies: list[dict] = []
    headers_seen: list[str] = []
    mode = "token_ids"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeVLLM.bodies.append(body)
        FakeVLLM.headers_seen.append(self.headers.get("Authorization", ""))
        if self.path != "/v1/completions" or FakeVLLM.mode == "error":
            self._send(500, {"object": "error", "message": "boom"})
            return
        generated = [7, 8, 9] + body["stop_token_ids"][:1]
        generated = generated[: body["max_tokens"]]
        finish = "stop" if len(generated) == 4 else "length"
        choice = {
            "index": 0,
            "text": "ignored",
            "finish_reason": finish,
            "stop_reason": generated[-1] if finish == "stop" else None,
            "logprobs": {
                "tokens": [f"token_id:{t}" for t in generated],
                "token_logprobs": [-0.5 * (i + 1) for i in range(len(generated))],
                "top_logprobs": [{f"token_id:{t}": -0.5} for t in generated],
                "text_offset": list(range(len(generated))),
            },
        }
        if FakeVLLM.mode == "token_ids":
            choice["token_ids"] = generated
            choice["prompt_token_ids"] = body["prompt"]
        self._send(200, {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": [choice]})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    FakeVLLM.bodies, FakeVLLM.headers_seen, FakeVLLM.mode = [], [], "token_ids"
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_engine_is_token_exact(fake_server, monkeypatch):
    monkeypatch.delenv("ASTUNER_TEST_KEY", raising=False)
    engine = OpenAIEngine(fake_server + "/", "tiny", api_key_env="ASTUNER_TEST_KEY", timeout_s=10)
    params = SamplingParams(max_tokens=10, temperature=0.7, top_p=0.9, top_k=5, stop_token_ids=[2], seed=3)
    out = run(engine.generate([1, 5, 6], params))
    assert out.token_ids == [7, 8, 9, 2]
    assert out.logprobs == [-0.5, -1.0, -1.5, -2.0]
    assert out.finish_reason == "stop"
    body = FakeVLLM.bodies[-1]
    assert body["prompt"] == [1, 5, 6] and body["model"] == "tiny"
    assert body["logprobs"] == 1 and body["max_tokens"] == 10 and body["seed"] == 3 and body["top_k"] == 5
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["stop_token_ids"] == [2]
    assert body["return_tokens_as_token_ids"] and body["return_token_ids"] and body["include_stop_str_in_output"]
    assert body["skip_special_tokens"] is False
    assert FakeVLLM.headers_seen[-1] == "Bearer EMPTY"
    short = run(engine.generate([1], SamplingParams(max_tokens=2, stop_token_ids=[2])))
    assert (short.token_ids, short.finish_reason) == ([7, 8], "length")
    engine.close()


def test_openai_engine_parses_token_id_strings_without_token_ids(fake_server, monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_KEY", "secret")
    FakeVLLM.mode = "strings"
    engine = OpenAIEngine(fake_server, "tiny", api_key_env="ASTUNER_TEST_KEY")

    async def twice():
        return await asyncio.gather(*[engine.generate([1], SamplingParams(max_tokens=8, stop_token_ids=[4])) for _ in range(2)])

    for out in run(twice()):
        assert out.token_ids == [7, 8, 9, 4]
    assert run(engine.generate([1], SamplingParams(max_tokens=8))).token_ids == [7, 8, 9]
    assert FakeVLLM.headers_seen[-1] == "Bearer secret"
    engine.close()


def test_openai_engine_errors_name_the_url(fake_server):
    FakeVLLM.mode = "error"
    engine = OpenAIEngine(fake_server, "tiny")
    with pytest.raises(EngineError, match=r"/v1/completions answered HTTP 500"):
        run(engine.generate([1], SamplingParams(max_tokens=4)))
    engine.close()
    with socket_free_port() as port:
        dead = OpenAIEngine(f"http://127.0.0.1:{port}/v1", "tiny", timeout_s=5)
        with pytest.raises(EngineError) as info:
            run(dead.generate([1], SamplingParams(max_tokens=4)))
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/v1/completions" in message and "\n" not in message


class socket_free_port:
    """A local port with nothing listening on it (bound, never listened, so nothing else takes it)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


# ---- scripted engine ----


class CharTokenizer:
    """One id per character, enough to check what the scripted engine does with text."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def write_script(path, entries):
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n\n")
    return path


def test_scripted_engine_selection_rules(tmp_path):
    script = write_script(
        tmp_path / "replies.jsonl",
        [
            {"task_id": "t1", "replies": ["ab", "cd"]},
            {"query": "What is 2+2?", "replies": ["q"]},
            {"default": True, "replies": ["zz"]},
        ],
    )
    engine = ScriptedEngine(script, CharTokenizer(), end_of_turn_id=2)
    params = SamplingParams(max_tokens=100)

    def reply(**context):
        return run(engine.generate([1], params, context=context))

    first = reply(task_id="t1", query="What is 2+2?", call_index=0)
    assert (first.token_ids, first.logprobs, first.finish_reason) == ([97, 98, 2], [0.0, 0.0, 0.0], "stop")
    assert reply(task_id="t1", call_index=1).token_ids == [99, 100, 2]
    assert reply(task_id="t1", call_index=5).token_ids == [99, 100, 2]
    assert reply(task_id="other", query="What is 2+2?", call_index=0).token_ids == [113, 2]
    assert reply(task_id="other", query="else", call_index=0).token_ids == [122, 122, 2]
    cut = run(engine.generate([1], SamplingParams(max_tokens=2), context={"task_id": "t1", "call_index": 0}))
    assert (cut.token_ids, cut.finish_reason) == ([97, 98], "length")


def test_scripted_engine_errors_name_path_line_and_task(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(EngineError, match="nope.jsonl"):
        ScriptedEngine(missing, CharTokenizer(), 2)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "a", "replies": ["x"]}) + "\n{not json\n")
    with pytest.raises(EngineError, match=r"bad\.jsonl:2"):
        ScriptedEngine(bad, CharTokenizer(), 2)
    no_replies = write_script(tmp_path / "empty.jsonl", [{"task_id": "a", "replies": []}])
    with pytest.raises(EngineError, match=r"empty\.jsonl:1: 'replies'"):
        ScriptedEngine(no_replies, CharTokenizer(), 2)
    only_task = ScriptedEngine(write_script(tmp_path / "one.jsonl", [{"task_id": "a", "replies": ["x"]}]), CharTokenizer(), 2)
    with pytest.raises(EngineError, match="'gsm8k-7'"):
        run(only_task.generate([1], SamplingParams(max_tokens=4), context={"task_id": "gsm8k-7", "query": "q", "call_index": 0}))


# ---- build_engine ----


def test_build_engine_dispatches_on_type(tmp_path, tiny_dir, engine):
    script = write_script(tmp_path / "r.jsonl", [{"default": True, "replies": ["hi"]}])
    scripted_cfg = EngineConfig(type="scripted", scripted=ScriptedEngineConfig(path=str(script)))
    scripted = build_engine(scripted_cfg, str(tiny_dir), engine.tokenizer, 2)
    assert isinstance(scripted, ScriptedEngine)
    assert run(scripted.generate([1], SamplingParams(max_tokens=50))).token_ids[-1] == 2

    openai = OpenAIEngineConfig(base_url="http://127.0.0.1:9/v1", model_name="", api_key_env="X", timeout_s=3)
    remote = build_engine(EngineConfig(type="openai", openai=openai), "/models/qwen", engine.tokenizer, 2)
    assert isinstance(remote, OpenAIEngine) and remote.model_name == "/models/qwen" and remote.timeout_s == 3

    on_cpu = TransformersEngineConfig(device="cpu", dtype="float32", max_batch_size=4)
    local = build_engine(EngineConfig(type="transformers", transformers=on_cpu), str(tiny_dir), engine.tokenizer, 2, seed=3)
    try:
        assert isinstance(local, TransformersEngine) and local.max_batch_size == 4 and local.tokenizer is engine.tokenizer
        assert local.model.dtype == torch.float32 and local.device.type == "cpu"
    finally:
        local.close()

    with pytest.raises(ValueError, match="sglang"):
        EngineConfig(type="sglang")  # an unknown type never reaches build_engine: the schema refuses it
    with pytest.raises(ValueError, match="engine.scripted.path is required"):
        build_engine(EngineConfig(type="scripted"), str(tiny_dir), engine.tokenizer, 2)
    with pytest.raises(ValueError, match="engine.openai.base_url is required"):
        build_engine(EngineConfig(type="openai", openai=OpenAIEngineConfig(base_url="")), "/m", engine.tokenizer, 2)
