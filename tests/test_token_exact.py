"""Token-exactness and masks (docs/architecture.md, contracts 2 and 3) through a real AgentScope ReActAgent.

The agent, toolkit, formatter and the real Qwen2.5/Qwen3 chat templates are real; only the model's
replies come from ``ReplayEngine`` (no weights can be downloaded here).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg, TextBlock
from agentscope.tool import Toolkit, ToolResponse
from pydantic import BaseModel, Field

from astuner.chat_template import ChatTemplate
from astuner.model_tuner import CONTEXT_OVERFLOW_TEXT, ModelTuner, ModelTunerSettings
from astuner.samples import build_samples
from astuner.schema import check_sample_arrays
from tests.replay import ReplayEngine

pytestmark = pytest.mark.integration

TOOL_REPLY = (
    "Let me compute.\n<tool_call>\n"
    + json.dumps({"name": "execute_python_code", "arguments": {"code": "print(6*3)"}})
    + "\n</tool_call>"
)
FINAL_REPLY = (
    "The answer is \\boxed{18}.\n<tool_call>\n"
    + json.dumps({"name": "generate_response", "arguments": {"result": "\\boxed{18}"}})
    + "\n</tool_call>"
)


class FinalResult(BaseModel):
    result: str = Field(description="The final answer in \\boxed{}.")


async def fake_python(code: str) -> ToolResponse:
    """Run python code.

    Args:
        code (str): the code.
    """
    return ToolResponse(content=[TextBlock(type="text", text="<returncode>0</returncode><stdout>18\n</stdout><stderr></stderr>")])


def run_react(tokenizer, replies, *, cut=None, settings=None):
    template = ChatTemplate(tokenizer)
    engine = ReplayEngine(tokenizer, replies, template.turn.end_of_turn_id, cut=cut)
    tuner = ModelTuner(engine, template, settings or ModelTunerSettings())
    toolkit = Toolkit()
    toolkit.register_tool_function(fake_python, func_name="execute_python_code")
    agent = ReActAgent(
        name="math_react_agent",
        sys_prompt="You solve math problems with tools.",
        model=tuner,
        formatter=DashScopeChatFormatter(),
        toolkit=toolkit,
        memory=InMemoryMemory(),
    )
    agent.set_console_output_enabled(False)
    reply = asyncio.run(agent.reply(Msg("user", "What is 6*3?", "user"), structured_model=FinalResult))
    return tuner, engine, template, reply


@pytest.mark.parametrize("tokenizer_name", ["qwen25_tokenizer", "tiny_tokenizer"])
def test_two_call_react_rollout_is_one_token_exact_sample(tokenizer_name, request):
    tokenizer = request.getfixturevalue(tokenizer_name)
    tuner, engine, template, reply = run_react(tokenizer, [TOOL_REPLY, FINAL_REPLY])
    assert reply.metadata == {"result": "\\boxed{18}"}
    assert len(tuner.calls) == 2 and tuner.timeline_breaks == 0
    samples, stats = build_samples(
        tuner.calls, reward=1.0, group_id="t0", rollout_id="t0#0", max_sample_per_task=4, max_response_length=10_000
    )
    assert stats.samples == 1
    s = samples[0]
    check_sample_arrays(s.token_ids, s.loss_mask, s.logprobs)
    # the second prompt starts with the first prompt + the engine's completion, byte for byte
    first, second = engine.returned
    p1, p2 = engine.prompts
    assert p2[: len(p1) + len(first.token_ids)] == p1 + first.token_ids
    assert s.token_ids == p2 + second.token_ids
    # mask is 1 exactly on the generated ids, logprobs are the engine's there and 0 elsewhere
    spans = [(len(p1), first), (len(p2), second)]
    expected = [0] * len(s.token_ids)
    for start, comp in spans:
        for k in range(len(comp.token_ids)):
            expected[start + k] = 1
        assert s.logprobs[start : start + len(comp.token_ids)] == comp.logprobs
    assert s.loss_mask == expected
    eot = template.turn.end_of_turn_id
    trained = [t for t, m in zip(s.token_ids, s.loss_mask) if m]
    assert trained.count(eot) == 2  # both generated end-of-turn tokens are trained
    # the assistant header and the template's trailing newline are not trained
    header = template.encode("<|im_start|>assistant\n")
    assert s.token_ids[len(p1) - len(header) : len(p1)] == header
    assert s.loss_mask[len(p1) - len(header) : len(p1)] == [0] * len(header)
    tail_pos = len(p1) + len(first.token_ids)
    assert tokenizer.decode([s.token_ids[tail_pos]]).startswith("\n") and s.loss_mask[tail_pos] == 0
    # the tool response is in the prompt of call 2 and masked
    text = tokenizer.decode(s.token_ids[tail_pos : len(p2)])
    assert "<tool_response>" in text and "<stdout>18" in text


@pytest.mark.parametrize("tokenizer_name", ["qwen25_tokenizer", "tiny_tokenizer"])
def test_prompt_matches_fresh_render_text(tokenizer_name, request):
    """Extending by tokens gives the same text as rendering the whole conversation anew."""
    tokenizer = request.getfixturevalue(tokenizer_name)
    tuner, engine, template, _ = run_react(tokenizer, [TOOL_REPLY, FINAL_REPLY])
    second = tuner.calls[1]
    fresh = template.render(second.messages, second.tools, add_generation_prompt=True)
    assert tokenizer.decode(engine.prompts[1]) == fresh


def test_length_cut_reply_gets_untrained_end_of_turn(qwen25_tokenizer):
    """A reply cut by max_tokens has no generated end-of-turn; the one the template needs is 0."""
    tuner, engine, template, _ = run_react(qwen25_tokenizer, [TOOL_REPLY, TOOL_REPLY, FINAL_REPLY], cut={0: 5})
    first = tuner.calls[0]
    assert first.finish_reason == "length" and len(first.completion_ids) == 5
    assert template.turn.end_of_turn_id not in first.completion_ids
    samples, _ = build_samples(
        tuner.calls, reward=0.0, group_id="g", rollout_id="r", max_sample_per_task=8, max_response_length=10_000
    )
    for s in samples:
        check_sample_arrays(s.token_ids, s.loss_mask, s.logprobs)
    s = samples[0]
    end = len(first.prompt_ids) + 5
    assert s.loss_mask[end - 5 : end] == [1] * 5
    assert s.token_ids[end] == template.turn.end_of_turn_id and s.loss_mask[end] == 0


def test_qwen3_template_rollout_stays_valid(qwen3_tokenizer):
    """Qwen3's template is not always prefix-preserving; whatever it does, samples stay valid and
    every generated token is trained exactly once."""
    replies = ["<think>\nuse the tool\n</think>\n\n" + TOOL_REPLY, "<think>\ndone\n</think>\n\n" + FINAL_REPLY]
    tuner, engine, template, _ = run_react(qwen3_tokenizer, replies)
    samples, stats = build_samples(
        tuner.calls, reward=1.0, group_id="g", rollout_id="r", max_sample_per_task=8, max_response_length=10_000
    )
    assert stats.samples == 1 + tuner.timeline_breaks
    generated = sum(len(c.completion_ids) for c in tuner.calls)
    assert sum(sum(s.loss_mask) for s in samples) == generated


def test_context_overflow_skips_the_engine(qwen25_tokenizer):
    settings = ModelTunerSettings(max_model_len=300, max_response_length_in_one_turn=100)
    tuner, engine, _, reply = run_react(qwen25_tokenizer, [TOOL_REPLY, FINAL_REPLY], settings=settings)
    assert tuner.context_overflow
    assert not engine.prompts
    assert CONTEXT_OVERFLOW_TEXT in reply.get_text_content()


def test_qwen3_dropped_think_falls_back_to_a_counted_new_sample(qwen3_tokenizer):
    """A user turn after an assistant turn makes Qwen3 drop its <think>: not a prefix any more."""
    replies = ["<think>\nhmm\n</think>\n\nIt is 18.", "<think>\nok\n</think>\n\n" + TOOL_REPLY, FINAL_REPLY]
    tuner, engine, template, _ = run_react(qwen3_tokenizer, replies)
    assert tuner.timeline_breaks >= 1
    samples, stats = build_samples(
        tuner.calls, reward=1.0, group_id="g", rollout_id="r", max_sample_per_task=8, max_response_length=10_000
    )
    assert stats.samples == 2
    generated = sum(len(c.completion_ids) for c in tuner.calls)
    assert sum(sum(s.loss_mask) for s in samples) == generated
