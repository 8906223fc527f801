#!/usr/bin/env bash
# Check the transformers floor that pyproject.toml declares, with one command.
#
# Why: CI installs constraints.txt (the newest tested transformers), so nothing else ever runs
# astuner against the oldest transformers that `pip install astuner` accepts. This script does.
#
# What it does: a fresh virtual environment (default /tmp/tfloor; CHECK_FLOOR_VENV to move it) with
# CPython 3.11, CPU torch 2.13.0 (as README says), astuner itself (--no-deps), then astuner's base and
# `test` dependencies with transformers pinned at the floor. Every other package keeps its
# constraints.txt version, except the ones the floor's transformers constrains itself (tokenizers,
# huggingface_hub, hf-xet), which pip resolves. Then the tests that exercise transformers run: chat
# templates and token-exactness with the real Qwen2.5/Qwen3 tokenizers (../shared/tokenizers, or
# ASTUNER_TEST_TOKENIZERS), the tiny model, the transformers engine, the local backbone.
#
# Usage: scripts/check_floor.sh [VERSION]   (default: the floor in pyproject.toml)
# Exit status: pytest's. The last lines give pytest's summary (pass counts), then the versions installed.
# Last result: docs/benchmarks.md, "Dependency floors".
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
floor="${1:-$(sed -n 's/^ *"transformers>=\([0-9][0-9.]*\)".*/\1/p' pyproject.toml)}"
if [ -z "$floor" ]; then
  echo "check_floor: no \"transformers>=X\" line in pyproject.toml; pass a version" >&2
  exit 2
fi
venv="${CHECK_FLOOR_VENV:-/tmp/tfloor}"
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
  echo "check_floor: $venv exists and is not a virtual environment; not removing it" >&2
  exit 2
fi
rm -rf "$venv"
python3.11 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "torch==2.13.0"
"$py" -m pip install -q --no-deps -e "$repo"
"$py" - "$repo/pyproject.toml" > "$venv/requirements.txt" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
EOF
grep -v -i -E '^(#|torch==|transformers==|tokenizers==|huggingface[-_]hub==|hf[-_]xet==)' constraints.txt \
  > "$venv/keep.txt"
"$py" -m pip install -q -r "$venv/requirements.txt" "transformers==$floor" -c "$venv/keep.txt"
"$py" -m pip check || true
tests=(
  tests/test_model_tuner.py                  # chat templates around assistant turns, real Qwen2.5/Qwen3 tokenizers
  tests/test_token_exact.py                  # token-exact prompts and samples with the real tokenizers
  tests/test_tiny_model.py                   # the offline tiny model and its tokenizer
  tests/engine/test_engines.py               # the transformers engine (and the others)
  tests/backbone/test_local_backbone.py
  tests/engine/test_batch_invariance.py
  tests/test_algorithm.py
  tests/backbone/test_debug_e2e.py           # the quick start's debug run with the tiny model's tokenizer
  tests/experiments/test_tool_discipline.py  # SFT on sample masks, teacher traces with the tiny model
  tests/engine/test_vllm_debug.py            # the vllm engine's token handling against a stub server
)
status=0
(cd "$repo" && "$py" -m pytest -p no:cacheprovider "${tests[@]}") || status=$?
echo "check_floor: $(date -u +%Y-%m-%d), CPython $("$py" -c 'import platform; print(platform.python_version())'), $("$py" - <<'EOF'
from importlib.metadata import version
print(", ".join(f"{name} {version(name)}" for name in ("transformers", "tokenizers", "huggingface_hub", "torch", "datasets", "peft", "agentscope")))
EOF
), pytest exit $status"
exit "$status"
