"""The tool-discipline experiment (issue 5): the seed's section-4 result, reproduced and measured.

A small Qwen2-architecture policy is supervised on a scripted teacher's traces of the unchanged
Math Agent workflow (so it starts as a competent but undisciplined tool user), then trained with
GRPO on the ``local`` backbone; validation before and after shows success rising and the seed's
three bad cases falling. ``python -m experiments.tool_discipline --help`` from the repository root
(``experiments`` is not part of the installed package); the write-up is ``docs/tool_discipline.md``.
"""
