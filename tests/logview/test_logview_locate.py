"""Bad cases located at their tokens, and advantages, in rollout records (``astuner/logview/locate.py``).

The integration tests read real records: a debug run of the tutorial's ReAct Math Agent on nine
problems whose scripted replies each commit one bad case (``bad_case_run``; the browser test builds
its page from the same run). A judge that takes 0.5 off the second repeat gives every group two
different rewards; ``with_advantages`` then gives the samples the GRPO advantage the local backbone
assigns before it writes its rollouts. The unit tests use crafted records in the same format.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from astuner.algorithm import assign_advantages
from astuner.artifacts import rollout_record
from astuner.logview.locate import CONTROL_TOKEN, TOOL_RESPONSE_TAG, locate_bad_cases
from astuner.logview.store import compact_row
from astuner.rollout import RolloutResult
from astuner.schema import Sample
from astuner.task_judge import turn_problems
from tests.conftest import REPO


def tool_call(name: str, args: dict) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def answer(value: int) -> str:
    return f"So the answer is \\boxed{{{value}}}.\n" + tool_call("generate_response", {"result": f"\\boxed{{{value}}}"})


PYTHON = "execute_python_code"
BAD_CASE_TASKS = {
    # task id: (question, answer, scripted replies, flag it commits, text its location must show)
    "malformed": ("What is 2 + 3?", 5, [
        'Let me compute.\n<tool_call>\n{"name": "execute_python_code", "arguments": [[[ nope\n</tool_call>',
        tool_call(PYTHON, {"code": "print(2 + 3)"}), answer(5)], "malformed_tool_call", "[[[ nope"),
    "repaired": ("What is 4 + 4?", 8, [
        "<tool_call>\n{'name': 'execute_python_code', 'arguments': {'code': 'print(4 + 4)'},}\n</tool_call>",
        answer(8)], "repaired_tool_call", "{'name': 'execute_python_code'"),
    "empty": ("What is 7 - 2?", 5, ["", tool_call(PYTHON, {"code": "print(7 - 2)"}), answer(5)], "empty_reply", "<|im_end|>"),
    "special": ("What is 3 * 3?", 9, [
        "Computing now <|endoftext|> ok.\n" + tool_call(PYTHON, {"code": "print(3 * 3)"}), answer(9)],
        "special_token_in_reply", "<|endoftext|>"),
    "spoofed": ("What is 10 / 2?", 5, [
        tool_call(PYTHON, {"code": "print(10 / 2)"}) + "\n<tool_response>\n5.0\n</tool_response>", answer(5)],
        "spoofed_tool_response", "tool_response>"),
    "invalid": ("What is 6 + 1?", 7, [
        tool_call(PYTHON, {"source": "print(6 + 1)"}), tool_call(PYTHON, {"code": "print(6 + 1)"}), answer(7)],
        "invalid_tool_call", '"source"'),
    "nonsense": ("What is 1 + 1?", 2, [
        "two " * 16 + "\n" + tool_call(PYTHON, {"code": "print(1 + 1)"}), answer(2)], "nonsense", "two two two"),
    "quiet": ("What is 9 - 4?", 5, [
        tool_call(PYTHON, {"code": "x = 9 - 4"}),
        "The tool printed nothing; I guess \\boxed{5}.\n" + tool_call("generate_response", {"result": "\\boxed{5}"})],
        "empty_tool_stdout", "<stdout></stdout>"),
    "hasty": ("What is 2 * 8?", 16, [
        tool_call(PYTHON, {"code": "print(2 * 8)"}) + "\n" + tool_call("generate_response", {"result": "\\boxed{16}"}),
        "The answer is \\boxed{16}."], "answer_before_tool_response", '"generate_response"'),
}

JUDGE = '''
from astuner.task_judge.math_answer_as_judge import MathAnswerAsJudge


class RepeatJudge(MathAnswerAsJudge):
    """The math judge, minus 0.5 on the second repeat: two rewards per group, so advantages differ."""

    use_math_verify = False

    def judge(self, judge_input):
        reward, ok = super().judge(judge_input)
        return reward - 0.5 * judge_input.workflow_task.repeat_index, ok
'''


def write_bad_case_config(folder: Path) -> Path:
    """Tasks, scripted replies, the judge and ``bad_cases.yaml`` for a debug run, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "tasks.jsonl").open("w") as tasks, (folder / "replies.jsonl").open("w") as replies:
        for task_id, (question, value, script, _, _) in BAD_CASE_TASKS.items():
            tasks.write(json.dumps({"task_id": task_id, "question": question, "answer": f"{value}\n#### {value}"}) + "\n")
            replies.write(json.dumps({"task_id": task_id, "replies": script}) + "\n")
    (folder / "repeat_judge.py").write_text(JUDGE)
    conf = folder / "bad_cases.yaml"
    conf.write_text(f"""\
astuner:
  task_reader:
    type: dataset_file
    dataset_file:
      training: {{file_path: tasks.jsonl}}
      validation: {{file_path: tasks.jsonl}}
  rollout:
    agentscope_workflow: tutorial.example_math_agent.math_agent->ExampleMathLearn
    num_repeat: 2
    engine: {{type: scripted, scripted: {{path: replies.jsonl}}}}
  task_judge:
    judge_protocol: repeat_judge.py->RepeatJudge
  model: {{path: "astuner://tiny"}}
  debug: {{debug_first_n_tasks: {len(BAD_CASE_TASKS)}, debug_max_parallel: {len(BAD_CASE_TASKS)}}}
""")
    return conf


