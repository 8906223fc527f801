"""The ``vllm`` engine: token-exact completions from a ``vllm serve`` that this engine starts and stops.

Generation goes through ``OpenAIEngine`` (prompt token ids in, ``choices[0].token_ids`` and
``logprobs.token_logprobs`` out), so samples are exactly as token-exact as with a server you run
yourself; the difference is ownership: the server lives as long as the engine (``close`` stops it,
and ``astuner.engine.server_guard`` stops it if the process ends first).

Weights after a policy update (local backbone) reach the server by the simplest route, one that
needs nothing from vLLM beyond ``vllm serve``'s command line: ``load_weights`` saves the model as a
Hugging Face directory under ``<experiment dir>/vllm_weights/`` and restarts the server on it (the
served name stays the same), then deletes the directory it replaced (``close`` deletes the last
one). The cost is a full vLLM start-up per update — loading the weights, profiling memory and,
without ``enforce_eager``, capturing CUDA graphs; expected to be tens of seconds for a 1.5B model,
not measured (no vLLM here) — plus writing one copy of the weights to disk. ``pause`` stops the
server so that the trainer has the GPU's memory to itself during the update.

Not guaranteed: that the reported logprobs equal the trainer's recomputation when ``top_p < 1`` or
``top_k`` is set (vLLM's processed logprobs are renormalised over the kept tokens; the trainer
uses the full tempered distribution); bit-identical logits between vLLM and transformers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astuner.engine.base import Completion, EngineError, SamplingParams
from astuner.engine.openai_engine import OpenAIEngine
from astuner.engine.vllm_server import (
    LOG_NAME,
    ServeOptions,
    VllmServer,
    clamp_tensor_parallel,
    find_launcher,
    visible_gpu_count,
)

WEIGHTS_DIR = "vllm_weights"
API_KEY_ENV = "ASTUNER_VLLM_API_KEY"
"""Read for the bearer token sent to our own server (started without ``--api-key``, so any value
works); a dedicated name keeps a real ``OPENAI_API_KEY`` from being sent to it."""


class VllmEngine:
    """An ``Engine`` backed by the ``VllmServer`` it owns."""

    def __init__(
        self,
        server: VllmServer,
        model_dir: str | Path,
        *,
        weights_root: Path,
        request_timeout_s: float = 600.0,
    ) -> None:
        self.server = server
        self.model_dir: str | Path = model_dir
        self.weights_root = Path(weights_root)
        self.request_timeout_s = request_timeout_s
        self._client: OpenAIEngine | None = None

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> VllmEngine:
        """Start the server on ``model_dir`` (blocks until it answers)."""
        self.server.start(self.model_dir)
        self._client = OpenAIEngine(
            self.server.base_url, self.server.options.served_model_name, api_key_env=API_KEY_ENV,
            timeout_s=self.request_timeout_s,
        )
        return self

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        if self._client is None:
            raise EngineError("the vLLM server is not running (closed, or paused for a weight update)")
        return await self._client.generate(prompt_ids, params, context=context)

    def pause(self) -> None:
        """Stop the server, freeing its GPU memory; ``load_weights`` or ``start`` brings it back."""
        self._drop_client()
        self.server.stop()

    def load_weights(self, model: Any, tokenizer: Any, name: str) -> Path:
        """Serve ``model``'s current weights: save them to ``weights_root/name``, restart on them.

        ``model`` and ``tokenizer`` are Hugging Face objects (``save_pretrained``). The directory
        is written under a temporary name and renamed when complete. The previous directory under
        ``weights_root`` is deleted once the new server is up; the base model is never touched.
        """
        target = self.weights_root / name
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(str(partial))
        tokenizer.save_pretrained(str(partial))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        self.pause()
        previous, self.model_dir = self.model_dir, target
        self.start()
        if Path(previous) != target and Path(previous).parent == self.weights_root:
            shutil.rmtree(previous, ignore_errors=True)
        return target

    def close(self) -> None:
        """Stop the server and delete the weights saved for it (checkpoints keep their own copy). Idempotent."""
        self._drop_client()
        self.server.stop()
        if Path(self.model_dir).parent == self.weights_root:
            shutil.rmtree(self.model_dir, ignore_errors=True)
            if self.weights_root.is_dir() and not any(self.weights_root.iterdir()):
                self.weights_root.rmdir()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _setting(section: Any, key: str, default: Any) -> Any:
    if section is None:
        return default
    value = section.get(key, default) if isinstance(section, dict) else getattr(section, key, default)
    return default if value is None else value


def build_vllm_engine(
    section: Any,
    model_path: str,
    *,
    seed: int,
    log_dir: str | Path | None,
    max_model_len: int | None,
    say: Callable[[str], None] | None = None,
) -> VllmEngine:
    """Start ``vllm serve model_path`` as the ``engine.vllm`` section says and return its engine.

    The log is ``log_dir/vllm_server.log`` (a new temporary directory when ``log_dir`` is empty).
    Raises ``VllmNotInstalled`` before starting anything when vLLM is missing, ``VllmStartError``
    when the server does not come up.
    """
    say = say or (lambda msg: print(msg, flush=True))
    launcher = find_launcher(_setting(section, "executable", ""))
    requested = int(_setting(section, "tensor_parallel_size", 1))
    tensor_parallel = clamp_tensor_parallel(requested, visible_gpu_count())
    if tensor_parallel != requested:
        say(f"astuner: vllm tensor_parallel_size {requested} -> {tensor_parallel} (visible GPUs)")
    options = ServeOptions(
        served_model_name=str(model_path),
        seed=int(_setting(section, "seed", seed)),
        max_model_len=max_model_len,
        host=_setting(section, "host", "127.0.0.1"),
        tensor_parallel_size=tensor_parallel,
        gpu_memory_utilization=float(_setting(section, "gpu_memory_utilization", 0.9)),
        max_num_seqs=int(_setting(section, "max_num_seqs", 0)),
        enforce_eager=bool(_setting(section, "enforce_eager", True)),
        dtype=_setting(section, "dtype", "auto"),
        extra_args=list(_setting(section, "extra_args", [])),
    )
    directory = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="astuner-vllm-"))
    server = VllmServer(
        launcher,
        options,
        port=int(_setting(section, "port", 18000)),
        log_path=directory / LOG_NAME,
        startup_timeout_s=float(_setting(section, "startup_timeout_s", 1800.0)),
        say=say,
    )
    engine = VllmEngine(
        server,
        model_path,
        weights_root=directory / WEIGHTS_DIR,
        request_timeout_s=float(_setting(section, "request_timeout_s", 600.0)),
    )
    return engine.start()
