"""A rollout's final reward as the judge's reward plus named shaping terms (a rubric).

Why: the reward a rollout trains on is the judge's ``raw_reward`` shaped by the run's bad-case
penalties and the madness override. Writing that shaping as a list of small named terms, each with
its weight, lets every term's effect on the reward be logged (``reward_term/<name>``,
docs/metrics.md) instead of only the final number.

The rubric ``shaping_rubric`` builds from the config keys that already exist:

* one additive term per key of ``task_judge.bad_case_penalties`` (the seed's three bad cases and
  the turn problems), named after its flag, weight ``-penalty``: it applies when the rollout's flag
  of that name is set. Terms are added to the judge's reward in the config's key order, which is
  the order the flags are detected in, so the sum is the same floating-point number as
  subtracting the penalties one by one.
* one override term, ``madness``: when any check of ``rollout.compute_madness_checklist`` flagged
  the rollout, the reward is ``rollout.agent_madness_reward`` whatever the judge and the penalties
  said.

Contributions (``Score.terms``): an additive term gives its weight when it applies, else 0.0. When
the override applies it is given the whole change, ``agent_madness_reward - raw_reward``, and every
additive term 0.0, since none of them reached the final reward. So the contributions always sum to
``reward - raw_reward`` (exactly without the override; up to float rounding with it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MADNESS_TERM = "madness"


@dataclass(frozen=True)
class Flags:
    """What a term may look at: a rollout's bad-case flags and madness flags, by name."""

    bad_cases: Mapping[str, bool] = field(default_factory=dict)
    madness: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Term:
    """An additive term: ``weight`` is added to the reward when ``applies(flags)``."""

    name: str
    weight: float
    applies: Callable[[Flags], bool]


@dataclass(frozen=True)
class Override:
    """A term that, when ``applies(flags)``, makes the reward ``value`` whatever the rest gave."""

    name: str
    value: float
    applies: Callable[[Flags], bool]


@dataclass(frozen=True)
class Score:
    """A scored rollout: the final ``reward`` and each term's contribution to it, by term name."""

    reward: float
    terms: dict[str, float]


@dataclass(frozen=True)
class Rubric:
    """The judge's reward plus ``terms`` in order, then ``override`` (if any) over the result."""

    terms: tuple[Term, ...] = ()
    override: Override | None = None

    def score(self, raw_reward: float, bad_cases: Mapping[str, bool], madness: Mapping[str, bool]) -> Score:
        """The final reward of a rollout the judge gave ``raw_reward``, and each term's contribution."""
        flags = Flags(bad_cases=bad_cases, madness=madness)
        reward = float(raw_reward)
        contributions: dict[str, float] = {}
        for term in self.terms:
            applied = term.applies(flags)
            if applied:
                reward += term.weight
            contributions[term.name] = term.weight if applied else 0.0
        if self.override is not None:
            if self.override.applies(flags):
                contributions = dict.fromkeys(contributions, 0.0)
                contributions[self.override.name] = self.override.value - float(raw_reward)
                reward = self.override.value
            else:
                contributions[self.override.name] = 0.0
        return Score(reward=float(reward), terms=contributions)


def flag_set(name: str) -> Callable[[Flags], bool]:
    """Applies when the rollout's bad-case flag ``name`` is set (a flag not reported is not set)."""

    def applies(flags: Flags) -> bool:
        return bool(flags.bad_cases.get(name))

    return applies


def any_madness(flags: Flags) -> bool:
    """Applies when any madness check flagged the rollout."""
    return any(flags.madness.values())


def shaping_rubric(penalties: Mapping[str, float], madness_reward: float) -> Rubric:
    """The rubric of ``task_judge.bad_case_penalties`` (name -> penalty, in config order) and
    ``rollout.agent_madness_reward``."""
    terms = tuple(Term(name, -float(p) if p else 0.0, flag_set(name)) for name, p in penalties.items())
    return Rubric(terms=terms, override=Override(MADNESS_TERM, float(madness_reward), any_madness))
