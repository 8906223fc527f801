#!/usr/bin/env bash
# The issue-16 stages still to run, one after another in the background on a warm GPU machine, so
# that device calls only start it and then follow it (a call may last 10 minutes; the sequence
# takes longer). After `benchmarks/trinity_gpu.sh install` in /tmp/repo, with the carried SFT
# checkpoint + data in /tmp/tdc:
#
#   (setsid nohup bash benchmarks/trinity_gpu_sequence.sh start > /tmp/sequence.log 2>&1 < /dev/null &)
#   REAL_OUT=$OUT bash benchmarks/trinity_gpu_sequence.sh follow 540    # in this and each later call
#
# `follow N` waits up to N seconds (or until the sequence is done), prints the progress and the tail
# of each stage's output, and packs /tmp/out into $REAL_OUT/out.tgz (the device call's $OUT), where
# benchmarks/trinity_gpu_report.py reads it after unpacking. STAGES overrides the order below.
# The machine goes back ~30 s after a call ends: send the next `follow` at once.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=/tmp/out
mkdir -p "$OUT"
progress=$OUT/sequence_progress.txt
STAGES=${STAGES:-randmodel kill vllm speed tests}

run_stage() {  # the environment each stage runs with
  case $1 in
  speed) DEADLINE=570 bash benchmarks/trinity_gpu.sh speed ;;
  randmodel) TD=/tmp/tdc bash benchmarks/trinity_gpu.sh randmodel ;;
  # Trinity on the real-size model: the step time, then --kill on the live run after 4 synced steps
  kill) TD=/tmp/td_rand STEPS=20 KILL_AT=4 DEADLINE=900 STALL=240 \
          TRINITY_SET=astuner.trainer_common.val_before_train=false bash benchmarks/trinity_gpu.sh kill ;;
  # local + vLLM on the same model, with CUDA graphs as Trinity's explorer has them (its enforce_eager: false)
  vllm) TD=/tmp/td_rand STEPS=4 DEADLINE=540 VLLM_SET="astuner.rollout.engine.vllm.enforce_eager=false astuner.trainer_common.val_before_train=false" \
          bash benchmarks/trinity_gpu.sh vllm ;;
  local) TD=/tmp/td_rand STEPS=4 DEADLINE=300 bash benchmarks/trinity_gpu.sh local ;;
  tests) TD=/tmp/tdc bash benchmarks/trinity_gpu.sh tests ;;
  *) echo "unknown stage $1"; return 2 ;;
  esac
}

case ${1:-} in
start)
  for stage in $STAGES; do
    echo "== $(date -u +%T) $stage" >> "$progress"
    run_stage "$stage" > "$OUT/$stage.stdout" 2>&1
    rc=$?
    echo "== $(date -u +%T) $stage exit $rc" >> "$progress"
  done
  echo "== $(date -u +%T) done" >> "$progress"
  ;;
follow)
  end=$((SECONDS + ${2:-540}))
  while [ $SECONDS -lt "$end" ] && ! grep -q "^== .* done$" "$progress" 2>/dev/null; do sleep 10; done
  cat "$progress"
  for f in "$OUT"/*.stdout; do [ -e "$f" ] && { echo "---- $f"; tail -n 8 "$f"; }; done
  tar -czf "${REAL_OUT:?set REAL_OUT to the OUT folder of the device call}/out.tgz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
  ;;
*) echo "usage: trinity_gpu_sequence.sh start | follow SECONDS" >&2; exit 2 ;;
esac
