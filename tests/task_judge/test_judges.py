"""Judges: both call styles, answer normalisation, and the LLM path against a real local server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from astuner.config.schema import AstunerConfig, Config
from astuner.schema import Task, WorkflowOutput, WorkflowTask
from astuner.task_judge import (
    BaseJudge,
    JudgeInputError,
    JudgeUnavailableError,
    MathAnswerAndLlmAsJudge,
    MathAnswerAsJudge,
)
from astuner.task_judge.base_judge import task_judge_settings
from astuner.task_judge.math_answer_as_judge import (
    answers_match,
    extract_boxed,
    gsm8k_reference,
    normalize_number,
    verdict_is_correct,
)

pytestmark = pytest.mark.integration

GSM8K_ANSWER = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18"


def make_task(answer: str = GSM8K_ANSWER, **metadata) -> WorkflowTask:
    return WorkflowTask(task=Task(task_id="7", main_query="How much?", metadata={"answer": answer, **metadata}))


# --- answer helpers ---------------------------------------------------------------------------


def test_extract_boxed_last_nested_spacing_fbox():
    assert extract_boxed(r"first \boxed{17}, corrected: \boxed{18}") == "18"
    assert extract_boxed(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract_boxed(r"\boxed {42}") == "42"
    assert extract_boxed(r"\fbox{7}") == "7"
    assert extract_boxed(r"\boxed{18} then \boxed{unclosed") == "18"
    assert extract_boxed("no box here") is None
    assert extract_boxed("") is None


@pytest.mark.parametrize(
    "text, value",
    [
        ("1,600", 1600.0),
        ("18.0", 18.0),
        ("$18", 18.0),
        ("18 dollars", 18.0),
        (r"\$18", 18.0),
        ("50%", 50.0),
        (r"\frac{1}{2}", 0.5),
        ("1/2", 0.5),
        ("-3", -3.0),
        (r"\text{18}", 18.0),
        (r"18\text{ dollars}", 18.0),
        (r"\boxed{1,234.50}", 1234.5),
        (r"-\dfrac{3}{4}", -0.75),
    ],
)
def test_normalize_number_accepts(text, value):
    assert normalize_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["18 + 2", "eighteen", "", "1/0", "18 dollars and 50 cents", None])
def test_normalize_number_rejects(text):
    assert normalize_number(text) is None


def test_answers_match():
    assert answers_match(r"The total is \boxed{18.0}.", "18")
    assert answers_match(r"\boxed{\$1,600}", "1600")
    assert answers_match("0.333", "1/3") is False
    assert answers_match("0.3333333", "1/3")
    assert answers_match(r"\boxed{\text{Yes}}", "yes")
    assert not answers_match(r"\boxed{17}", "18")
    assert not answers_match("", "")
    assert not answers_match(None, "18")


def test_gsm8k_reference():
    assert gsm8k_reference(GSM8K_ANSWER) == "18"
    assert gsm8k_reference("a #### b #### 72 ") == "72"


# --- interface --------------------------------------------------------------------------------


class RecordingJudge(BaseJudge):
    def __init__(self, config=None):
        super().__init__(config)
        self.seen = None

    def judge(self, judge_input):
        self.seen = judge_input
        return 1, 1


def test_seed_style_dictionary():
    task = make_task()
    judge = RecordingJudge()
    assert judge.compute_reward({"task_core_arg": task, "final_answer": "x", "env": None}) == (1.0, True)
    seen = judge.seen
    assert seen["workflow_task"] is task and seen["task_core_arg"] is task
    assert seen["grouped_steps"] == [] and seen["final_answer"] == "x"


def test_new_style_metadata_merged():
    task = make_task()
    judge = RecordingJudge()
    out = WorkflowOutput(metadata={"final_answer": r"\boxed{18}", "extra": 3})
    judge.compute_reward(task, out)
    seen = judge.seen
    assert seen["workflow_task"] is task and seen["task_core_arg"] is task
    assert seen["final_answer"] == r"\boxed{18}" and seen["extra"] == 3
    assert seen["workflow_output"] is out and seen["env"] is None
    judge.compute_reward(workflow_task=task, workflow_output=out)
    assert judge.seen["extra"] == 3


def test_bad_call_shapes():
    with pytest.raises(TypeError):
        RecordingJudge().compute_reward()
    with pytest.raises(TypeError):
        RecordingJudge().compute_reward(1, 2, 3)
    with pytest.raises(NotImplementedError):
        BaseJudge().compute_reward({"final_answer": "1"})


def test_missing_final_answer_is_clear():
    with pytest.raises(JudgeInputError) as err:
        MathAnswerAsJudge().compute_reward(make_task(), WorkflowOutput())
    assert isinstance(err.value, KeyError)
    assert "update_judge_input_dictionary(final_answer=...)" in str(err.value)
    assert "WorkflowOutput" in str(err.value)


def test_task_judge_settings_of_what_a_judge_is_given():
    """astuner gives judges the run's Config; what user code may give one still reads the same block."""
    config = Config.model_validate({"astuner": {"task_judge": {"alien_llm_model": "m1"}}})
    assert task_judge_settings(config).alien_llm_model == "m1"
    assert task_judge_settings(config.astuner).alien_llm_model == "m1"
    assert task_judge_settings({"astune": {"task_judge": {"alien_llm_model": "m2"}}}).alien_llm_model == "m2"
    assert task_judge_settings({"task_judge": {"alien_llm_model": "m3"}}).alien_llm_model == "m3"
    assert task_judge_settings(None) == AstunerConfig().task_judge
    with pytest.raises(ValueError, match="alien_llm_modle"):
        task_judge_settings({"astuner": {"task_judge": {"alien_llm_modle": "typo"}}})
    with pytest.raises(TypeError, match="Config"):
        task_judge_settings(object())
    assert BaseJudge(config).config is config


