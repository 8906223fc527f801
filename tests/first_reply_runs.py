"""One debug run of the tutorial's Math Agent where each task scripts its first reply, then a finish.

Shared by the tests of malformed turns (``tests/task_judge/test_turn_problems.py``) and of
unparsable tool calls (``tests/test_unparsed_calls_e2e.py``): one task per family, all asking
"What is 2 + 2?", through the scripted engine, the real workflow, tool and judge.
"""

from __future__ import annotations

import json
from pathlib import Path

from astuner.cli import main


def run_first_replies(tmp_path: Path, name: str, first_replies: dict[str, str], finish: str,
                      extra_args: tuple[str, ...] = ()) -> tuple[int, Path]:
    """(the CLI's exit code, the run's ``rollouts/debug.jsonl``) for tasks named by ``first_replies``'s keys."""
    tasks, replies = tmp_path / "tasks.jsonl", tmp_path / "replies.jsonl"
    with tasks.open("w") as t, replies.open("w") as r:
        for task_id, first in first_replies.items():
            t.write(json.dumps({"task_id": task_id, "question": "What is 2 + 2?", "answer": "#### 4"}) + "\n")
            r.write(json.dumps({"task_id": task_id, "replies": [first, finish]}) + "\n")
    conf = tmp_path / f"{name}.yaml"
    conf.write_text(f"""\
astuner:
  experiment_name: {name}
  task_reader:
    type: dataset_file
    dataset_file: {{training: {{file_path: {tasks}}}, validation: {{file_path: {tasks}}}}}
  rollout:
    agentscope_workflow: tutorial.example_math_agent.math_agent->ExampleMathLearn
    num_repeat: 1
    engine: {{type: scripted, scripted: {{path: {replies}}}}}
  task_judge: {{judge_protocol: astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge}}
  model: {{path: "astuner://tiny"}}
  debug: {{debug_first_n_tasks: {len(first_replies)}, debug_max_parallel: 4}}
""")
    code = main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path / "exp"), *extra_args])
    return code, tmp_path / "exp" / name / "rollouts" / "debug.jsonl"
