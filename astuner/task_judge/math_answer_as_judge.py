"""Math judges for GSM8K-style tasks: a rule judge with a math-verify second opinion, and the same
followed by an LLM judge (the seed's).

Why normalise: upstream compared the first ``\\boxed{...}`` with the reference as exact strings,
so ``18.0``, ``$18``, ``1,600`` and ``\\boxed{\\frac{1}{2}}`` all scored 0 against correct
references, a reward signal that punishes formatting instead of mathematics. Here both sides are
parsed as numbers when they can be and compared within a relative 1e-6; otherwise they are compared
as normalised strings (``answers_match``, "the rule").

Which box counts: the LAST complete ``\\boxed{...}`` (or ``\\fbox{...}``) in the answer, because a
model that restates or corrects itself ends with the answer it means. Without any box the whole
final answer is compared (so a workflow that already extracted the value works).

The order of checkers (``check_answer``; a match from any of them counts):

1. **the rule** (``answers_match``): numbers with units, percent signs, thousands commas,
   scientific notation, ``\\frac``, ``\\text{}``, ``$``; a match ends the check, so every answer
   the rule accepts scores the same whether or not math-verify is used;
2. **math-verify** (``math_verify_guard.MathVerifier``), only when the rule found no match: of
   answer and reference, the same text the rule compared (the last box, else the whole text),
   each read as one LaTeX expression. It adds symbolic equality (``\\frac{\\sqrt2}{2}`` =
   ``\\frac{1}{\\sqrt2}``, ``x^2+2x+1`` = ``(x+1)^2``), sets and intervals, mixed numbers
   (``2\\frac12``), ``1.6\\times10^3`` and ``1{,}600``. It runs in a child process with a deadline
   and is screened for size and nesting, so it can neither crash nor hang a rollout; a timeout,
   error or skip counts as "no match";
3. (``MathAnswerAndLlmAsJudge`` only) **the LLM**, when neither matched.

Why both: on 18 mixed answers (issue 19) the rule alone was right on 6 where math-verify was not,
and math-verify on 3 where the rule was not. ``tests/task_judge/test_math_judge_corpus.py`` keeps a corpus of
59 cases: the rule alone is right on 50, math-verify alone on 54, the combination on all 59, and
neither ever calls a wrong answer equal.

Which checker decided is returned by ``check_answer`` / ``MathAnswerAsJudge.check`` (an
``AnswerCheck``), counted per judge in ``MathAnswerAsJudge.stats()`` and logged at DEBUG level by
``astuner.task_judge.math_answer_as_judge``.

Not guaranteed: math-verify reads the compared text as one expression and does not search prose
for a number (an unboxed "The answer is 18." matches neither checker); an answer that
math-verify would accept but that is screened out (longer than 1000 characters, nested deeper
than 20) or takes longer than the deadline scores 0; mixed numbers written with a space are
understood by neither checker (math-verify even reads ``2 1/2`` as 3/2); percentages are not
read consistently (the rule takes ``50%`` as 50; math-verify also accepts 0.5 for ``50%`` but not
for ``50\\%``). The LLM judge is synchronous and blocks its thread while it waits for the endpoint.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astuner.task_judge.base_judge import (
    BaseJudge,
    JudgeInput,
    JudgeInputError,
    JudgeUnavailableError,
    task_judge_settings,
)
from astuner.task_judge.math_verify_guard import MathVerifier

if TYPE_CHECKING:
    from astuner.config.schema import Config

logger = logging.getLogger(__name__)

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
    with nested and escaped braces handled; None when there is none.

    One pass over the text with a stack of open braces, so hostile input (``\\boxed{`` repeated
    100,000 times) costs linear time."""
    if not text:
        return None
    box_braces = {match.end() - 1 for match in _BOX_START.finditer(text)}
    if not box_braces:
        return None
    open_braces: list[int] = []
    found: tuple[int, int] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            open_braces.append(i)
        elif char == "}" and open_braces:
            opened = open_braces.pop()
            if opened in box_braces and (found is None or opened > found[0]):
                found = (opened, i)
        i += 1
    return text[found[0] + 1 : found[1]].strip() if found else None


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


def compared_text(answer: Any) -> str:
    """What the checkers compare of an answer: the last complete box's content, else the whole
    answer (stripped); ``""`` for None."""
    text = "" if answer is None else str(answer)
    boxed = extract_boxed(text)
    return (boxed if boxed is not None else text).strip()


