"""Math judges for GSM8K-style tasks: a rule judge and a rule-then-LLM judge (the seed's).

Why normalise: upstream compared the first ``\\boxed{...}`` with the reference as exact strings,
so ``18.0``, ``$18``, ``1,600`` and ``\\boxed{\\frac{1}{2}}`` all scored 0 against correct
references, a reward signal that punishes formatting instead of mathematics. Here both sides are
parsed as numbers when they can be and compared within a relative 1e-6; otherwise they are compared
as normalised strings.

Which box counts: the LAST complete ``\\boxed{...}`` (or ``\\fbox{...}``) in the answer, because a
model that restates or corrects itself ends with the answer it means. Without any box the whole
final answer is compared (so a workflow that already extracted the value works).

Not guaranteed: symbolic equivalence (``\\sqrt{2}/2`` vs ``1/\\sqrt{2}``), mixed numbers,
intervals and multi-part answers are not understood by the rule; the LLM judge may cover them.
The LLM judge is synchronous and blocks its thread while it waits for the endpoint.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any

from astuner.task_judge.base_judge import BaseJudge, JudgeInput, JudgeInputError, JudgeUnavailableError

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
_VALUE = re.compile(
    rf"(?P<sign>[-+]?)\s*(?:"
    rf"\\[dt]?frac\s*\{{\s*(?P<tex_num>{_NUM})\s*\}}\s*\{{\s*(?P<tex_den>{_NUM})\s*\}}"
    rf"|\\[dt]?frac(?P<short_num>\d)(?P<short_den>\d)"
    rf"|(?P<num>{_NUM})\s*/\s*(?P<den>{_NUM})"
    rf"|(?P<plain>{_NUM}))"
    rf"\s*(?:[A-Za-z][A-Za-z/\s.]*)?"
)
_LABEL_PREFIX = re.compile(r"^[A-Za-z]\w*\s*=\s*")


def extract_boxed(text: str | None) -> str | None:
    """The content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (by start position),
    with nested and escaped braces handled; None when there is none."""
    if not text:
        return None
    found = None
    for match in _BOX_START.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            char = text[i]
            if char == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(char, 0)
            i += 1
        if depth == 0:
            found = text[match.end() : i - 1].strip()
    return found


def _clean(text: str) -> str:
    """Strip LaTeX decoration that does not change the value: text wrappers, dollar and percent
    signs, spacing commands, degree marks, a leading ``x =`` and a trailing period."""
    inner = extract_boxed(text)
    t = inner if inner is not None else text
    for _ in range(3):
        t = _TEXT_WRAPPERS.sub(r" \1 ", t)
    for old, new in (
        ("\\$", ""), ("$", ""), ("\\%", ""), ("%", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""),
        ("\\ ", " "), ("~", " "), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""),
        ("°", ""), ("\u2212", "-"), ("\u00a0", " "),
    ):
        t = t.replace(old, new)
    t = _LABEL_PREFIX.sub("", t.strip())
    return t.strip().rstrip(".").strip()


def _to_float(number: str) -> float:
    return float(number.replace(",", ""))


def normalize_number(text: str | None) -> float | None:
    """The number ``text`` states, or None. Understands ``1,600``, ``18.0``, ``$18``, ``\\$18``,
    ``18 dollars``, ``50%`` (as 50), ``\\frac{1}{2}``, ``1/2``, ``-3`` and ``\\text{...}``
    wrappers; trailing unit words are ignored, anything else makes it not a number."""
    if text is None:
        return None
    match = _VALUE.fullmatch(_clean(str(text)))
    if not match:
        return None
    groups = match.groupdict()
    try:
        if groups["plain"] is not None:
            value = _to_float(groups["plain"])
        else:
            num = groups["tex_num"] or groups["short_num"] or groups["num"]
            den = groups["tex_den"] or groups["short_den"] or groups["den"]
            value = _to_float(num) / _to_float(den)
    except (ValueError, ZeroDivisionError):
        return None
    if groups["sign"] == "-":
        value = -value
    return value if math.isfinite(value) else None


def _normalize_text(text: str) -> str:
    return re.sub(r"\s+", "", _clean(text)).lower()


def answers_match(pred: Any, ref: Any) -> bool:
    """Whether a predicted answer (boxed or bare) states the reference answer."""
    pred_s = "" if pred is None else str(pred)
    ref_s = "" if ref is None else str(ref)
    a, b = normalize_number(pred_s), normalize_number(ref_s)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    pred_n, ref_n = _normalize_text(pred_s), _normalize_text(ref_s)
    return bool(ref_n) and pred_n == ref_n


def gsm8k_reference(answer: str) -> str:
    """GSM8K's final answer: the stripped text after the last ``####`` (the whole text if none)."""
    return str(answer).split("####")[-1].strip()


def _task_metadata(workflow_task: Any) -> dict:
    """``metadata`` of a WorkflowTask (via ``.task``), a Task, or their dict forms."""
    node = workflow_task
    for _ in range(2):
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict):
                return node["metadata"]
            node = node.get("task")
        else:
            metadata = getattr(node, "metadata", None)
            if isinstance(metadata, dict):
                return metadata
            node = getattr(node, "task", None)
        if node is None:
            break
    return {}


