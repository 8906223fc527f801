"""Shared helpers for the trinity-backbone tests (``tests/backbone/trinity/``, ``tests/test_ray_service.py``).

What is stubbed, and why: Trinity-RFT 0.6.0 imports vLLM at module import
(``trinity.common.models.mm_utils``, pulled in by ``ModelWrapper`` and ``WorkflowRunner``). vLLM
needs a GPU and is not installed here, so ``stub_vllm()`` puts empty stand-ins for exactly the four
modules 0.6.0 imports (``vllm``, ``vllm.config``, ``vllm.entrypoints.chat_utils``, ``vllm.inputs``)
into ``sys.modules`` — only when vLLM is absent. Nothing of vLLM is called by these tests.

The rollout model is the only other stand-in: ``DummyRolloutModel`` replaces the ``ModelWrapper``
that Trinity's ``Allocator.get_model`` would return (a Ray actor running vLLM). It offers what
Trinity's ``WorkflowRunner`` and astuner's ``TrinityEngine`` use (``prepare``, workflow-state
methods, ``model_version_async``, ``api_address``, ``model_path``, ``api_key``) and serves
``/v1/completions`` from a loopback HTTP server (``FakeCompletionsServer``) whose replies come from
astuner's scripted engine, as vLLM's server would answer: token ids in, token ids and logprobs out.
Everything else — Trinity's config validation, WorkflowRunner, Experience, advantage and loss
functions — is the real trinity-rft code.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import REPO

TUTORIAL = REPO / "tutorial" / "example_math_agent"
TRINITY_MISSING = importlib.util.find_spec("trinity") is None
SKIP_REASON = "trinity-rft is not installed (pip install -e '.[trinity]'; .ci/run installs it)"


def require_trinity() -> None:
    if TRINITY_MISSING:
        pytest.skip(SKIP_REASON)
    stub_vllm()


def stub_vllm() -> None:
    """Empty stand-ins for the vLLM modules trinity-rft 0.6.0 imports at module import (see the module docstring)."""
    if "vllm" in sys.modules or importlib.util.find_spec("vllm") is not None:
        return  # real vLLM, or the stub is already in place

    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("vLLM is stubbed in astuner's CPU tests")

    def module(name: str, **attrs) -> None:
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            sys.modules[name] = mod

    module("vllm", __version__="0.0.0+astuner-test-stub")
    module("vllm.config", ModelConfig=_Unavailable)
    module("vllm.entrypoints")
    module(
        "vllm.entrypoints.chat_utils",
        ChatTemplateContentFormat=str,
        ConversationMessage=dict,
        parse_chat_messages=_Unavailable,
        parse_chat_messages_async=_Unavailable,
    )
    module("vllm.inputs", MultiModalDataDict=dict)


def fake_logprob(position: int) -> float:
    """The logprob the fake server reports for the ``position``-th generated token of a reply (non-zero)."""
    return -0.01 * (position + 1)


class FakeCompletionsServer:
    """vLLM's ``/v1/completions`` (token-id prompts, ``return_token_ids``) backed by astuner's scripted engine.

    The script is chosen as vLLM could only choose it, from the prompt: the task is the one whose
    query appears in the decoded prompt, the call index is the number of assistant turns already in
    it. ``final_variants`` (by task id, ``"*"`` for every task) lists, in turn, what the last
    scripted call of a rollout answers instead: a reply text, or None for the scripted reply — so
    that rollouts of one task get different rewards.
    """

    def __init__(self, tokenizer, end_of_turn_id: int, replies: Path, tasks: Path, final_variants: dict | None = None):
        from astuner.engine.scripted_engine import ScriptedEngine

        self.engine = ScriptedEngine(replies, tokenizer, end_of_turn_id)
        self.tokenizer = tokenizer
        self.queries = {}
        for line in Path(tasks).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                self.queries[row.get("main_query") or row.get("question")] = str(row["task_id"])
        self.final_variants = final_variants or {}
        self.counters: dict[str, int] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, body: dict) -> dict:
        from astuner.engine.base import SamplingParams

        prompt_ids = body["prompt"]
        text = self.tokenizer.decode(prompt_ids)
        task_id = next((tid for query, tid in self.queries.items() if query and query in text), None)
        call_index = max(0, text.count("<|im_start|>assistant") - 1)
        context = {"task_id": task_id, "call_index": call_index}
        variants = self.final_variants.get(task_id) or self.final_variants.get("*")
        completion_ids = None
        if variants and call_index == len(self.engine.replies_for(context)) - 1:
            with self.lock:
                n = self.counters[task_id] = self.counters.get(task_id, 0) + 1
            reply = variants[(n - 1) % len(variants)]
            if reply is not None:
                completion_ids = list(self.tokenizer.encode(reply, add_special_tokens=False)) + [self.engine.end_of_turn_id]
                finish = "stop"
        if completion_ids is None:
            params = SamplingParams(max_tokens=int(body["max_tokens"]))
            done = asyncio.run(self.engine.generate(prompt_ids, params, context=context))
            completion_ids, finish = done.token_ids, done.finish_reason
        with self.lock:
            self.requests.append(body)
        return {
            "choices": [{
                "token_ids": completion_ids,
                "logprobs": {"token_logprobs": [fake_logprob(i) for i in range(len(completion_ids))]},
                "finish_reason": finish,
            }]
        }

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/completions":
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(outer.reply(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DummyRolloutModel:
    """Stands in for the ``ModelWrapper`` of a vLLM rollout actor (see the module docstring)."""

    def __init__(self, server: FakeCompletionsServer, model_path: str) -> None:
        self.server = server
        self.model_path = model_path
        self.api_key = "EMPTY"
        self.api_address = None
        self.prepared = 0

    async def prepare(self) -> None:
        self.prepared += 1
        self.api_address = self.server.address

    async def clean_workflow_state(self) -> None:
        pass

    async def get_workflow_state(self) -> dict:
        return {}

    @property
    async def model_version_async(self) -> int:
        return 0

    def clone_with_isolated_history(self):
        return self


WRONG_FINAL = (
    "So the answer is \\boxed{-1}.\n<tool_call>\n"
    '{"name": "generate_response", "arguments": {"result": "\\\\boxed{-1}"}}\n</tool_call>'
)
"""A final reply in the tutorial's format with a wrong answer (reward 0 from the exact-match judge)."""


