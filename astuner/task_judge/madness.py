"""Upstream's "madness" checks: outputs that are degenerate rather than merely wrong.

Why: RL can drive a policy into repetition loops, leaked chat-template tokens, foreign-script junk
or broken tool-call markup. A rollout with such an output gets ``agent_madness_reward`` instead of
the judge's reward (the rollout runner's rule), so degenerate text is never reinforced.

Checklist entries (config ``rollout.compute_madness_checklist``, upstream default ``["nonsense"]``):

* ``nonsense``: the text contains ``<|im_start|>``; or a word repeats within a small window for
  too long (memory of the last 5 distinct words; 10 tokens in a row all seen there); or a
  character does (memory 4, 200 in a row); or it has a character outside ASCII and the whitelist
  below (see ``non_ascii``).
* ``non_ascii``: a *modifier* of ``nonsense``: listing it ALLOWS any non-ASCII text. Upstream's code
  had this inverted name (its flag to "skip" the check performed it); the effective behaviour is
  kept, so with the default ``["nonsense"]`` Thai or Cyrillic text is flagged. ``allow_non_ascii``
  is accepted as the honest spelling of the same modifier.
* ``format_type_1``: flagged unless the text is exactly one ``<think>...</think>`` followed by one
  fenced python block.
* ``wrong_toolcall``: a call whose tool calls did not parse (or parsed to something without a name
  or with non-dict arguments), or whose text has ``<tool_call>`` but yielded no parsed call.

The whitelist (ASCII plus typographic punctuation, CJK ideographs and punctuation, full-width
forms, emoji) deliberately also admits Latin-1 math signs, Greek letters and the arrow, math
operator and super/subscript blocks, which upstream flagged, since math answers use them.

Not guaranteed: these are heuristics; they catch obvious loops and junk, not subtle nonsense.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from astuner.schema import CallRecord

MADNESS_CHECKS = ("nonsense", "format_type_1", "wrong_toolcall")
MODIFIERS = ("non_ascii", "allow_non_ascii")

_WORD_MEMORY, _WORD_PATIENCE = 5, 10
_CHAR_MEMORY, _CHAR_PATIENCE = 4, 200

_ALLOWED_SYMBOLS = frozenset(
    "‘’“”–—…•™©®°±µ′″℉℃·×÷²³¹½¼¾€£¥¢§¶"
)
_ALLOWED_RANGES = (
    (0x0370, 0x03FF),  # Greek (math variables)
    (0x2070, 0x209F),  # superscripts and subscripts
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # mathematical operators
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # full-width forms
    (0x1F300, 0x1FAFF),  # emoji
    (0x20000, 0x2A6DF),  # CJK extension B
)


def _char_allowed(char: str) -> bool:
    code = ord(char)
    if code < 128 or char in _ALLOWED_SYMBOLS:
        return True
    return any(lo <= code <= hi for lo, hi in _ALLOWED_RANGES)


def has_foreign_characters(text: str) -> bool:
    """Whether ``text`` has a character outside ASCII and the whitelist."""
    return not all(_char_allowed(c) for c in text)


def repeats(items: Iterable[Any], memory: int, patience: int) -> bool:
    """Whether ``patience`` items in a row were all among the last ``memory`` distinct new items."""
    recent: list[Any] = []
    left = patience
    for item in items:
        if item in recent:
            left -= 1
            if left <= 0:
                return True
        else:
            recent.append(item)
            if len(recent) > memory:
                recent.pop(0)
            left = patience
    return False


def is_nonsense(text: str, allow_non_ascii: bool = False) -> bool:
    """The ``nonsense`` check of the module docstring."""
    if "<|im_start|>" in text:
        return True
    if not allow_non_ascii and has_foreign_characters(text):
        return True
    return repeats(text.split(), _WORD_MEMORY, _WORD_PATIENCE) or repeats(text, _CHAR_MEMORY, _CHAR_PATIENCE)


_FORMAT_TYPE_1 = re.compile(r"\s*<think>.*?</think>\s*```python\n.*?```\s*", re.S)


def is_format_type_1(text: str) -> bool:
    """Exactly one ``<think>...</think>`` then exactly one fenced python block, nothing else."""
    counts_ok = (
        text.count("<think>") == 1
        and text.count("</think>") == 1
        and text.count("```python") == 1
        and text.count("```") == 2
    )
    return counts_ok and _FORMAT_TYPE_1.fullmatch(text) is not None


def _check_checklist(checklist: Iterable[str]) -> list[str]:
    items = list(checklist)
    unknown = [c for c in items if c not in MADNESS_CHECKS + MODIFIERS]
    if unknown:
        raise ValueError(
            f"unknown madness check(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(MADNESS_CHECKS + MODIFIERS)}"
        )
    return items


def compute_string_madness(text: str, checklist: Iterable[str]) -> int:
    """0 for a sane text, else minus the number of listed checks it fails (``nonsense``,
    ``format_type_1``; ``wrong_toolcall`` needs a parsed call, see ``detect_madness``)."""
    items = _check_checklist(checklist)
    allow = any(m in items for m in MODIFIERS)
    score = 0
    if "nonsense" in items and is_nonsense(text or "", allow_non_ascii=allow):
        score -= 1
    if "format_type_1" in items and not is_format_type_1(text or ""):
        score -= 1
    return score


def is_wrong_toolcall(call: CallRecord) -> bool:
    """The ``wrong_toolcall`` check of the module docstring for one call."""
    if call.malformed_tool_call:
        return True
    if call.parsed_tool_calls:
        return any(
            not isinstance(c, Mapping) or not c.get("name") or not isinstance(c.get("arguments"), Mapping)
            for c in call.parsed_tool_calls
        )
    return "<tool_call>" in (call.response_text or "")


def detect_madness(calls: list[CallRecord], checklist: Iterable[str]) -> dict[str, bool]:
    """One flag per listed check (modifiers excluded): True when any call's output fails it."""
    items = _check_checklist(checklist)
    allow = any(m in items for m in MODIFIERS)
    flags: dict[str, bool] = {}
    for check in (c for c in MADNESS_CHECKS if c in items):
        if check == "nonsense":
            flags[check] = any(is_nonsense(c.response_text or "", allow_non_ascii=allow) for c in calls)
        elif check == "format_type_1":
            flags[check] = any(not is_format_type_1(c.response_text or "") for c in calls)
        else:
            flags[check] = any(is_wrong_toolcall(c) for c in calls)
    return flags
