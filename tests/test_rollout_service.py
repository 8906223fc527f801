"""``roll_out``: one semaphore, one group per task, results in task order, callback and bar per rollout.

The rollouts here are fakes that take a set number of event-loop turns (``asyncio.sleep(0)``), so
the interleaving is deterministic and the event traces of two fan-outs can be compared exactly.
The fan-outs the callers had before ``astuner.rollout_service`` are restated here as references.
"""

from __future__ import annotations

import asyncio

import pytest

from astuner import rollout_service
from astuner.rollout import RolloutResult, Rollouts
from astuner.rollout_service import roll_out
from astuner.schema import Task


class FakeRollouts(Rollouts):
    """``Rollouts`` with the real ``run_group``; ``run`` takes ``turns(task_id, i)`` loop turns and logs."""

    def __init__(self, turns) -> None:
        self.turns = turns
        self.events: list[tuple[str, str]] = []
        self.in_flight = 0
        self.peak = 0

    async def run(self, task: Task, repeat_index: int) -> RolloutResult:
        tag = f"T{task.task_id}#R{repeat_index}"
        self.events.append(("start", tag))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        for _ in range(self.turns(task.task_id, repeat_index)):
            await asyncio.sleep(0)
        self.in_flight -= 1
        self.events.append(("end", tag))
        return RolloutResult(task_id=task.task_id, repeat_index=repeat_index, rollout_id=tag)


def tasks(n: int) -> list[Task]:
    return [Task(task_id=str(k)) for k in range(n)]


def uneven(task_id: str, i: int) -> int:
    """Later rollouts finish first, and no two take the same time."""
    return 40 - 7 * int(task_id) - 3 * i


async def former_debug_fan_out(rollouts, tasks, num_repeat, max_parallel, on_finish):
    """What ``astuner.backbone.debug._roll_out`` did before the service: ``run`` per (task, repeat)."""
    semaphore = asyncio.Semaphore(max(1, max_parallel))

    async def one(task, i):
        async with semaphore:
            result = await rollouts.run(task, i)
        on_finish(result)
        return result

    return list(await asyncio.gather(*(one(t, i) for t in tasks for i in range(num_repeat))))


async def former_group_fan_out(rollouts, tasks, num_repeat, max_parallel):
    """What the local backbone and the teacher traces did before the service: ``run_group`` per task."""
    semaphore = asyncio.Semaphore(max(1, max_parallel))
    groups = await asyncio.gather(*(rollouts.run_group(t, num_repeat, semaphore) for t in tasks))
    return [r for g in groups for r in g]


def ids(results: list[RolloutResult]) -> list[str]:
    return [r.rollout_id for r in results]


@pytest.mark.parametrize("max_parallel", [1, 2, 4, 100])
def test_results_are_in_task_order_whatever_order_they_finish_in(max_parallel):
    fake = FakeRollouts(uneven)
    results = asyncio.run(roll_out(fake, tasks(3), 2, max_parallel))
    assert ids(results) == ["T0#R0", "T0#R1", "T1#R0", "T1#R1", "T2#R0", "T2#R1"]
    assert [(r.task_id, r.repeat_index) for r in results] == [("0", 0), ("0", 1), ("1", 0), ("1", 1), ("2", 0), ("2", 1)]
    if max_parallel > 1:
        assert [tag for kind, tag in fake.events if kind == "end"] != ids(results)


@pytest.mark.parametrize(("max_parallel", "peak"), [(0, 1), (1, 1), (3, 3), (4, 4), (100, 6)])
def test_one_semaphore_bounds_every_group_together(max_parallel, peak):
    fake = FakeRollouts(uneven)
    asyncio.run(roll_out(fake, tasks(3), 2, max_parallel))
    assert fake.peak == peak


def test_rollouts_start_task_by_task_repeat_by_repeat():
    fake = FakeRollouts(uneven)
    results = asyncio.run(roll_out(fake, tasks(3), 3, 2))
    assert [tag for kind, tag in fake.events if kind == "start"] == ids(results)


