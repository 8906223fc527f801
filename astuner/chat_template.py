"""What a tokenizer's chat template does around an assistant turn, learned by rendering probes.

The model tuner must know three things about any Hugging Face chat template to build prompts
token-exactly (docs/architecture.md, contract 2): which token ends an assistant turn (``<|im_end|>``
for ChatML, ``<|eot_id|>`` for Llama 3, ...), what text the template writes after it (``"\\n"`` for
ChatML), and how to render a conversation to text. Nothing here is ChatML-specific: the facts are
read off the template by rendering a probe conversation, so any template that renders an assistant
message as ``<header><content><end-of-turn><tail>`` works.

Not guaranteed: templates that render an assistant turn differently depending on what follows it
(Qwen3 drops past ``<think>`` blocks) are detected per call by the model tuner, which then falls
back to a fresh render (a new timeline); this module does not try to predict that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_PROBE = "ZQXJ-probe-7781"


class ChatTemplateError(ValueError):
    """The tokenizer has no usable chat template."""


@dataclass(frozen=True)
class TurnFormat:
    """How the template closes an assistant turn."""

    end_of_turn_id: int
    end_of_turn_text: str
    tail_text: str


class ChatTemplate:
    """Renders conversations with a tokenizer's own chat template and encodes text to ids."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat_template"
            )
        self.tokenizer = tokenizer
        self.turn = self._probe_turn_format()
        eos = tokenizer.eos_token_id
        stops = [self.turn.end_of_turn_id]
        if isinstance(eos, int) and eos not in stops:
            stops.append(eos)
        self.stop_token_ids: list[int] = stops

    def render(self, messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool) -> str:
        """The template's text for ``messages`` (tools passed only when non-empty)."""
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        if tools:
            kwargs["tools"] = tools
        return self.tokenizer.apply_chat_template(_for_template(messages), **kwargs)

    def encode(self, text: str) -> list[int]:
        """Ids of rendered template text. Special tokens in the text are already spelled out."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _probe_turn_format(self) -> TurnFormat:
        user = [{"role": "user", "content": "hello"}]
        prompt = self.render(user, None, add_generation_prompt=True)
        full = self.render(user + [{"role": "assistant", "content": _PROBE}], None, False)
        if not full.startswith(prompt) or _PROBE not in full:
            raise ChatTemplateError(
                "chat template does not render an assistant turn after its generation prompt; "
                "astuner cannot build token-exact prompts with it"
            )
        after = full[full.index(_PROBE) + len(_PROBE):]
        ids = self.encode(after)
        special = set(self.tokenizer.all_special_ids or [])
        for i, tid in enumerate(ids):
            if tid in special:
                eot_text = self.tokenizer.convert_ids_to_tokens(tid)
                idx = after.find(eot_text)
                if idx < 0:
                    break
                return TurnFormat(tid, eot_text, after[idx + len(eot_text):])
        eos = self.tokenizer.eos_token
        if eos and eos in after:
            idx = after.index(eos)
            return TurnFormat(self.tokenizer.eos_token_id, eos, after[idx + len(eos):])
        raise ChatTemplateError(
            f"cannot find the end-of-turn token after an assistant message (template writes {after!r})"
        )


def _for_template(messages: list[dict]) -> list[dict]:
    """Copies with tool-call arguments as dicts: templates serialise them themselves."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                fn = dict(tc.get("function", tc))
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        fn["arguments"] = json.loads(args)
                    except json.JSONDecodeError:
                        pass
                calls.append({"type": "function", "function": fn})
            m["tool_calls"] = calls
        out.append(m)
    return out