# --- rule judge -------------------------------------------------------------------------------


def test_math_answer_as_judge_both_styles():
    judge = MathAnswerAsJudge(None)
    task = make_task()
    assert judge.compute_reward(task, WorkflowOutput(metadata={"final_answer": r"\boxed{18}"})) == (1.0, True)
    assert judge.compute_reward(task, WorkflowOutput(metadata={"final_answer": r"\boxed{$18.00}"})) == (1.0, True)
    assert judge.compute_reward({"workflow_task": task, "final_answer": r"\boxed{17}"}) == (0.0, False)
    assert judge.compute_reward({"workflow_task": task, "final_answer": None}) == (0.0, False)


def test_reference_from_other_metadata_keys():
    judge = MathAnswerAsJudge()
    task = WorkflowTask(task=Task(metadata={"reference_answer": "0.5"}))
    assert judge.compute_reward(task, {"metadata": {"final_answer": r"\boxed{\frac{1}{2}}"}}) == (1.0, True)
    task = WorkflowTask(task=Task(metadata={"ground_truth": "7"}))
    assert judge.compute_reward(task, WorkflowOutput(metadata={"final_answer": "7"})) == (1.0, True)
    with pytest.raises(JudgeInputError, match="reference"):
        judge.compute_reward(WorkflowTask(task=Task()), WorkflowOutput(metadata={"final_answer": "7"}))


# --- LLM judge against a local OpenAI-compatible server ---------------------------------------