def _reference_answer(workflow_task: Any) -> str:
    """The task's reference: ``metadata["reference_answer"]``, ``["ground_truth"]``, or the GSM8K
    ``["answer"]`` after ``####``."""
    metadata = _task_metadata(workflow_task)
    for key in ("reference_answer", "ground_truth"):
        if metadata.get(key) is not None:
            return str(metadata[key]).strip()
    if metadata.get("answer") is not None:
        return gsm8k_reference(metadata["answer"])
    raise JudgeInputError(
        "reference_answer",
        "the task has no reference answer: expected metadata['answer'] (GSM8K '... #### N'), "
        "metadata['reference_answer'] or metadata['ground_truth']",
    )


class MathAnswerAsJudge(BaseJudge):
    """1.0 and success when the final answer states the reference answer, else 0.0."""

    def judge(self, judge_input: JudgeInput) -> tuple[float, bool]:
        matched = answers_match(judge_input["final_answer"], _reference_answer(judge_input["workflow_task"]))
        return (1.0 if matched else 0.0), matched


DEFAULT_LLM_MODEL = "qwen3-235b-a22b-instruct-2507"
DEFAULT_LLM_BASE_URL = "https://dashscope.aliyuncs.com/compatible-mode/v1"
DEFAULT_LLM_API_KEY_ENV = "DASHSCOPE_API_KEY"

_SYSTEM_PROMPT = (
    "You check answers to math problems. Compare the result I give with the reference result. "
    "If they state the same final value (formatting, units and trailing zeros do not matter), "
    "reply <Correct>. Otherwise reply <NotCorrect>. Reply with the tag only."
)
_VERDICT = re.compile(r"<(Correct|NotCorrect)>")
_THINK = re.compile(r"<think>.*?</think>", re.S)
_FATAL_STATUS = (400, 401, 403, 404, 422)


def verdict_is_correct(reply: str | None) -> bool:
    """Whether the judge LLM's reply says ``<Correct>`` (its last verdict tag outside any
    ``<think>`` block)."""
    tags = _VERDICT.findall(_THINK.sub("", reply or ""))
    return bool(tags) and tags[-1] == "Correct"


class MathAnswerAndLlmAsJudge(MathAnswerAsJudge):
    """The rule first; when it does not match, an OpenAI-compatible LLM decides.

    Config (``astuner.task_judge.*``): ``alien_llm_model``, ``alien_llm_base_url``,
    ``alien_llm_api_key_env`` (the NAME of the variable holding the key), ``alien_llm_max_retries``
    (attempts in all), ``alien_llm_timeout_s`` (per attempt), ``alien_llm_response_length``
    (max tokens). Raises ``JudgeUnavailableError`` when the key is missing or the endpoint cannot
    be used; the rollout then fails visibly instead of scoring 0.
    """

    retry_backoff_s: float = 1.0
    """First pause between attempts; doubles after each failure."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.model = self.config_value("task_judge.alien_llm_model", DEFAULT_LLM_MODEL)
        self.base_url = self.config_value("task_judge.alien_llm_base_url", DEFAULT_LLM_BASE_URL)
        self.api_key_env = self.config_value("task_judge.alien_llm_api_key_env", DEFAULT_LLM_API_KEY_ENV)
        self.max_attempts = max(1, int(self.config_value("task_judge.alien_llm_max_retries", 4)))
        self.timeout_s = float(self.config_value("task_judge.alien_llm_timeout_s", 60))
        self.response_length = int(self.config_value("task_judge.alien_llm_response_length", 512))
        self._client = None

    def judge(self, judge_input: JudgeInput) -> tuple[float, bool]:
        final_answer = judge_input["final_answer"]
        reference = _reference_answer(judge_input["workflow_task"])
        if answers_match(final_answer, reference):
            return 1.0, True
        correct = verdict_is_correct(self.ask_llm(str(final_answer), reference))
        return (1.0 if correct else 0.0), correct

    def messages(self, final_answer: str, reference: str) -> list[dict]:
        user = f"Is my result correct?\n\n----\nMy result: {final_answer}\n----\nReal result: {reference}\n----"
        return [{"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _get_client(self):
        if self._client is None:
            api_key = os.environ.get(self.api_key_env, "").strip()
            if not api_key:
                raise JudgeUnavailableError(
                    f"LLM judge: environment variable {self.api_key_env} is not set (it must hold the API key "
                    f"for {self.base_url}; config astuner.task_judge.alien_llm_api_key_env names the variable)"
                )
            from openai import OpenAI

            self._client = OpenAI(api_key=api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s)
        return self._client

    def ask_llm(self, final_answer: str, reference: str) -> str:
        """The judge LLM's reply text, after up to ``max_attempts`` attempts with backoff."""
        import openai

        client = self._get_client()
        last_error: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                response = client.chat.completions.create(
                    model=self.model,
                    messages=self.messages(final_answer, reference),
                    temperature=0,
                    max_tokens=self.response_length,
                    n=1,
                )
                return response.choices[0].message.content or ""
            except openai.APIStatusError as exc:
                if exc.status_code in _FATAL_STATUS:
                    raise JudgeUnavailableError(
                        f"LLM judge: {self.base_url} rejected the request for model {self.model} "
                        f"(HTTP {exc.status_code}): {str(exc)[:200]}"
                    ) from exc
                last_error = exc
            except (openai.APIConnectionError, openai.APITimeoutError, IndexError, AttributeError, TypeError) as exc:
                last_error = exc
            if attempt + 1 < self.max_attempts:
                time.sleep(self.retry_backoff_s * 2**attempt)
        raise JudgeUnavailableError(
            f"LLM judge unavailable: {self.max_attempts} attempt(s) to {self.base_url} (model {self.model}) "
            f"failed; last error: {type(last_error).__name__}: {str(last_error)[:200]}"
        )
