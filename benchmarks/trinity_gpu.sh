#!/usr/bin/env bash
# The issue-16 runs on one GPU machine, one stage per device call (each fits the 10-minute limit):
#
#   bash benchmarks/trinity_gpu.sh install      unpack the carried wheel set (/tmp/parts), install it into
#                                                /tmp/site, check the imports, print versions and the GPU
#   bash benchmarks/trinity_gpu.sh experiment   the tool-discipline experiment, profile gpu, into /tmp/td:
#                                                teacher traces, SFT (the checkpoint every later stage starts
#                                                from) and GRPO with --backbone=local (the local baseline)
#   bash benchmarks/trinity_gpu.sh trinity      astuner --backbone=trinity --with-ray from /tmp/td/sft/model,
#                                                the same config and data, STEPS GRPO steps (default 20)
#                                                (TRINITY_SET="k=v ..." adds overrides, e.g.
#                                                trinity.trainer.max_token_len_per_gpu=1024)
#   bash benchmarks/trinity_gpu.sh kill         `trinity` again, ended while it runs by `launcher.py --kill` once
#                                                KILL_AT steps have synced (default 5), or once its log has a line
#                                                matching KILL_AFTER (a regex); the processes before and after
#   bash benchmarks/trinity_gpu.sh local        the same with --backbone=local (transformers engine), STEPS steps
#   bash benchmarks/trinity_gpu.sh speed        benchmarks/local_vs_trl.py on a random-init Qwen2.5-0.5B-shaped model
#                                                (TOK=the Qwen2.5 tokenizer dir, default .bench/qwen2_5;
#                                                IMPLS=rows, default astuner,astuner-vllm,astuner-vllm-graphs,trl;
#                                                TRL from .whl/trl-*.whl into /tmp/site_trl, --no-deps, when carried)
#   bash benchmarks/trinity_gpu.sh tests        the gpu test tier (tests/backbone/trinity/test_trinity_gpu.py) with
#                                                ASTUNER_GPU_TD=$TD; pytest from .whl/ into /tmp/site_test
#   bash benchmarks/trinity_gpu.sh randmodel    that random model with TD's data into TDR (default /tmp/td_rand),
#                                                so that TD=$TDR runs the stages below on a real-size model
#   bash benchmarks/trinity_gpu.sh vllm         the same with --backbone=local and rollout.engine.type=vllm (bf16,
#                                                half the card; WEIGHT_SYNC=reload|restart picks the weight sync;
#                                                VLLM_SET="k=v ..." adds overrides)
#
# Shipping the stack (here, once): scripts/gpu_wheelhouse.sh; then
#   mkdir -p /tmp/gpu_carry/debs && cp -r .gpu_wheelhouse /tmp/gpu_carry/wheels
#   (cd /tmp/gpu_carry/debs && apt-get download bubblewrap)      # the sandbox's bwrap, unpacked to /tmp/bwrap
#   ../shared/device/chunked_carry.sh /tmp/gpu_carry 60           # 9 parts; one device call each, back to back
# and the install stage with SUM=<the stream sha256 it printed> in the call that carries the last part.
# Run from the repository root on the GPU machine; every stage after `install` needs the same warm machine
# (/tmp/site and /tmp/td live there). The machine goes back after ~30 s idle: a stage that ends while you
# are not ready to send the next call loses both (seen 2026-12-06). TD=DIR points the later stages at an
# SFT checkpoint + data carried from elsewhere (DIR/sft/model, DIR/data/{train,val}.jsonl). GPUS=N (default 1)
# gives the runs N GPUs of the machine (trinity: colocate for 1, explorer/trainer split for more). Each stage writes its log, a GPU-memory trace (nvidia-smi every
# 0.5 s) and the processes left afterwards (`ps`, which must show no ray, raylet, gcs_server or vllm) under
# $OUT/<stage>/, and packs the run directory into $OUT/<stage>.tgz. benchmarks/trinity_gpu_report.py turns
# those into docs/results/trinity_gpu.{md,json}.
set -uo pipefail
stage=${1:?usage: trinity_gpu.sh install|experiment|trinity|kill|local|vllm|speed|randmodel|tests}
STEPS=${STEPS:-20}
OUT=${OUT:-/tmp/out}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PYTHONPATH=/tmp/site:$repo PATH=/tmp/site/bin:/tmp/bwrap/usr/bin:$PATH PYTHONUNBUFFERED=1
export AGENTSCOPE_DISABLE_CONSOLE_OUTPUT=true VLLM_USE_FLASHINFER_SAMPLER=0
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
dir=$OUT/$stage
mkdir -p "$dir"