@dataclass(frozen=True)
class AnswerCheck:
    """One comparison of an answer with its reference, and which checker decided it.

    ``decided_by``: ``"rule"`` or ``"math_verify"`` (the checker that found the match), or
    ``"none"`` (no match). ``math_verify``: ``"not_asked"`` (the rule matched), ``"off"`` (no
    verifier), or a ``SecondOpinion`` outcome (``match``, ``no_match``, ``skipped``, ``timeout``,
    ``error``, ``unavailable``) with its ``detail``.
    """

    matched: bool
    decided_by: str
    math_verify: str
    detail: str = ""


def check_answer(pred: Any, ref: Any, verifier: MathVerifier | None = None) -> AnswerCheck:
    """The rule, then (when it finds no match and ``verifier`` is given) math-verify; see the module
    docstring for the order and why."""
    if answers_match(pred, ref):
        return AnswerCheck(True, "rule", "not_asked")
    if verifier is None:
        return AnswerCheck(False, "none", "off")
    opinion = verifier.check(compared_text(pred), compared_text(ref))
    return AnswerCheck(opinion.matched, "math_verify" if opinion.matched else "none", opinion.outcome, opinion.detail)


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
    """1.0 and success when the final answer states the reference answer (the rule, then
    math-verify), else 0.0.

    Class attributes (set them in a subclass): ``use_math_verify`` (False: the rule alone) and
    ``math_verify_timeout_s`` (deadline of one math-verify comparison). ``stats()`` counts which
    checker decided, and math-verify's outcomes.
    """

    use_math_verify: bool = True
    math_verify_timeout_s: float = 5.0

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._verifier: MathVerifier | None = None
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def verifier(self) -> MathVerifier | None:
        """The judge's math-verify (its worker process starts on first use); None when turned off."""
        if not self.use_math_verify:
            return None
        with self._lock:
            if self._verifier is None:
                self._verifier = MathVerifier(self.math_verify_timeout_s)
            return self._verifier

    def check(self, judge_input: JudgeInput) -> AnswerCheck:
        """The rule, then math-verify, on this rollout's final answer (not counted in ``stats``)."""
        return check_answer(judge_input["final_answer"], _reference_answer(judge_input["workflow_task"]), self.verifier)

    def judge(self, judge_input: JudgeInput) -> tuple[float, bool]:
        result = self.check(judge_input)
        self._record(result.decided_by, result)
        return (1.0 if result.matched else 0.0), result.matched

    def stats(self) -> dict[str, int]:
        """Counts over the rollouts this judge scored: ``decided_by/<rule|math_verify|llm|none>``
        and ``math_verify/<outcome>`` (``not_asked`` when the rule matched)."""
        with self._lock:
            return dict(self._counts)

    def _record(self, decided_by: str, result: AnswerCheck) -> None:
        """Count and log (DEBUG) one scored rollout."""
        with self._lock:
            self._counts.update((f"decided_by/{decided_by}", f"math_verify/{result.math_verify}"))
        logger.debug("math judge: decided_by=%s math_verify=%s %s", decided_by, result.math_verify, result.detail)


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
    """The rule, then math-verify; when neither matches, an OpenAI-compatible LLM decides.

    Config (``astuner.task_judge.*``): ``alien_llm_model``, ``alien_llm_base_url``,
    ``alien_llm_api_key_env`` (the NAME of the variable holding the key), ``alien_llm_max_retries``
    (attempts in all), ``alien_llm_timeout_s`` (per attempt), ``alien_llm_response_length``
    (max tokens). Raises ``JudgeUnavailableError`` when the key is missing or the endpoint cannot
    be used; the rollout then fails visibly instead of scoring 0.
    """

    retry_backoff_s: float = 1.0
    """First pause between attempts; doubles after each failure."""

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        settings = task_judge_settings(config)
        self.model = settings.alien_llm_model
        self.base_url = settings.alien_llm_base_url
        self.api_key_env = settings.alien_llm_api_key_env
        self.max_attempts = max(1, settings.alien_llm_max_retries)
        self.timeout_s = settings.alien_llm_timeout_s
        self.response_length = settings.alien_llm_response_length
        self._client = None

    def judge(self, judge_input: JudgeInput) -> tuple[float, bool]:
        result = self.check(judge_input)
        if result.matched:
            self._record(result.decided_by, result)
            return 1.0, True
        final_answer = judge_input["final_answer"]
        reference = _reference_answer(judge_input["workflow_task"])
        correct = verdict_is_correct(self.ask_llm(str(final_answer), reference))
        self._record("llm" if correct else "none", result)
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
