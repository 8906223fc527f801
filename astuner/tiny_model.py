"""Build a tiny random Qwen2-architecture model and a small tokenizer, offline, in seconds.

No model weights can be downloaded on our machines, yet tests, the debug backbone and the
offline quick start need a real Hugging Face causal LM with a real chat template. This module
makes one: a byte-level BPE tokenizer trained on a small built-in corpus (math word problems,
Python code, JSON tool calls) and a randomly initialised ``Qwen2ForCausalLM`` (float32, weights
drawn with std 0.2 so its next-token distributions are not nearly uniform).

Token layout (stable for a given ``vocab_size`` and ``corpus``):

- ``<|endoftext|>`` = 0 (pad), ``<|im_start|>`` = 1, ``<|im_end|>`` = 2 (eos) are special tokens;
- ``<tool_call>``, ``</tool_call>``, ``<tool_response>``, ``</tool_response>``, ``<think>``,
  ``</think>`` are ordinary (non-special) added tokens, each encoded as one id, placed after the
  trained vocabulary. Their ids depend on how many merges the corpus allowed; read them from
  the tokenizer rather than hard-coding them.

The chat template is Qwen2.5-style (ChatML with a ``<tools>`` system block, ``<tool_call>`` JSON
for assistant tool calls, consecutive tool messages grouped into one user turn of
``<tool_response>`` blocks) and is prefix-preserving for a growing ReAct conversation.

Not guaranteed: the model says anything meaningful (its weights are random), the token ids are
the same as any real Qwen tokenizer's, or the tokenizer is identical across ``tokenizers``
library versions. ``seed`` changes only the weights; the tokenizer depends only on
``vocab_size`` and ``corpus``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
MARKER_FILE = "astuner_tiny_model.json"
_MARKER_VERSION = 2

_PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Ten times the usual 0.02: with tied embeddings and tiny layers, 0.02 gives near-uniform next-token
# distributions and greedy decoding that repeats one token forever, which makes poor test fixtures.
_INIT_STD = 0.2

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen2.5-style tools template, written for astuner. Layout per turn:
#   <|im_start|>{role}\n{content}<|im_end|>\n
# Assistant tool calls follow the content as "\n<tool_call>\n{json}\n</tool_call>" blocks, and a
# run of tool messages becomes one user turn of "\n<tool_response>\n...\n</tool_response>" blocks.
CHAT_TEMPLATE = (
    "{%- macro text_of(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is none -%}"
    "{%- elif content is mapping -%}{{- content.text if content.text is defined else '' -}}"
    "{%- elif content is iterable -%}"
    "{%- for part in content -%}"
    "{%- if part is string -%}{{- part -}}"
    "{%- elif part.text is defined -%}{{- part.text -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}{{- content -}}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system_text = text_of(messages[0].content) -%}"
    "{%- set first_turn = 1 -%}"
    "{%- else -%}"
    "{%- set system_text = '" + DEFAULT_SYSTEM_PROMPT + "' -%}"
    "{%- set first_turn = 0 -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system_text -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nYou can call the functions below to help with the request.\\n\\n"
    "Their signatures are listed inside <tools></tools> tags:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nTo call a function, answer with a JSON object holding its name and "
    "arguments inside <tool_call></tool_call> tags:\\n<tool_call>\\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call>' -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- for message in messages[first_turn:] -%}"
    "{%- if message.role == 'tool' -%}"
    "{%- if loop.first or loop.previtem.role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + text_of(message.content) + '\\n</tool_response>' -}}"
    "{%- if loop.last or loop.nextitem.role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- elif message.role == 'assistant' and message.tool_calls -%}"
    "{{- '<|im_start|>assistant' -}}"
    "{%- set body = text_of(message.content) -%}"
    "{%- if body -%}{{- '\\n' + body -}}{%- endif -%}"
    "{%- for item in message.tool_calls -%}"
    "{%- set call = item.function if item.function is defined else item -%}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + call.name + '\", \"arguments\": ' -}}"
    "{%- if call.arguments is string -%}{{- call.arguments -}}"
    "{%- else -%}{{- call.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + text_of(message.content) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def builtin_corpus() -> list[str]:
    """A few hundred lines of varied text for training the tokenizer.

    Generated from a fixed random seed so the tokenizer never depends on the model seed.
    """
    rng = random.Random(1234)
    names = ["Alice", "Bob", "Carla", "Deng", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira", "Liam"]
    items = ["apples", "pencils", "marbles", "books", "cookies", "stickers", "eggs", "cards", "tickets", "shells"]
    places = ["market", "school", "library", "farm", "store", "park", "bakery", "museum"]
    verbs = ["buys", "sells", "gives away", "finds", "loses", "collects", "bakes", "receives"]
    lines: list[str] = []
    for _ in range(160):
        a, b, c = rng.randint(2, 90), rng.randint(2, 40), rng.randint(2, 12)
        name, other = rng.sample(names, 2)
        item, place, verb = rng.choice(items), rng.choice(places), rng.choice(verbs)
        lines.append(
            f"{name} has {a} {item}. At the {place}, {name} {verb} {b} more and then shares them equally "
            f"with {other} and {c - 1} friends. How many {item} does each person get?"
        )
        lines.append(f"Step 1: {a} + {b} = {a + b}. Step 2: {a + b} / {c} = {(a + b) / c:.2f}. The answer is \\boxed{{{(a + b) // c}}}.")
        lines.append(f"Let's think step by step. {name} spends ${a}.{b:02d} on {item}; what is {a} * {c}? It is {a * c}.")
    funcs = ["compute_total", "average", "solve", "count_items", "parse_answer", "main", "helper"]
    for _ in range(60):
        fn, x, y = rng.choice(funcs), rng.randint(1, 99), rng.randint(1, 99)
        lines.append(f"def {fn}(values: list[int], factor: int = {x}) -> int:")
        lines.append(f"    total = sum(v * factor for v in values if v > {y})")
        lines.append("    return total // len(values) if values else 0")
        lines.append(f"print({fn}([{x}, {y}, {x + y}]))")
        lines.append(f"for i in range({x}):\n    if i % {y % 7 + 2} == 0:\n        result.append(i ** 2)")
        lines.append(f"import math\nx = math.sqrt({x * x})\nprint(f\"x = {{x}}\")")
    for _ in range(80):
        a, b = rng.randint(1, 500), rng.randint(1, 500)
        code = f"print({a} * {b} + {a % 17})"
        call = {"name": "execute_python_code", "arguments": {"code": code}}
        lines.append("<tool_call>\n" + json.dumps(call) + "\n</tool_call>")
        lines.append(
            f"<tool_response>\n<returncode>0</returncode><stdout>{a * b + a % 17}\n</stdout><stderr></stderr>\n</tool_response>"
        )
        lines.append(json.dumps({"result": a * b, "is_success": True, "final_answer": str(a + b)}))
        lines.append(f"<think>\nI should compute {a} * {b} with the tool before answering.\n</think>")
    words = (
        "the a an of to and in is was for on that with as it at by from this be are or have has had not but "
        "what all were when we there can which their if will each about how up out them then she many some so "
        "these would other into more her two like him see time could no make than first been its who now people "
        "my made over did down only way find use may water long little very after words called just where most "
        "know get through back much before go good new write our used me man too any day same right look think "
        "also around another came come work three word must because does part even place well such here take why "
        "things help put years different away again off went old number great tell men say small every found still "
        "between name should home big give air line set own under read last never us left end along while might next "
        "sound below saw something thought both few those always looked show large often together asked house world "
        "going want school important until form food keep children feet land side without boy once animals life "
        "enough took sometimes four head above kind began almost live page got earth need far hand high year mother "
        "light parts country father let night following picture being study second eyes soon times story boys since "
        "white days paper hard near sentence better best across during today others however sure means knew try told "
        "young miles sun ways thing whole hear example heard several change answer room sea against top turned learn "
        "point city play toward five using himself usually money seen car morning given trees table half total price "
        "percent twice remaining difference product quotient sum equal equation fraction decimal multiply divide "
        "subtract add result value compute calculate cost dollars cents hours minutes week month meters kilometers "
        "weight speed distance area perimeter rectangle triangle circle radius average ratio profit discount"
    ).split()
    variants = words + [w + suffix for w in words for suffix in ("s", "ed", "ing", "er")] + [w.title() for w in words]
    for _ in range(500):
        length = rng.randint(6, 16)
        sentence = " ".join(rng.choice(variants) for _ in range(length))
        lines.append(sentence.capitalize() + rng.choice([".", "?", "!", ":", ";"]))
    keywords = (
        "class return yield lambda import from async await with try except finally raise assert while break "
        "continue global nonlocal elif else isinstance len range enumerate zip sorted dict list tuple set str int "
        "float bool None True False self super property staticmethod dataclass Path json open read write append"
    ).split()
    for _ in range(120):
        lines.append(" ".join(rng.choice(keywords) for _ in range(rng.randint(4, 9))))
    lines.append(json.dumps({"type": "function", "function": {"name": "execute_python_code",
                 "description": "Execute Python code and return stdout.",
                 "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}))
    lines.append(DEFAULT_SYSTEM_PROMPT)
    lines.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
                 "<|im_start|>assistant\nThe answer is 5.<|im_end|>\n")
    return lines


def _build_tokenizer(vocab_size: int, corpus: list[str]):
    """Train the BPE tokenizer and wrap it for transformers."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # The same normalizer and pre-tokenizer as transformers' Qwen2Tokenizer, which AutoTokenizer
    # picks for a qwen2 model directory: both loading paths then tokenize identically.
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size - len(ADDED_TOKENS), len(SPECIAL_TOKENS) + 256),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=4096,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _marker(vocab_size: int, hidden_size: int, num_layers: int, seed: int, corpus: list[str] | None) -> dict:
    import hashlib

    digest = hashlib.sha256("\n".join(corpus or []).encode()).hexdigest()
    return {
        "version": _MARKER_VERSION,
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "seed": seed,
        "corpus_sha256": digest,
    }


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab_size: int = 2048,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Write a tiny tokenizer + random Qwen2 model to ``out_dir`` and return that path.

    Returns at once when ``out_dir`` already holds a model built with the same arguments
    (recorded in ``astuner_tiny_model.json``). ``hidden_size`` must be a multiple of 16 (four
    attention heads of even size). The model's vocabulary size equals the tokenizer's length,
    which can be below ``vocab_size`` when the corpus is too small for that many merges.
    Not guaranteed: concurrent builds into the same directory are safe.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if hidden_size % 16 or hidden_size <= 0:
        raise ValueError(f"hidden_size must be a positive multiple of 16, got {hidden_size}")
    out = Path(out_dir)
    extra = [str(line) for line in corpus] if corpus is not None else None
    marker = _marker(vocab_size, hidden_size, num_layers, seed, extra)
    marker_path = out / MARKER_FILE
    if marker_path.is_file():
        try:
            if json.loads(marker_path.read_text()) == marker:
                return out
        except (OSError, ValueError):
            pass

    tokenizer = _build_tokenizer(vocab_size, builtin_corpus() + (extra or []))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=_INIT_STD,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=im_end,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=[im_end], pad_token_id=pad, bos_token_id=None)

    out.mkdir(parents=True, exist_ok=True)
    marker_path.unlink(missing_ok=True)
    tokenizer.save_pretrained(out)
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    marker_path.write_text(json.dumps(marker, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m astuner.tiny_model OUT_DIR``: build (or reuse) the tiny model, print its path."""
    parser = argparse.ArgumentParser(prog="python -m astuner.tiny_model", description=main.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_tiny_model(
        args.out_dir,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        seed=args.seed,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
