"""GSM8K-format word problems from templates, in pairwise-disjoint sets (SFT, GRPO, validation).

Why generated problems: the experiment must show that training fixes tool *discipline*, so the
tasks must be ones a small model can solve once it uses the tool properly. Each template is a
question with numbered slots and one to three arithmetic steps; a problem is a template with
numbers, a name and an object drawn from a seeded RNG. Every problem carries

- ``question`` and ``answer`` exactly as GSM8K writes them (steps with ``<<expr=value>>``
  calculator marks, then ``#### N``), so the normal ``dataset_file`` reader reads the files;
- ``template``, the template's name (the reader keeps it in ``metadata``, handy for analysis);
- ``code`` and ``value`` in memory only: one ``print(...)`` of the whole computation and its
  result, which the scripted teacher uses to solve the problem with the tool.

Numbers are redrawn until every step is a positive integer (divisions exact) and the answer is not
a number written in the question, so a guess that copies a number from the question is wrong.
The computation uses the numbers in the order the question states them, so solving is copying
them in order with the right operators. Sets are disjoint by *computation* (template and
numbers), not only by text: a problem that differs from another only in its name or object is the
same problem to a model that copies numbers, so it never appears in two sets. Every template's
ranges allow over a thousand distinct computations, so hundreds per template can be drawn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NAMES = (
    "Ava", "Ben", "Carla", "Deng", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira", "Liam",
    "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara",
)
ITEMS = (
    "apples", "pencils", "marbles", "books", "cookies", "stickers", "eggs", "cards", "shells", "candies",
    "stamps", "buttons", "beads", "coins", "toys",
)

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "//": 2}


@dataclass(frozen=True)
class Template:
    """A question with slots ``{a}``.. (numbers), ``{name}``, ``{other}``, ``{item}``.

    ``steps`` are ``(left, op, right)`` with operands that are slot letters, integer literals or
    ``s1``, ``s2`` (earlier steps); the last step is the answer. ``ranges`` give each number
    slot's inclusive range.
    """

    name: str
    question: str
    steps: tuple[tuple[str, str, str], ...]
    ranges: dict[str, tuple[int, int]]


def _t(name: str, question: str, steps: str, **ranges: tuple[int, int]) -> Template:
    """Compact form: ``steps`` like ``"a * b; s1 - c"``."""
    parsed = tuple(tuple(part.split()) for part in steps.split(";"))
    if any(len(step) != 3 or step[1] not in _PRECEDENCE for step in parsed):
        raise ValueError(f"template {name}: bad steps {steps!r}")
    return Template(name, question, parsed, dict(ranges))  # type: ignore[arg-type]


TEMPLATES: tuple[Template, ...] = (
    _t("buy_each", "{name} buys {a} {item} for ${b} each. How many dollars does {name} spend?",
       "a * b", a=(2, 30), b=(2, 60)),
    _t("get_more", "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
       "a + b", a=(5, 90), b=(5, 90)),
    _t("give_away", "{name} has {a} {item} and gives {b} of them to {other}. How many {item} does {name} have left?",
       "a - b", a=(30, 99), b=(5, 29)),
    _t("share", "{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?",
       "a // b", a=(12, 500), b=(2, 12)),
    _t("boxes_left", "There are {a} boxes with {b} {item} in each box. {name} takes out {c} {item}. "
       "How many {item} are left?", "a * b; s1 - c", a=(2, 9), b=(6, 40), c=(2, 11)),
    _t("combine_share", "{name} has {a} {item} and {other} has {b}. They put them together and split them "
       "equally into {c} bags. How many {item} are in each bag?", "a + b; s1 // c", a=(10, 60), b=(10, 60), c=(2, 9)),
    _t("reading", "{name} reads {a} pages every day. How many pages does {name} read in {b} days?",
       "a * b", a=(5, 80), b=(3, 30)),
    _t("change", "{name} pays with a ${a} bill for {b} {item} that cost ${c} each. How many dollars of change "
       "does {name} get?", "b * c; a - s1", a=(50, 100), b=(2, 6), c=(2, 9)),
    _t("twice_plus", "{name} has {a} {item}. {other} has twice as many as {name}, plus {b} more. How many {item} "
       "does {other} have?", "a * 2; s1 + b", a=(5, 60), b=(2, 20)),
    _t("savings", "{name} saves ${a} each week for {b} weeks and then spends ${c} on a gift. How many dollars "
       "does {name} have left?", "a * b; s1 - c", a=(5, 30), b=(3, 10), c=(5, 20)),
    _t("hall", "A hall has {a} rows of chairs with {b} chairs in each row. How many chairs are in the hall?",
       "a * b", a=(4, 40), b=(5, 50)),
    _t("trip", "A car drives at {a} kilometers per hour for {b} hours. How many kilometers does it drive?",
       "a * b", a=(30, 120), b=(2, 12)),
    _t("three_days", "{name} walks {a} kilometers on Monday, {b} on Tuesday and {c} on Wednesday. "
       "How many kilometers does {name} walk in total?", "a + b; s1 + c", a=(2, 30), b=(2, 30), c=(2, 30)),
    _t("perimeter", "A rectangle is {a} meters long and {b} meters wide. What is its perimeter in meters?",
       "a + b; s1 * 2", a=(5, 60), b=(3, 40)),
    _t("packs", "A school orders {a} packs of {item} with {b} in each pack and {c} loose {item}. How many {item} "
       "does it order?", "a * b; s1 + c", a=(3, 20), b=(4, 24), c=(2, 15)),
    _t("half_then_buy", "{name} has {a} {item} and gives half of them to {other}. Then {name} buys {b} more. "
       "How many {item} does {name} have now?", "a // 2; s1 + b", a=(10, 98), b=(3, 40)),
    _t("dinner", "A ${a} dinner and a ${b} cake are paid equally by {c} friends. How many dollars does "
       "each friend pay?", "a + b; s1 // c", a=(20, 90), b=(6, 30), c=(2, 6)),
    _t("wages", "{name} earns ${a} per hour, works {b} hours a day for {c} days and then spends ${d}. "
       "How many dollars does {name} have left?", "a * b; s1 * c; s2 - d", a=(8, 25), b=(3, 8), c=(2, 6), d=(10, 90)),
    _t("teams", "A school has {a} classes with {b} students each. {c} students are absent and the rest form "
       "teams of {d}. How many teams are there?", "a * b; s1 - c; s2 // d", a=(3, 9), b=(15, 30), c=(1, 12), d=(3, 6)),
    _t("water", "{name} drinks {a} glasses of water every day. How many glasses does {name} drink in {b} weeks?",
       "a * 7; s1 * b", a=(3, 40), b=(2, 30)),
    _t("picks", "{name} picks {a} apples and {b} pears. {other} picks {c} fruits. How many more fruits does "
       "{name} pick than {other}?", "a + b; s1 - c", a=(20, 60), b=(20, 60), c=(5, 39)),
    _t("book_left", "A book has {a} pages. {name} reads {b} pages a day for {c} days. How many pages are left "
       "to read?", "b * c; a - s1", a=(200, 400), b=(10, 30), c=(2, 6)),
    _t("two_kinds", "{name} buys {a} pens for ${b} each and {c} notebooks for ${d} each. How many dollars does "
       "{name} spend in total?", "a * b; c * d; s1 + s2", a=(2, 9), b=(2, 6), c=(2, 9), d=(3, 12)),
    _t("garden", "{name} plants {a} rows of {b} tulips and {c} more tulips. Then {d} tulips are eaten by "
       "rabbits. How many tulips are left?", "a * b; s1 + c; s2 - d", a=(3, 12), b=(4, 15), c=(3, 20), d=(2, 15)),
)


@dataclass(frozen=True)
class Problem:
    """One generated task; ``record()`` is its JSONL line."""

    question: str
    answer: str
    template: str
    code: str
    value: int

    def record(self) -> dict:
        return {"question": self.question, "answer": self.answer, "template": self.template}


def _apply(op: str, x: int, y: int) -> int | None:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    return x // y if y and x % y == 0 else None


def _operand_text(expr: tuple[str, int], op: str, right: bool) -> str:
    """An operand inside ``op``, parenthesised only where precedence needs it."""
    text, prec = expr
    if prec < _PRECEDENCE[op] or (right and prec == _PRECEDENCE[op] and op in ("-", "//")):
        return f"({text})"
    return text


def solve(template: Template, numbers: dict[str, int]) -> tuple[list[tuple[str, int]], str] | None:
    """The template's steps as ``(expression with numbers, value)`` and the whole computation as one
    expression; None when a step is not a positive integer."""
    values: dict[str, int] = dict(numbers)
    exprs: dict[str, tuple[str, int]] = {k: (str(v), 3) for k, v in numbers.items()}
    steps: list[tuple[str, int]] = []
    for index, (left, op, right) in enumerate(template.steps, start=1):
        operands = []
        for token in (left, right):
            if token.isdigit():
                values[token], exprs[token] = int(token), (token, 3)
            operands.append(token)
        value = _apply(op, values[operands[0]], values[operands[1]])
        if value is None or value <= 0:
            return None
        shown = f"{values[operands[0]]} {op} {values[operands[1]]}"
        steps.append((shown, value))
        name = f"s{index}"
        values[name] = value
        exprs[name] = (
            f"{_operand_text(exprs[operands[0]], op, False)} {op} {_operand_text(exprs[operands[1]], op, True)}",
            _PRECEDENCE[op],
        )
    return steps, exprs[f"s{len(template.steps)}"][0]


def make_problem(template: Template, rng: random.Random, max_tries: int = 2000) -> Problem:
    """A problem of ``template`` whose answer is a positive integer not written in the question."""
    for _ in range(max_tries):
        numbers = {slot: rng.randint(lo, hi) for slot, (lo, hi) in template.ranges.items()}
        solved = solve(template, numbers)
        if solved is None:
            continue
        steps, expression = solved
        value = steps[-1][1]
        if value in numbers.values() or value > 99_999:
            continue
        name, other = rng.sample(NAMES, 2)
        question = template.question.format(name=name, other=other, item=rng.choice(ITEMS), **numbers)
        lines = [f"{shown} = <<{shown.replace(' ', '')}={v}>>{v}." for shown, v in steps]
        answer = "\n".join(lines) + f"\n#### {value}"
        return Problem(question, answer, template.name, f"print({expression})", value)
    raise ValueError(f"template {template.name}: no valid numbers in {max_tries} tries")


EXHAUSTED_AFTER = 200
"""Draws in a row without a new computation after which a template counts as used up."""


def generate_sets(counts: Sequence[int], *, seed: int = 0, templates: Sequence[Template] = TEMPLATES) -> list[list[Problem]]:
    """One list of problems per count, drawn in order from one seeded RNG (so the first sets do not
    depend on later counts), templates taken round-robin, no computation (template and code) twice.

    A template that yields no new computation in ``EXHAUSTED_AFTER`` draws in a row is used up
    (the narrowest have about a thousand computations): the round-robin then goes on over the
    others, so a large last set (the SFT problems) holds fewer problems of the narrow templates.
    Until a template is used up, the draws are the same as without this rule.
    """
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    active = list(templates)
    sets: list[list[Problem]] = []
    for count in counts:
        problems: list[Problem] = []
        misses = 0
        while len(problems) < count:
            if not active:
                raise ValueError(f"cannot draw {count} distinct problems from {len(templates)} templates "
                                 f"(every template's computations are used up after {sum(map(len, sets)) + len(problems)})")
            template = active[len(problems) % len(active)]
            problem = make_problem(template, rng)
            if (problem.template, problem.code) in seen:
                misses += 1
                if misses >= EXHAUSTED_AFTER:
                    active.remove(template)
                    misses = 0
                continue
            misses = 0
            seen.add((problem.template, problem.code))
            problems.append(problem)
        sets.append(problems)
    return sets


def write_jsonl(problems: Sequence[Problem], path: str | Path) -> Path:
    """Write the problems' GSM8K-format records, one per line."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(p.record()) + "\n" for p in problems), encoding="utf-8")
    return out
