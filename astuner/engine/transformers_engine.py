"""In-process Hugging Face engine that batches concurrent requests.

Rollouts run many agents concurrently on one event loop, each making one call at a time. Running
those calls one by one would leave a GPU idle, so ``generate`` only queues the request; a single
worker thread takes every request waiting (up to ``max_batch_size``), left-pads them into one
batch and decodes them together with a KV cache. Results go back to each awaiting coroutine via
``loop.call_soon_threadsafe``. Requests that arrive while a batch runs wait for the next batch.

Sampling, per request: temperature 0 is greedy; otherwise ``top_k`` / ``top_p`` truncate the
distribution used to *choose* the token. The reported logprob is always the token's
log-probability under ``log_softmax(logits / temperature)`` (``log_softmax(logits)`` when
greedy), without the truncation: the trainer recomputes exactly that quantity, so the importance
ratio starts at 1. Generation ends on a token in ``params.stop_token_ids`` (included in the
completion with its logprob, finish ``"stop"``) or after ``max_tokens`` (finish ``"length"``);
the model's own eos is not a stop token unless the caller lists it.

Not guaranteed: bit-identical results between batched and unbatched runs (padding changes the
floating-point reduction order, which can flip a near-tie, more often in bfloat16), nor a seeded
request reproducing across devices or library versions. Nothing bounds prompt + completion
length to the model's context window.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from astuner.engine.base import Completion, EngineError, SamplingParams
from astuner.engine.graphed_decode import GraphedDecoder, GraphUnsupported
from astuner.engine.sampling import sample


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    seed: int = 0
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None

    def take(self, token: int, logprob: float) -> bool:
        """Append a generated token; False once it ends the completion (stop token or max_tokens)."""
        self.token_ids.append(token)
        self.logprobs.append(logprob)
        if token in self.params.stop_token_ids:
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.params.max_tokens:
            self.finish_reason = "length"
        return self.finish_reason is None


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use 'auto', 'float64', 'float32', 'bfloat16' or 'float16'")
    return resolved


def _dtype_kwarg() -> str:
    """``from_pretrained`` takes ``dtype`` from transformers 4.56 on, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def cache_kwarg(model: Any) -> str:
    """The name of the keyword that passes a KV cache into ``model``'s forward: ``"cache"`` or
    ``"past_key_values"``.

    Why: transformers 5 renamed ``past_key_values`` to ``cache``, and astuner supports releases on
    both sides of the rename, so code that feeds a cache back in (this engine's decode steps, the
    CUDA-graph decoder, the tool-discipline experiment's shared-prefix SFT loss) asks the model
    instead of naming the keyword. The real model's signature is read (a PEFT wrapper's
    ``get_base_model()``), not the wrapper's, whose forward takes ``**kwargs``.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _deliver(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    """Runs on the event loop's thread; a cancelled caller simply gets nothing."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class TransformersEngine:
    """Batched token-in/token-out generation with an in-process ``AutoModelForCausalLM``.

    ``model`` / ``tokenizer`` may be passed in to share them (the local backbone trains the same
    object); a passed model stays on its device and dtype. Attributes ``model``, ``tokenizer``,
    ``device``, ``batches_run`` (batches decoded so far) and ``largest_batch`` are public.
    ``lock`` is held while a batch decodes; hold it yourself while changing the weights in place.
    """

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        max_batch_size: int = 32,
        seed: int = 0,
        model: Any = None,
        tokenizer: Any = None,
        batch_window_s: float = 0.005,
        max_batch_wait_s: float = 0.05,
        cuda_graphs: bool = True,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if model is None:
            from transformers import AutoModelForCausalLM

            self.device = _resolve_device(device)
            model = AutoModelForCausalLM.from_pretrained(model_path, **{_dtype_kwarg(): _resolve_dtype(dtype, self.device)})
            model.to(self.device)
            model.eval()
        else:
            self.device = next(model.parameters()).device
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = model
        self.tokenizer = tokenizer
        self.model_path = model_path
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.max_batch_wait_s = max_batch_wait_s
        self.batches_run = 0
        self.largest_batch = 0
        self.lock = threading.Lock()
        pad = getattr(tokenizer, "pad_token_id", None)
        self._pad_id = pad if pad is not None else 0
        self._cache_kwarg = cache_kwarg(model)
        self._graphed = (
            GraphedDecoder(model, self._cache_kwarg, max_batch_size) if cuda_graphs and self.device.type == "cuda" else None
        )
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._worker, name="astuner-transformers-engine", daemon=True)
        self._thread.start()

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *, context: dict | None = None) -> Completion:
        """Queue one prompt for the next batch and wait for its completion."""
        if self._closed:
            raise EngineError("TransformersEngine is closed")
        if not prompt_ids:
            raise EngineError("TransformersEngine got an empty prompt")
        if params.max_tokens <= 0:
            return Completion(token_ids=[], logprobs=[], finish_reason="length")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Request(prompt_ids=list(prompt_ids), params=params, future=future, loop=loop))
        return await future

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy new weights into the model between batches."""
        with self.lock:
            self.model.load_state_dict(state)

    def reload(self, model: Any) -> None:
        """Swap in another model object (same tokenizer) between batches."""
        with self.lock:
            self.model = model
            self.device = next(model.parameters()).device
            self._cache_kwarg = cache_kwarg(model)
            if self._graphed is not None:
                self._graphed = GraphedDecoder(model, self._cache_kwarg, self.max_batch_size)
            if self._generator.device != self.device:
                self._generator = torch.Generator(device=self.device).manual_seed(int(self._generator.initial_seed()))

    def updating(self) -> threading.Lock:
        """``PolicyEngine``: the decode lock, so that an in-place update never overlaps a batch."""
        return self.lock

    def publish(self, model: Any, tokenizer: Any, name: str) -> None:
        """``PolicyEngine``: nothing to send; this engine decodes with the trained model object itself."""
        return None

    def close(self) -> None:
        """Stop the worker after its current batch; queued requests fail with ``EngineError``."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=600)

    def _worker(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch, stop = self._collect(first)
            batch = [r for r in batch if not r.future.cancelled()]
            if batch:
                self._run_and_deliver(batch)
            if stop:
                break
        self._fail_pending()

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """Everything queued, and what keeps arriving with gaps under ``batch_window_s`` (at most
        ``max_batch_wait_s`` in all): concurrent rollouts render their prompts one after another
        on the event loop, so their requests trickle in a millisecond or so apart."""
        batch = [first]
        deadline = time.monotonic() + self.max_batch_wait_s
        while len(batch) < self.max_batch_size:
            remaining = min(self.batch_window_s, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._send(item, None, EngineError("TransformersEngine was closed before this request ran"))

    def _send(self, request: _Request, result: Completion | None, error: BaseException | None) -> None:
        try:
            request.loop.call_soon_threadsafe(_deliver, request.future, result, error)
        except RuntimeError:
            pass

    def _run_and_deliver(self, batch: list[_Request]) -> None:
        try:
            with self.lock:
                was_training = self.model.training
                self.model.eval()
                try:
                    with torch.inference_mode():
                        self._decode(batch)
                finally:
                    self.model.train(was_training)
        except Exception as exc:
            error = EngineError(f"TransformersEngine batch of {len(batch)} failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            for request in batch:
                self._send(request, None, error)
            return
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for request in batch:
            completion = Completion(
                token_ids=request.token_ids, logprobs=request.logprobs, finish_reason=request.finish_reason or "length"
            )
            self._send(request, completion, None)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, cache: Any):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
        )
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        logits = out.logits[:, -1, :]
        return (logits if logits.dtype == torch.float64 else logits.float()), new_cache

    def _decode(self, batch: list[_Request]) -> None:
        """Prefill the left-padded batch, then decode step by step, dropping finished rows."""
        for request in batch:
            if request.params.seed is not None:
                request.seed = request.params.seed
            else:
                request.seed = int(torch.randint(0, 2**62, (1,), generator=self._generator, device=self.device).item())
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, request in enumerate(batch):
            n = len(request.prompt_ids)
            input_ids[row, width - n :] = torch.tensor(request.prompt_ids, dtype=torch.long)
            attention_mask[row, width - n :] = 1
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        if self._graphed is not None:
            try:
                self._decode_graphed(batch, input_ids, attention_mask)
                return
            except GraphUnsupported as exc:
                warnings.warn(f"TransformersEngine: CUDA-graph decoding unavailable, decoding eagerly: {exc}", stacklevel=2)
                self._graphed = None
                for request in batch:
                    request.token_ids, request.logprobs, request.finish_reason = [], [], None
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(input_ids, attention_mask, position_ids, None)
        next_position = position_ids[:, -1]
        live = list(batch)
        while True:
            tokens, logprobs = self._choose(logits, live)
            keep: list[int] = []
            for row, (request, token, logprob) in enumerate(zip(live, tokens.tolist(), logprobs.tolist())):
                if request.take(token, logprob):
                    keep.append(row)
            if not keep:
                return
            if len(keep) < len(live):
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                cache.batch_select_indices(index)
                attention_mask = attention_mask[index]
                next_position = next_position[index]
                tokens = tokens[index]
                live = [live[row] for row in keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(live), 1))], dim=1)
            next_position = next_position + 1
            logits, cache = self._forward(tokens[:, None], attention_mask, next_position[:, None], cache)

    def _decode_graphed(self, batch: list[_Request], input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Static-cache decode replaying a captured CUDA graph; finished rows ride along unread."""

        def step(logits: torch.Tensor, _positions: torch.Tensor) -> torch.Tensor | None:
            tokens, logprobs = self._choose(logits, batch)
            going = False
            for request, token, logprob in zip(batch, tokens.tolist(), logprobs.tolist()):
                if not request.finish_reason and request.take(token, logprob):
                    going = True
            return tokens if going else None

        self._graphed.decode(input_ids, attention_mask, max(r.params.max_tokens for r in batch), step)

    def _choose(self, logits: torch.Tensor, live: list[_Request]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick one token per row (vectorised; see ``astuner.engine.sampling``)."""
        device = logits.device
        params = [r.params for r in live]
        return sample(
            logits,
            torch.tensor([p.temperature for p in params], dtype=torch.float32, device=device),
            torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device),
            torch.tensor([p.top_k for p in params], dtype=torch.long, device=device),
            torch.tensor([r.seed for r in live], dtype=torch.long, device=device),
            torch.tensor([len(r.token_ids) for r in live], dtype=torch.long, device=device),
        )