class FakeChatServer:
    """A tiny /v1/chat/completions server: replies from a script of (status, content) pairs."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, content = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if status == 200:
                    payload = {
                        "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                    }
                else:
                    payload = {"error": {"message": content, "type": "server_error"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def llm_judge(base_url: str, retries: int = 4) -> MathAnswerAndLlmAsJudge:
    config = Config.model_validate({"astuner": {"task_judge": {
        "alien_llm_model": "judge-model", "alien_llm_base_url": base_url,
        "alien_llm_api_key_env": "ASTUNER_TEST_JUDGE_KEY", "alien_llm_max_retries": retries,
        "alien_llm_timeout_s": 5, "alien_llm_response_length": 64,
    }}})
    judge = MathAnswerAndLlmAsJudge(config)
    judge.retry_backoff_s = 0.01
    return judge


def wrong_format_output(answer: str = "eighteen dollars") -> WorkflowOutput:
    return WorkflowOutput(metadata={"final_answer": answer})


def test_llm_judge_rule_match_skips_llm(monkeypatch):
    monkeypatch.delenv("ASTUNER_TEST_JUDGE_KEY", raising=False)
    judge = llm_judge("http://127.0.0.1:9/v1")
    assert judge.compute_reward(make_task(), WorkflowOutput(metadata={"final_answer": r"\boxed{18}"})) == (1.0, True)


def test_llm_judge_correct_and_not_correct(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_JUDGE_KEY", "sk-test")
    with FakeChatServer([(200, "<Correct>")]) as server:
        assert llm_judge(server.base_url).compute_reward(make_task(), wrong_format_output()) == (1.0, True)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "judge-model" and body["temperature"] == 0 and body["max_tokens"] == 64
    assert body["messages"][0]["role"] == "system" and "<Correct>" in body["messages"][0]["content"]
    assert "eighteen dollars" in body["messages"][1]["content"] and "18" in body["messages"][1]["content"]
    with FakeChatServer([(200, "<NotCorrect>")]) as server:
        assert llm_judge(server.base_url).compute_reward(make_task(), wrong_format_output()) == (0.0, False)


def test_llm_judge_retries_server_errors(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_JUDGE_KEY", "sk-test")
    with FakeChatServer([(500, "boom"), (503, "busy"), (200, "<Correct>")]) as server:
        assert llm_judge(server.base_url).compute_reward(make_task(), wrong_format_output()) == (1.0, True)
    assert len(server.requests) == 3


def test_llm_judge_gives_up_after_retries(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_JUDGE_KEY", "sk-test")
    with FakeChatServer([(500, "boom")]) as server:
        with pytest.raises(JudgeUnavailableError, match="judge-model"):
            llm_judge(server.base_url, retries=3).compute_reward(make_task(), wrong_format_output())
    assert len(server.requests) == 3


def test_llm_judge_auth_error_not_retried(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_JUDGE_KEY", "sk-test")
    with FakeChatServer([(401, "bad key")]) as server:
        with pytest.raises(JudgeUnavailableError, match="401"):
            llm_judge(server.base_url).compute_reward(make_task(), wrong_format_output())
    assert len(server.requests) == 1


def test_llm_judge_unreachable(monkeypatch):
    monkeypatch.setenv("ASTUNER_TEST_JUDGE_KEY", "sk-test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(JudgeUnavailableError) as err:
        llm_judge(base_url, retries=2).compute_reward(make_task(), wrong_format_output())
    assert base_url in str(err.value) and "judge-model" in str(err.value) and "2 attempt" in str(err.value)


def test_llm_judge_missing_key(monkeypatch):
    monkeypatch.delenv("ASTUNER_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(JudgeUnavailableError, match="ASTUNER_TEST_JUDGE_KEY") as err:
        llm_judge("http://127.0.0.1:9/v1").compute_reward(make_task(), wrong_format_output())
    assert "\n" not in str(err.value)


def test_llm_judge_defaults():
    judge = MathAnswerAndLlmAsJudge(None)
    assert judge.model == "qwen3-235b-a22b-instruct-2507"
    assert judge.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert judge.api_key_env == "DASHSCOPE_API_KEY"
    assert (judge.max_attempts, judge.timeout_s, judge.response_length) == (4, 60.0, 512)


def test_verdict_parsing():
    assert verdict_is_correct("<Correct>")
    assert not verdict_is_correct("<NotCorrect>")
    assert not verdict_is_correct("<think>maybe <Correct></think><NotCorrect>")
    assert verdict_is_correct("<NotCorrect>... on reflection <Correct>")
    assert not verdict_is_correct("")
    assert not verdict_is_correct(None)