def write_offline_yaml(tmp_path: Path, *, num_repeat: int = 3, trinity: str = "", extra: str = "") -> Path:
    """The offline Math Agent tutorial config (scripted replies, tiny tokenizer), with absolute paths."""
    path = tmp_path / "math_offline_trinity.yaml"
    path.write_text(
        f"""
astuner:
  project_name: example_math_agent
  experiment_name: trinity_cpu_test
  task_reader:
    type: dataset_file
    dataset_file:
      training: {{file_path: {TUTORIAL / 'data' / 'offline_tasks.jsonl'}}}
      validation: {{file_path: {TUTORIAL / 'data' / 'offline_tasks.jsonl'}}}
  rollout:
    agentscope_workflow: tutorial.example_math_agent.math_agent->ExampleMathLearn
    num_repeat: {num_repeat}
    n_vllm_engine: 1
  task_judge:
    judge_protocol: astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge
  model:
    path: astuner://tiny
  data:
    train_batch_size: 2
  trainer_common:
    nnodes: 1
    n_gpus_per_node: 2
    checkpoint_base_dir: {tmp_path / 'ckpt'}
{extra}
trinity:
{trinity or '  monitor: {monitor_type: tensorboard}'}
"""
    )
    return path


def checked_trinity_config(yaml_path: Path, tmp_path: Path):
    """``(astuner config, exp dir, Trinity config checked by check_and_update)`` for ``yaml_path``."""
    from astuner.backbone.trinity.config import check_with_trinity, translate, write_trinity_config
    from astuner.config import load_config, prepare_experiment

    config = load_config(yaml_path, backbone="trinity")
    exp_dir = prepare_experiment(config, yaml_path, tmp_path / "exp")
    path = write_trinity_config(translate(config, exp_dir).data, exp_dir)
    return config, exp_dir, check_with_trinity(path)


def translate_offline(tmp_path: Path, *overrides: str, trinity: str = ""):
    """``(translation, exp dir)`` of the offline config with ``overrides``, without vLLM engines by default."""
    from astuner.backbone.trinity.config import translate
    from astuner.config import load_config, prepare_experiment

    conf = write_offline_yaml(tmp_path, trinity=trinity)
    config = load_config(conf, ["astuner.rollout.n_vllm_engine=0", *overrides], backbone="trinity")
    exp_dir = prepare_experiment(config, conf, tmp_path / "exp")
    return translate(config, exp_dir), exp_dir


def gpu_overrides(n: int, nodes: int = 1) -> tuple[str, str]:
    """The overrides for ``nodes`` nodes of ``n`` GPUs each."""
    return f"astuner.trainer_common.nnodes={nodes}", f"astuner.trainer_common.n_gpus_per_node={n}"


def run_tasks(tmp_path: Path, num_repeat: int = 3, tasks: int = 2, variants=(None, WRONG_FINAL)):
    """Astuner's workflow through Trinity's real WorkflowRunner; returns (experiences, server, runtime)."""
    from trinity.buffer import get_buffer_reader
    from trinity.common.experience import Experience
    from trinity.common.models.allocator import Allocator
    from trinity.explorer.workflow_runner import WorkflowRunner

    from astuner.backbone.trinity.plugin import register
    from astuner.backbone.trinity.worker import runtime

    register()
    _, exp_dir, cfg = checked_trinity_config(write_offline_yaml(tmp_path, num_repeat=num_repeat), tmp_path)
    rt = runtime(str(exp_dir / "yaml_backup.yaml"))
    server = FakeCompletionsServer(
        rt.tokenizer, rt.template.turn.end_of_turn_id,
        TUTORIAL / "data" / "offline_replies.jsonl", TUTORIAL / "data" / "offline_tasks.jsonl",
        final_variants={"*": list(variants)},
    )
    model = DummyRolloutModel(server, cfg.model.model_path)

    async def go():
        with mock.patch.object(Allocator, "get_model", return_value=model):
            runner = WorkflowRunner(cfg, rollout_model_id=0, runner_id=0)
        await runner.prepare()
        reader = get_buffer_reader(cfg.buffer.explorer_input.tasksets[0])
        exps, statuses = [], []
        for i, task in enumerate((await reader.read(batch_size=tasks))):
            task.batch_id, task.task_id = 0, i
            status, payload = await runner.run_task(task, batch_id="0", repeat_times=num_repeat, run_id_base=0)
            statuses.append(status)
            exps.extend(Experience.deserialize_many(payload))
        return exps, statuses

    try:
        exps, statuses = asyncio.run(go())
    finally:
        server.close()
    assert all(s.ok for s in statuses), [s.message for s in statuses]
    return exps, server, rt