def run_bad_case_debug(folder: Path, exp_root: Path) -> Path:
    """The debug run of ``write_bad_case_config`` (in-process CLI); returns its experiment folder."""
    from astuner.cli import main as cli_main

    conf = write_bad_case_config(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        mp.setenv("ASTUNER_CACHE", str(folder / "cache"))
        assert cli_main(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(exp_root)]) == 0
    [run] = [p for p in exp_root.iterdir() if p.name.startswith("bad_cases") and (p / "rollouts" / "debug.jsonl").exists()]
    return run


def with_advantages(src: Path, dst: Path) -> list[dict]:
    """``src``'s records with each sample's advantage set by ``assign_advantages``, written to ``dst``."""
    records = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    samples = [(d, Sample(**{k: v for k, v in d.items() if k not in ("tokens", "advantage")}))
               for r in records for d in r["samples"]]
    assign_advantages([s for _, s in samples])
    for d, s in samples:
        d["advantage"] = s.advantage
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


@pytest.fixture(scope="module")
def bad_case_records(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("bad_case_run")
    run = run_bad_case_debug(tmp / "conf", tmp / "exps")
    return with_advantages(run / "rollouts" / "debug.jsonl", tmp / "grpo.jsonl")


@pytest.mark.integration
def test_every_bad_case_of_a_real_run_is_located_at_its_tokens(bad_case_records):
    assert len(bad_case_records) == 2 * len(BAD_CASE_TASKS)
    for record in bad_case_records:
        _, _, _, flag, shows = BAD_CASE_TASKS[record["task_id"]]
        found = locate_bad_cases(record)["bad_cases"]
        assert [b["flag"] for b in found] == [flag], (record["task_id"], found)
        [entry] = found
        assert entry["locations"] and entry["note"] is None
        for loc in entry["locations"]:
            sample = record["samples"][loc["sample"]]
            span = "".join(sample["tokens"][loc["start"]:loc["end"]])
            assert shows in span, (flag, span)
            trained = sample["loss_mask"][loc["start"]:loc["end"]]
            role = record["messages"][loc["message"]]["role"]
            if flag == "empty_tool_stdout":
                assert not any(trained) and role == "tool" and loc["call"] == 1 and loc["call_start"] is None
            else:
                assert all(trained) and role == "assistant"
                assert loc["call_start"] <= loc["start"] < loc["end"] <= loc["call_end"]
                assert record["messages"][loc["message"]] == [m for m in record["messages"] if m["role"] == "assistant"][loc["call"]]


@pytest.mark.integration
def test_a_call_after_a_timeline_break_is_located_in_its_own_sample(bad_case_records):
    record = next(r for r in bad_case_records if r["task_id"] == "empty")
    assert len(record["samples"]) == 2, "the empty turn (then the agent's structured-output hint) broke the timeline"
    [loc] = locate_bad_cases(record)["bad_cases"][0]["locations"]
    assert (loc["sample"], loc["call"], loc["message"]) == (0, 0, 2)
    later = "".join(record["samples"][1]["tokens"])
    assert "<|im_start|>assistant\n<|im_end|>" in later, "the later sample repeats the turn in its prompt, untrained"


@pytest.mark.integration
def test_an_answered_malformed_turn_keeps_one_sample(bad_case_records):
    """The unparsable call is answered with a tool message, so the rollout stays one timeline."""
    record = next(r for r in bad_case_records if r["task_id"] == "malformed")
    [sample] = record["samples"]
    [loc] = locate_bad_cases(record)["bad_cases"][0]["locations"]
    assert (loc["sample"], loc["call"], loc["message"]) == (0, 0, 2)
    text = "".join(sample["tokens"])
    broken, answered = text.index("[[[ nope"), text.index("was not run because its \"arguments\" is not a JSON object")
    assert broken < answered < text.index("print(2 + 3)")
    assert record["messages"][3]["role"] == "tool" and "Available tools: " in record["messages"][3]["content"]


@pytest.mark.integration
def test_advantages_follow_the_group_rewards(bad_case_records):
    for record in bad_case_records:
        advantage = locate_bad_cases(record)["advantage"]
        assert advantage == compact_row(record)["advantage"]
        assert {s["advantage"] for s in record["samples"]} == {advantage}
        if record["task_id"] == "nonsense":
            assert record["reward"] == -1.0 and advantage == 0.0, "madness: both repeats get the madness reward"
        else:
            assert advantage == pytest.approx(0.7071 if record["repeat_index"] == 0 else -0.7071, abs=1e-3)


def test_the_located_patterns_are_the_detectors_own():
    assert CONTROL_TOKEN.pattern == turn_problems._CONTROL_TOKEN.pattern
    assert TOOL_RESPONSE_TAG.pattern == turn_problems._TOOL_RESPONSE_TAG.pattern


class _CharTokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


def test_written_records_carry_the_advantage_assign_advantages_set():
    """What the local backbone writes (assign_advantages, then write_rollouts) and what the debug one writes."""
    results = []
    for k, reward in enumerate((1.0, 0.0, 0.0)):
        sample = Sample(token_ids=[104, 105], loss_mask=[0, 1], logprobs=[0.0, -0.5], reward=reward,
                        group_id="g", rollout_id=f"Tg#R{k}", prompt_length=1)
        results.append(RolloutResult(task_id="g", repeat_index=k, rollout_id=f"Tg#R{k}", reward=reward, samples=[sample]))
    debug_rows = [compact_row(rollout_record(r, _CharTokenizer())) for r in results]
    assert [row["advantage"] for row in debug_rows] == [None, None, None]
    assign_advantages([s for r in results for s in r.samples])
    records = [rollout_record(r, _CharTokenizer()) for r in results]
    expected = pytest.approx([1.1547, -0.5774, -0.5774], abs=1e-3)
    assert [rec["samples"][0]["advantage"] for rec in records] == expected
    assert [compact_row(rec)["advantage"] for rec in records] == expected


def _record(completions: list[str], *, prompt: str = "<|im_start|>user\nQ<|im_end|>\n", bad=None, madness=None):
    """A ChatML record with one sample: ``prompt``, then each completion (trained, one token a character)."""
    tokens, mask = list(prompt), [0] * len(prompt)
    for text in completions:
        head = "<|im_start|>assistant\n"
        tokens += list(head) + list(text) + ["<|im_end|>"]
        mask += [0] * len(head) + [1] * (len(text) + 1)
    sample = {"token_ids": list(range(len(tokens))), "loss_mask": mask, "logprobs": [0.0] * len(tokens), "tokens": tokens}
    return {"bad_cases": bad or {}, "madness": madness or {}, "messages": [], "samples": [sample]}


def _spans(result: dict, record: dict) -> dict[str, list[str]]:
    tokens = record["samples"][0]["tokens"]
    return {b["flag"]: ["".join(tokens[loc["start"]:loc["end"]]) for loc in b["locations"]] for b in result["bad_cases"]}


def test_nonsense_is_located_with_non_ascii_allowed_first_then_without():
    loop, foreign = "word " * 20, "Ответ: сорок два"
    record = _record([foreign, loop], madness={"nonsense": True})
    assert _spans(locate_bad_cases(record), record) == {"nonsense": [loop + "<|im_end|>"]}
    record = _record([foreign, "fine"], madness={"nonsense": True})
    assert _spans(locate_bad_cases(record), record) == {"nonsense": [foreign + "<|im_end|>"]}


def test_an_early_boxed_answer_is_located_from_boxed_to_its_closing_brace():
    text = "It is \\boxed{\\frac{1}{2}} surely.\n" + tool_call(PYTHON, {"code": "print(1/2)"})
    record = _record([text], bad={"answer_before_tool_response": True})
    assert _spans(locate_bad_cases(record), record) == {"answer_before_tool_response": ["\\boxed{\\frac{1}{2}}"]}


def test_invalid_tool_calls_are_judged_against_the_tools_in_the_prompt():
    tools = [{"type": "function", "function": {"name": PYTHON, "parameters": {
        "type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}]
    prompt = "<|im_start|>system\n<tools>\n" + "\n".join(json.dumps(t) for t in tools) + "\n</tools><|im_end|>\n"
    good, bad = tool_call(PYTHON, {"code": "print(1)"}), tool_call("calculator", {"expr": "1"})
    record = _record([good + "\n" + bad], prompt=prompt, bad={"invalid_tool_call": True})
    assert _spans(locate_bad_cases(record), record) == {"invalid_tool_call": [bad]}
    without_tools = _record([good + "\n" + bad], bad={"invalid_tool_call": True})
    [entry] = locate_bad_cases(without_tools)["bad_cases"]
    assert entry["locations"] == [] and "not found" in entry["note"]


def test_flags_that_cannot_be_located_keep_a_note_and_old_records_load():
    record = _record(["all fine"], bad={"my_custom_flag": True, "empty_reply": False})
    result = locate_bad_cases(record)
    assert result == {"advantage": None, "bad_cases": [
        {"flag": "my_custom_flag", "kind": "bad_case", "locations": [], "note": "this viewer does not know this flag"}]}
    old = {"task_id": "x", "reward": 1.0, "bad_cases": {"malformed_tool_call": True},
           "samples": [{"token_ids": [1, 2], "loss_mask": [0, 1], "logprobs": [0.0, 0.0]}]}
    [entry] = locate_bad_cases(old)["bad_cases"]
    assert entry["flag"] == "malformed_tool_call" and entry["locations"] == [] and entry["note"]
    assert compact_row(old)["advantage"] is None
    nan = {"samples": [{"advantage": float("nan")}, {"advantage": -0.5}]}
    assert compact_row(nan)["advantage"] == -0.5


def test_an_empty_stdout_repeated_after_a_timeline_break_is_located_once():
    result = "<|im_start|>user\n<tool_response>\n<returncode>0</returncode><stdout>\n</stdout>\n</tool_response><|im_end|>\n"
    first = _record(["call the tool"], prompt="<|im_start|>user\nQ<|im_end|>\n")
    second = _record(["answer"], prompt="<|im_start|>user\nQ<|im_end|>\n" + result)
    third = _record(["again"], prompt="<|im_start|>user\nQ<|im_end|>\n" + result)
    record = {"bad_cases": {"empty_tool_stdout": True}, "madness": {},
              "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "call the tool"},
                           {"role": "tool", "name": PYTHON, "content": "<returncode>0</returncode><stdout>\n</stdout>"}],
              "samples": first["samples"] + second["samples"] + third["samples"]}
    [entry] = locate_bad_cases(record)["bad_cases"]
    [loc] = entry["locations"]
    assert (loc["sample"], loc["call"], loc["message"]) == (1, 1, 2)
    assert re.fullmatch(r"<returncode>0</returncode><stdout>\n</stdout>", "".join(
        record["samples"][1]["tokens"][loc["start"]:loc["end"]]))