@pytest.mark.parametrize("max_parallel", [1, 3, 64])
def test_same_trace_as_the_former_debug_fan_out(max_parallel):
    """Switching the debug backbone from ``run`` per (task, repeat) to ``run_group`` per task changes
    nothing observable: same starts, ends and callbacks in the same order, same results."""
    traces = []
    for fan_out in (former_debug_fan_out, None):
        fake = FakeRollouts(uneven)

        def on_finish(result, fake=fake):
            fake.events.append(("callback", result.rollout_id))

        if fan_out is None:
            results = asyncio.run(roll_out(fake, tasks(4), 3, max_parallel, on_result=on_finish))
        else:
            results = asyncio.run(fan_out(fake, tasks(4), 3, max_parallel, on_finish))
        traces.append((fake.events, ids(results), fake.peak))
    assert traces[0] == traces[1]


@pytest.mark.parametrize("max_parallel", [1, 3, 64])
def test_same_trace_as_the_former_group_fan_out(max_parallel):
    traces = []
    for fan_out in (former_group_fan_out, roll_out):
        fake = FakeRollouts(uneven)
        results = asyncio.run(fan_out(fake, tasks(4), 3, max_parallel))
        traces.append((fake.events, ids(results), fake.peak))
    assert traces[0] == traces[1]


def test_on_result_gets_each_rollout_as_it_ends_after_freeing_its_slot():
    fake = FakeRollouts(uneven)
    seen: list[tuple[str, int, bool]] = []

    def on_result(result):
        seen.append((result.rollout_id, fake.in_flight, result.rollout_id in ended()))

    def ended():
        return {tag for kind, tag in fake.events if kind == "end"}

    results = asyncio.run(roll_out(fake, tasks(3), 2, 2, on_result=on_result))
    assert [tag for tag, _, _ in seen] == [tag for kind, tag in fake.events if kind == "end"]
    assert sorted(tag for tag, _, _ in seen) == sorted(ids(results))
    assert all(done and in_flight <= 1 for _, in_flight, done in seen)


class RecordingBar:
    made: list["RecordingBar"] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.updates, self.closed = kwargs, 0, False
        RecordingBar.made.append(self)

    def update(self, n: int) -> None:
        self.updates += n

    def close(self) -> None:
        self.closed = True


def test_progress_bar_counts_rollouts_and_hides_on_ci(monkeypatch):
    monkeypatch.setattr(rollout_service, "tqdm", RecordingBar)
    RecordingBar.made = []
    monkeypatch.setenv("CI", "1")
    counts_at_callback: list[int] = []
    asyncio.run(roll_out(FakeRollouts(uneven), tasks(3), 2, 2, progress="rollouts",
                         on_result=lambda r: counts_at_callback.append(RecordingBar.made[0].updates)))
    (bar,) = RecordingBar.made
    assert bar.kwargs == {"total": 6, "desc": "rollouts", "unit": "rollout", "disable": True}
    assert (bar.updates, bar.closed) == (6, True)
    assert counts_at_callback == [0, 1, 2, 3, 4, 5]  # the callback runs before the bar ticks


def test_no_bar_unless_asked(monkeypatch):
    monkeypatch.setattr(rollout_service, "tqdm", RecordingBar)
    RecordingBar.made = []
    asyncio.run(roll_out(FakeRollouts(uneven), tasks(2), 2, 2))
    assert RecordingBar.made == []


def test_cancelled_rollouts_are_neither_returned_nor_called_back(monkeypatch):
    monkeypatch.setattr(rollout_service, "tqdm", RecordingBar)
    RecordingBar.made = []
    fake = FakeRollouts(lambda task_id, i: 5 if task_id == "0" else 10_000)
    called: list[str] = []

    async def main():
        job = asyncio.ensure_future(roll_out(fake, tasks(3), 2, 4, on_result=lambda r: called.append(r.rollout_id),
                                             progress="rollouts"))
        for _ in range(50):
            await asyncio.sleep(0)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(main())
    assert called == ["T0#R0", "T0#R1"]
    assert RecordingBar.made[0].closed and RecordingBar.made[0].updates == 2


def test_an_error_in_the_callback_escapes():
    def boom(result):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(roll_out(FakeRollouts(uneven), tasks(2), 2, 2, on_result=boom))


def test_no_tasks():
    assert asyncio.run(roll_out(FakeRollouts(uneven), [], 3, 4)) == []


def test_repeats_can_start_at_a_given_index_as_trinity_numbers_them():
    """Trinity splits one task's group across runners; each runner's runs start at its run_id_base."""
    rollouts = FakeRollouts(uneven)
    results = asyncio.run(roll_out(rollouts, tasks(1), 3, 3, first_repeat=5))
    assert ids(results) == ["T0#R5", "T0#R6", "T0#R7"]
