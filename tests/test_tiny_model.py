"""The tiny offline model: builds fast, loads with Auto classes, and its chat template is Qwen2.5-style."""

from __future__ import annotations

import json
import time

import pytest

from astuner.tiny_model import ADDED_TOKENS, MARKER_FILE, build_tiny_model, main

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_python_code",
            "description": "Execute Python code and return what it printed.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]


def tool_call(code: str, call_id: str = "call_0") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "execute_python_code", "arguments": {"code": code}}}


REACT = [
    {"role": "system", "content": "You solve math problems."},
    {"role": "user", "content": "What is 17 * 23?"},
    {"role": "assistant", "content": "", "tool_calls": [tool_call("print(17 * 23)")]},
    {"role": "tool", "content": "391", "tool_call_id": "call_0"},
    {"role": "assistant", "content": "The answer is 391."},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    start = time.monotonic()
    path = build_tiny_model(out)
    return path, time.monotonic() - start


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny[0])


def render(tokenizer, messages, *, tools=TOOLS, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def test_builds_fast_and_loads_with_auto_classes(tiny, tokenizer):
    from transformers import AutoModelForCausalLM

    path, seconds = tiny
    assert seconds < 30
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "qwen2"
    assert model.config.tie_word_embeddings
    assert model.config.max_position_embeddings == 4096
    assert model.config.vocab_size == len(tokenizer) == 2048
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token_id == im_end == model.config.eos_token_id
    assert tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id in (im_end, [im_end])


def test_special_and_added_tokens_are_single_ids(tokenizer):
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}
    assert ids == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for token in ADDED_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, token
        assert tokenizer.decode(encoded) == token
    added = [tokenizer.convert_tokens_to_ids(t) for t in ADDED_TOKENS]
    assert added == list(range(2048 - len(ADDED_TOKENS), 2048))
    text = '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call><|im_end|>'
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_tokenizer_class_does_not_change_tokenization(tiny, tokenizer):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_file(str(tiny[0] / "tokenizer.json"))
    generic = PreTrainedTokenizerFast.from_pretrained(tiny[0])
    text = "Emma has 12 apples.\n\ndef f(x):\n    return x ** 2  # don't\n<tool_call>{}</tool_call>"
    expected = raw.encode(text, add_special_tokens=False).ids
    assert tokenizer.encode(text, add_special_tokens=False) == expected
    assert generic.encode(text, add_special_tokens=False) == expected


def test_reuses_a_matching_build_and_rebuilds_otherwise(tiny):
    path, _ = tiny
    marker = path / MARKER_FILE
    before = (path / "model.safetensors").stat().st_mtime_ns
    start = time.monotonic()
    assert build_tiny_model(path) == path
    assert time.monotonic() - start < 1
    assert (path / "model.safetensors").stat().st_mtime_ns == before
    assert json.loads(marker.read_text())["seed"] == 0


def test_seed_changes_weights_not_tokenizer(tmp_path, tiny):
    import torch
    from transformers import AutoModelForCausalLM

    other = build_tiny_model(tmp_path / "seed1", seed=1)
    assert (other / "tokenizer.json").read_text() == (tiny[0] / "tokenizer.json").read_text()
    a = AutoModelForCausalLM.from_pretrained(tiny[0]).model.embed_tokens.weight
    b = AutoModelForCausalLM.from_pretrained(other).model.embed_tokens.weight
    assert not torch.equal(a, b)


def test_cli_prints_the_path(tiny, capsys):
    assert main([str(tiny[0])]) == 0
    assert capsys.readouterr().out.strip() == str(tiny[0])


def test_template_renders_tools_tool_calls_and_grouped_tool_responses(tokenizer):
    messages = [
        {"role": "user", "content": "Compute two things."},
        {"role": "assistant", "content": "Let me run both.", "tool_calls": [tool_call("print(1 + 1)"), tool_call("print(2 * 3)", "call_1")]},
        {"role": "tool", "content": "2", "tool_call_id": "call_0"},
        {"role": "tool", "content": "6", "tool_call_id": "call_1"},
    ]
    text = render(tokenizer, messages)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in text
    assert "</tool_call><|im_end|>\n<|im_start|>user\nCompute two things.<|im_end|>\n" in text
    assert (
        "<|im_start|>assistant\nLet me run both.\n"
        '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(1 + 1)"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(2 * 3)"}}\n</tool_call><|im_end|>\n'
    ) in text
    assert text.endswith(
        "<|im_start|>user\n<tool_response>\n2\n</tool_response>\n<tool_response>\n6\n</tool_response><|im_end|>\n"
    )
    assert text.count("<|im_start|>") == 4


def test_template_details(tokenizer):
    plain = render(tokenizer, [{"role": "user", "content": "hi"}], tools=None)
    assert plain == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    with_system = render(tokenizer, [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}], tools=None)
    assert with_system.startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user")
    prompt = render(tokenizer, REACT[:2], add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    string_args = {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]}
    rendered = render(tokenizer, [{"role": "user", "content": "x"}, string_args])
    assert rendered.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call><|im_end|>\n')
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert "<|im_start|>user\nab<|im_end|>" in render(tokenizer, [{"role": "user", "content": parts}])


@pytest.mark.parametrize("tools", [TOOLS, None])
def test_template_is_prefix_preserving_for_react(tokenizer, tools):
    for k in range(1, len(REACT)):
        grown = render(tokenizer, REACT[: k + 1], tools=tools)
        if REACT[k]["role"] == "assistant":
            prompt = render(tokenizer, REACT[:k], tools=tools, add_generation_prompt=True)
            assert grown.startswith(prompt), k
        if k + 2 <= len(REACT):
            assert render(tokenizer, REACT[: k + 2], tools=tools).startswith(grown), k
    full_ids = tokenizer.encode(render(tokenizer, REACT, tools=tools), add_special_tokens=False)
    prompt_ids = tokenizer.encode(render(tokenizer, REACT[:4], tools=tools, add_generation_prompt=True), add_special_tokens=False)
    assert full_ids[: len(prompt_ids)] == prompt_ids