TD=${TD:-/tmp/td}
CONF=tutorial/example_math_agent/tool_discipline.yaml
DATA=(
  "astuner.task_reader.dataset_file.training.file_path=$TD/data/train.jsonl"
  "astuner.task_reader.dataset_file.validation.file_path=$TD/data/val.jsonl"
  "astuner.model.path=$TD/sft/model"
  "astuner.python_tool.pool_size=16"
  "astuner.trainer_common.test_freq=$STEPS"
  "astuner.trainer_common.n_gpus_per_node=${GPUS:-1}"
)

gpu_trace() { nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 500 > "$dir/gpu_mem_$1.csv" 2>/dev/null & echo $!; }
ours() {  # the processes of a run: Ray, vLLM, astuner, sandboxes (this script and grep aside)
  ps -eo pid,ppid,etimes,cmd | grep -E 'ray|raylet|gcs_server|vllm|launcher.py|astuner|bwrap' | grep -v -E 'grep|trinity_gpu.sh'
}
leftovers() {  # processes a run must not leave behind
  sleep 3
  ours > "$dir/leftover_ps.txt"
  echo "leftover processes: $(wc -l < "$dir/leftover_ps.txt")"; cat "$dir/leftover_ps.txt"
}
DEADLINE=${DEADLINE:-540}   # seconds a run may take before SIGTERM (then SIGKILL 20 s later)
STALL=${STALL:-0}           # seconds without a new log byte after which the run is diagnosed and stopped (0: off)
diagnose() {  # what a stalled run is doing: Python stacks (py-spy), Ray's view, the GPU
  local f=$dir/stall_diagnosis.txt p
  { echo "== stalled: no log output for $STALL s at $(date -u +%T)"; nvidia-smi
    timeout 30 ray status 2>&1; timeout 30 ray list actors --detail 2>&1 | head -200
    timeout 30 ray list placement-groups --detail 2>&1 | head -100
    for p in $(pgrep -f 'python|ray::'); do echo "== py-spy $p $(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-200)"
      timeout 20 py-spy dump --pid "$p" 2>&1 | head -80; done; } > "$f" 2>&1
  echo "stall diagnosis: $f"; grep -E '^== |Thread|\(.*\.py' "$f" | head -150
}
timed() {  # timed NAME CMD...: run under the deadline (and the stall watchdog), log, report wall time and exit code
  local name=$1; shift
  local t0=$SECONDS trace; trace=$(gpu_trace "$name")
  echo "+ $*" | tee "$dir/$name.cmd"
  timeout -k 20 "$DEADLINE" "$@" > "$dir/$name.log" 2>&1 &
  local pid=$! size=-1 still=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    local now; now=$(stat -c %s "$dir/$name.log" 2>/dev/null || echo 0)
    if [ "$now" = "$size" ]; then still=$((still + 5)); else still=0; size=$now; fi
    if [ "$STALL" -gt 0 ] && [ "$still" -ge "$STALL" ]; then
      diagnose; pkill -TERM -P "$pid"; sleep 15; pkill -KILL -P "$pid"; break
    fi
  done
  wait "$pid"; local rc=$?
  kill "$trace" 2>/dev/null
  echo "$name: exit $rc after $((SECONDS - t0)) s; peak GPU MiB $(cut -d, -f2 "$dir/gpu_mem_$name.csv" | tr -dc '0-9\n' | sort -n | tail -1)"
  tail -n 25 "$dir/$name.log"
  return $rc
}

