#!/usr/bin/env bash
# Wall time of CI as a new contributor gets it: a fresh clone of this repository's HEAD, a fresh
# virtual environment (nothing installed, pip's cache off), then `bash .ci/run`, whose phase lines
# (`ci: phase ... took N s`, pytest's `tiers:` line and the total) are the result.
#
#   benchmarks/ci_wall_time.sh            # on an otherwise idle machine
#   benchmarks/ci_wall_time.sh --busy     # with one core kept busy by a spinning process throughout
#
# The log goes to $LOG (default /tmp/ci_wall_time[_busy].log); the last lines are printed. The
# shared data (../shared/tokenizers, ../shared/data/gsm8k) are found next to this checkout, as in CI.
# Not measured: a machine whose apt/PyPI mirrors are slow; the apt phase reinstalls nothing that
# is already there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
busy=0
if [[ "${1:-}" == "--busy" ]]; then busy=1; fi
suffix=""
if [[ $busy == 1 ]]; then suffix="_busy"; fi
log="${LOG:-/tmp/ci_wall_time$suffix.log}"
work="$(mktemp -d)"
spinner=""
cleanup() {
  if [[ -n "$spinner" ]]; then kill "$spinner" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
commit="$(git -C "$repo" rev-parse --short HEAD)"
git clone -q "$repo" "$work/astuner"
python -m venv "$work/venv"
if [[ $busy == 1 ]]; then
  python -c 'while True: pass' &
  spinner=$!
fi
export ASTUNER_TEST_TOKENIZERS="${ASTUNER_TEST_TOKENIZERS:-$(dirname "$repo")/shared/tokenizers}"
export ASTUNER_TEST_GSM8K="${ASTUNER_TEST_GSM8K:-$(dirname "$repo")/shared/data/gsm8k}"
start=$SECONDS
set +e
( source "$work/venv/bin/activate" && export PIP_NO_CACHE_DIR=1 && cd "$work/astuner" && bash .ci/run ) >"$log" 2>&1
code=$?
set -e
echo "commit $commit, busy=$busy, exit $code, wall $((SECONDS - start)) s; log $log"
grep -E "^ci: |^tiers: |passed|failed" "$log" | tail -15
exit $code
