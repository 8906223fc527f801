"""Trinity 0.6.0's colocate mode on one GPU: astuner's engine start without a GPU placement group.

On an H100 (2026-12-06) a colocated run hung before its first step: Trinity 0.6.0's explorer asked
Ray for a placement group of one GPU that the trainer already held (Trinity-RFT #602). These CPU
tests pin the three parts of astuner's workaround against the real trinity-rft: the translation
pins the engine to GPU 0, the launch flags colocated runs in every actor's environment, and with the
flag the plugin's allocator creates the one vLLM actor with no GPU reservation and no placement
group. Ray's actor creation and vLLM's model class are replaced by recorders (no GPU, no vLLM here);
the GPU run itself is benchmarks/trinity_gpu.sh's ``trinity`` stage.
"""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from astuner.backbone.trinity import colocate
from tests.backbone.trinity.fixtures import gpu_overrides, require_trinity, translate_offline

pytestmark = pytest.mark.integration


def test_translation_pins_the_colocated_engine_to_gpu_0(tmp_path):
    t, _ = translate_offline(tmp_path, *gpu_overrides(1))
    assert t.data["explorer"]["rollout_model"]["cuda_visible_devices"] == "0"
    (tmp_path / "two").mkdir()
    t, _ = translate_offline(tmp_path / "two", *gpu_overrides(2))
    assert "cuda_visible_devices" not in t.data["explorer"]["rollout_model"]


def test_the_launch_flags_colocated_runs_only(tmp_path):
    from astuner.backbone.trinity.launch import actor_env

    assert actor_env(tmp_path, "colocate")[colocate.COLOCATE_ENV] == "1"
    assert colocate.COLOCATE_ENV not in actor_env(tmp_path, "both")


class _Remote:
    """Stands in for an actor method: ``.remote()`` returns an awaitable of ``value``."""

    def __init__(self, value):
        self.value = value

    def remote(self, *args, **kwargs):
        async def done():
            return self.value
        return done()


class _Actor:
    prepare = _Remote(None)
    get_api_server_url = _Remote("http://127.0.0.1:8000")


def _fake_ray(created: list) -> types.SimpleNamespace:
    def remote(cls):
        class Options:
            def options(self, **options):
                created.append({"cls": cls, **options})
                return self

            def remote(self, config):
                created[-1]["config"] = config
                return _Actor()

        return Options()

    return types.SimpleNamespace(remote=remote)


def test_the_patched_allocator_starts_one_engine_without_a_gpu_reservation(tmp_path, monkeypatch):
    require_trinity()
    from trinity.common.config import load_config
    from trinity.common.models import allocator, model

    from astuner.backbone.trinity.config import check_with_trinity, write_trinity_config

    t, exp_dir = translate_offline(tmp_path, *gpu_overrides(1))
    checked = check_with_trinity(write_trinity_config(t.data, exp_dir))
    assert load_config(str(exp_dir / "trinity_config.yaml")).mode == "colocate"

    original = allocator.Allocator.create_all_models
    monkeypatch.setattr(allocator.Allocator, "create_all_models", original)
    monkeypatch.delenv(colocate.COLOCATE_ENV, raising=False)
    assert colocate.patch_allocator() is False and allocator.Allocator.create_all_models is original
    monkeypatch.setenv(colocate.COLOCATE_ENV, "1")
    assert colocate.patch_allocator() is True
    assert allocator.Allocator.create_all_models is colocate.create_colocated_models

    created: list[dict] = []
    vllm_model = types.ModuleType("trinity.common.models.vllm_model")
    vllm_model.vLLMRolloutModel = type("vLLMRolloutModel", (), {})
    monkeypatch.setitem(sys.modules, "trinity.common.models.vllm_model", vllm_model)
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(created))
    wrapped = []

    class Wrapper:
        def __init__(self, models, config, api_address):
            wrapped.append((models, config, api_address))

        async def prepare(self):
            return None

    monkeypatch.setattr(model, "ModelWrapper", Wrapper)

    rollout, auxiliary = asyncio.run(allocator.Allocator(checked.explorer).create_all_models())
    assert auxiliary == [] and len(rollout) == 1 and len(created) == 1
    actor = created[0]
    assert actor["cls"] is vllm_model.vLLMRolloutModel
    assert actor["num_gpus"] == 0 and "scheduling_strategy" not in actor  # no placement group
    assert actor["name"] == "explorer_rollout_model_0_0"  # the name workflow runners look up
    assert actor["config"].cuda_visible_devices == "0" and actor["config"].engine_id == 0
    assert wrapped[0][2] == "http://127.0.0.1:8000"


def test_layouts_colocate_cannot_hold_are_refused_in_one_line(tmp_path, monkeypatch):
    require_trinity()
    from astuner.backbone.trinity.config import check_with_trinity, write_trinity_config

    t, exp_dir = translate_offline(tmp_path, *gpu_overrides(1))
    checked = check_with_trinity(write_trinity_config(t.data, exp_dir))
    checked.explorer.rollout_model.engine_num = 2
    holder = types.SimpleNamespace(config=checked.explorer)
    monkeypatch.setitem(sys.modules, "trinity.common.models.vllm_model",
                        types.SimpleNamespace(vLLMRolloutModel=object))
    with pytest.raises(RuntimeError, match="one vLLM engine of one GPU"):
        asyncio.run(colocate.create_colocated_models(holder))