case $stage in
install)
  t0=$SECONDS
  if [ -n "${SUM:-}" ] && [ "$(cat /tmp/parts/* | sha256sum | cut -c1-16)" != "$SUM" ]; then
    echo "install: the parts in /tmp/parts do not add up to sha256 $SUM: $(ls /tmp/parts)"; exit 1
  fi
  mkdir -p /tmp/carried && cat /tmp/parts/* | tar -xf - -C /tmp/carried || exit 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/carried/wheels/*.whl 2>&1 | tail -3
  for d in /tmp/carried/debs/*.deb; do [ -e "$d" ] && dpkg -x "$d" /tmp/bwrap; done
  echo "install: $((SECONDS - t0)) s"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 - <<'EOF' 2>&1 | tee "$dir/versions.txt"
import importlib, shutil
for name in ("torch", "numpy", "transformers", "vllm", "ray", "trinity", "verl", "agentscope", "datasets", "pandas", "pyarrow", "numba"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), m.__file__)
    except Exception as exc:
        print(name, "FAILED", type(exc).__name__, exc)
print("bwrap", shutil.which("bwrap"))
import trinity.cli.launcher, vllm.entrypoints.openai.api_server, verl.trainer.ppo.ray_trainer  # noqa: E401,F401
print("imports ok")
EOF
  ;;
experiment)
  timed experiment python3 -m experiments.tool_discipline --profile gpu --out "$TD"
  rc=$?
  leftovers
  tar -czf "$OUT/experiment.tgz" -C "$TD" results.json results.md grpo/metrics.jsonl grpo/yaml_backup.yaml curve.png 2>/dev/null
  tar -czf "$OUT/sft_checkpoint.tgz" -C "$TD" sft/model data 2>/dev/null   # comes back if under 16 MiB
  exit $rc
  ;;
trinity)
  rm -rf /tmp/runs/trinity
  STALL=${STALL:-150} timed trinity python3 launcher.py --conf "$CONF" --backbone=trinity --with-ray --exp-dir /tmp/runs/trinity \
    "${DATA[@]}" "trinity.buffer.total_steps=$STEPS" "astuner.trainer_common.checkpoint_base_dir=/tmp/runs/trinity/ckpt" \
    ${TRINITY_SET:-}
  rc=$?
  leftovers
  python3 launcher.py --kill ray > /dev/null 2>&1   # after a deadline: stop what the run left, then look again
  leftovers
  tar -czf "$OUT/trinity.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' -C /tmp/runs trinity 2>/dev/null
  exit $rc
  ;;
kill)  # --kill on the live processes of a Trinity run (Ray node, vLLM engines, runners, sandboxes)
  rm -rf /tmp/runs/kill
  STALL=${STALL:-150} timed kill python3 launcher.py --conf "$CONF" --backbone=trinity --with-ray --exp-dir /tmp/runs/kill \
    "${DATA[@]}" "trinity.buffer.total_steps=$STEPS" "astuner.trainer_common.checkpoint_base_dir=/tmp/runs/kill/ckpt" \
    ${TRINITY_SET:-} &
  driver=$!
  synced() { grep -cE 'Explorer sync_weights at step [1-9][0-9]* finished' "$dir/kill.log" 2>/dev/null; }
  until ! kill -0 "$driver" 2>/dev/null || grep -qE "${KILL_AFTER:-Explorer sync_weights at step ${KILL_AT:-5} finished}" "$dir/kill.log" 2>/dev/null; do sleep 5; done
  ours > "$dir/live_ps.txt"
  echo "kill: $(synced) steps synced; $(wc -l < "$dir/live_ps.txt") live processes; launcher.py --kill 'ray|vllm|python'"
  t0=$SECONDS
  python3 launcher.py --kill 'ray|vllm|python' 2>&1 | tee "$dir/kill_cmd.log"
  for _ in $(seq 90); do kill -0 "$driver" 2>/dev/null || break; sleep 1; done
  if kill -0 "$driver" 2>/dev/null; then echo "kill: the run was still alive 90 s after --kill; SIGTERM to it"; pkill -TERM -P "$driver"; fi
  wait "$driver"; rc=$?
  echo "kill: the run exited $rc, $((SECONDS - t0)) s after --kill"
  leftovers
  tar -czf "$OUT/kill.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' -C /tmp/runs kill 2>/dev/null
  exit $rc
  ;;
tests)  # the gpu tier, one command
  for w in "$repo"/.whl/{pytest,pytest_timeout,pluggy,iniconfig}-*.whl; do
    [ -e "$w" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_test "$w"
  done
  ASTUNER_GPU_TD=$TD PYTHONPATH=/tmp/site_test:$PYTHONPATH python3 -m pytest tests/backbone/trinity/test_trinity_gpu.py -m gpu -v -rs 2>&1 | tee "$dir/pytest.log"
  exit "${PIPESTATUS[0]}"
  ;;
local)  # the local backbone with its in-process transformers engine, from the same checkpoint and data
  rm -rf /tmp/runs/local
  timed local python3 launcher.py --conf "$CONF" --backbone=local --exp-dir /tmp/runs/local "${DATA[@]}" \
    "astuner.local.max_steps=$STEPS"
  rc=$?
  leftovers
  tar -czf "$OUT/local.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' -C /tmp/runs local 2>/dev/null
  exit $rc
  ;;
speed)  # the issue's speed targets on a real-size model: local (transformers), local + vLLM, TRL, same card
  TOK=${TOK:-$repo/.bench/qwen2_5}
  # TRL goes into its own directory, on the path of this stage only: with TRL 1.16 importable, Trinity
  # 0.6.0's trainer imports trl.experimental.ppo, which 1.16 lacks, and fails (seen 2026-12-06 late).
  for w in "$repo"/.whl/trl-*.whl; do
    [ -e "$w" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_trl "$w"
  done
  PYTHONPATH=/tmp/site_trl:$PYTHONPATH timed speed python3 benchmarks/local_vs_trl.py --tokenizer "$TOK" \
    --steps "${BENCH_STEPS:-6}" --impls "${IMPLS:-astuner,astuner-vllm,astuner-vllm-graphs,trl}" --out "$dir/local_vs_trl.json"
  rc=$?
  leftovers
  exit $rc
  ;;
randmodel)  # a random-init Qwen2.5-0.5B-architecture model (bf16, the real tokenizer) beside TD's data
  TOK=${TOK:-$repo/.bench/qwen2_5}
  TDR=${TDR:-/tmp/td_rand}
  rm -rf "$TDR" && mkdir -p "$TDR/sft" && cp -r "$TD/data" "$TDR/data" || exit 1
  python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks'); from local_vs_trl import make_model
make_model(Path('$TDR/sft/model'), Path('$TOK'))" || exit 1
  du -sh "$TDR/sft/model"
  ;;
vllm)  # WEIGHT_SYNC=reload (default) or restart: how the updated weights reach the server (engine.vllm.weight_sync)
  ws=${WEIGHT_SYNC:-reload}
  rm -rf "/tmp/runs/vllm_$ws"
  timed "vllm_$ws" python3 launcher.py --conf "$CONF" --backbone=local --exp-dir "/tmp/runs/vllm_$ws" "${DATA[@]}" \
    "astuner.local.max_steps=$STEPS" astuner.rollout.engine.type=vllm "astuner.rollout.engine.vllm.weight_sync=$ws" \
    astuner.rollout.engine.vllm.gpu_memory_utilization=0.5 astuner.rollout.engine.vllm.dtype=bfloat16 ${VLLM_SET:-}
  rc=$?
  leftovers
  tar -czf "$OUT/vllm_$ws.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' -C /tmp/runs "vllm_$ws" 2>/dev/null
  exit $rc
  ;;
*) echo "unknown stage $stage" >&2; exit 2 ;;
esac
