#!/usr/bin/env bash
# Build the wheel set that `--backbone=trinity --with-ray` and `engine: vllm` need on the offline GPU
# machine image (CPython 3.12, x86-64 Linux, torch 2.11.0+cu130 already installed), here, where PyPI
# is reachable. Run it on x86-64 Linux from anywhere; the wheels land in <repo>/.gpu_wheelhouse/
# (ignored by git). It needs a CPython 3.12 interpreter (GPU_WHEELHOUSE_PYTHON, else python3.12, else
# a pyenv 3.12): pip evaluates environment markers such as `python_version > "3.11"` against the
# interpreter that runs it, whatever --python-version says.
#
# What it ships (less the wheels of scripts/gpu_wheelhouse_drop.txt, which the run does not import or the
# image already has; GPU_WHEELHOUSE_FULL=1 keeps them): astuner's dependencies with the [trinity] and [vllm] extras of pyproject.toml, vLLM
# pinned to 0.23.0 (the last of Trinity 0.6.0's range, the one built for torch 2.11.0), every other
# version taken from constraints.txt (the CI lock) where vLLM allows it, resolved for CPython 3.12 on
# manylinux x86-64. Left out: torch, torchvision, torchaudio, triton and the nvidia-* wheels torch
# 2.11.0 itself requires (cuDNN, cuBLAS, NCCL, ...) -- ASSUMED present on the image at the versions
# torch 2.11.0 pins (its python3 has torch 2.11.0+cu130, torchvision 0.26.0, torchaudio 2.11.0).
# Everything else is shipped: transformers too (the image has one, but shipping the CI lock's keeps
# tokenizers/huggingface-hub consistent with it), the small cuda-* Python bindings, and the CUDA
# wheels only vLLM or FlashInfer need (nvidia-cutlass-dsl, nvidia-cudnn-frontend, nvidia-cuda-nvcc...).
#
# Deviations from pyproject.toml and the CI lock, forced by the published metadata:
# * numpy 2 instead of [trinity]'s numpy==1.26.4: every vLLM in Trinity 0.6.0's range (0.19.1-0.23.0)
#   requires opencv-python-headless>=4.13, whose wheels require numpy>=2, while verl 0.8.0 (pinned by
#   [trinity]) declares numpy<2 -- `pip install ".[trinity,vllm]"` is ResolutionImpossible. verl 0.8.0
#   and trinity-rft 0.6.0 are kept: their own requirements are resolved without numpy/verl and their
#   wheels are downloaded as they are (the GPU install is --no-deps).
# * fastapi below 0.137 (vLLM 0.23.0's cap) instead of the lock's.
# Not verified: that verl 0.8.0 runs under numpy 2 (verl 0.9 moved to numpy>=2); this set has not been
# installed or run on a GPU machine yet.
#
# The install line it prints (run on the GPU machine, in the repository root):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu_wheelhouse/*.whl
#   export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
# /tmp/site goes in front of the image's site-packages, so its numpy 2, pandas and pyarrow win; the
# `ray` command astuner starts comes from /tmp/site/bin. The set is far over one device call's 64 MiB
# carry limit (FlashInfer's and vLLM's wheels are hundreds of MiB each): ship it in parts with
# ../shared/device/chunked_carry.sh .gpu_wheelhouse
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu_wheelhouse
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

VLLM=0.23.0 TORCH=2.11.0 TORCHVISION=0.26.0 TORCHAUDIO=2.11.0
RELEASED='torch|numpy|fastapi'   # CI-lock pins the GPU set cannot keep (see above)
SDIST_ONLY=(word2number==1.1 antlr4-python3-runtime==4.9.3)   # published only as sources: built into wheels here

py=""
for candidate in "${GPU_WHEELHOUSE_PYTHON:-}" python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
    py=$candidate; break
  fi
done
[ -n "$py" ] || { echo "gpu_wheelhouse: needs a CPython 3.12 interpreter; set GPU_WHEELHOUSE_PYTHON" >&2; exit 2; }
[ "$(uname -m)" = x86_64 ] || { echo "gpu_wheelhouse: run it on x86-64 Linux (markers follow this machine)" >&2; exit 2; }

target=(--only-binary=:all: --python-version 3.12 --implementation cp)
for n in $(seq 17 39); do target+=(--platform "manylinux_2_${n}_x86_64"); done
target+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
quiet() { grep -v -e '^WARNING: Location' -e '^$' || true; }   # this machine's pip config names absent local mirrors

resolve() {  # resolve REPORT ARG...: pip's resolution for the GPU image, written as a JSON report
  local report=$1; shift
  "$py" -m pip install -q --dry-run --ignore-installed --report "$report" "${target[@]}" \
    --target "$work/none" --find-links "$work/local" "$@" 2>&1 | quiet
}

echo "gpu_wheelhouse: with $py; building wheels of source-only dependencies: ${SDIST_ONLY[*]}"
"$py" -m pip wheel -q --no-deps -w "$work/local" "${SDIST_ONLY[@]}" 2>&1 | quiet
grep -v -i -E "^($RELEASED)==" constraints.txt > "$work/constraints.txt"
"$py" - <<'EOF' > "$work/pins.txt"
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["trinity"]))
EOF
resolve "$work/lifted.json" --no-deps $(grep -E '^(trinity-rft|verl)==' "$work/pins.txt")

echo "gpu_wheelhouse: resolving astuner[trinity,vllm] for CPython 3.12 / manylinux x86-64 (a few minutes)"
"$py" - "$work" "$VLLM" "$TORCH" <<'EOF' > "$work/reqs.txt"
import json, re, sys
work, vllm, torch = sys.argv[1:]
name = lambda req: re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
skip = {"trinity-rft", "verl", "numpy"}
reqs = [r for r in open(f"{work}/pins.txt").read().splitlines() if name(r) not in skip]
for item in json.load(open(f"{work}/lifted.json"))["install"]:
    reqs += [r for r in item["metadata"].get("requires_dist") or [] if "extra ==" not in r and name(r) not in skip]
print("\n".join(reqs + ["numpy>=2", f"vllm=={vllm}", f"torch=={torch}"]))
EOF
resolve "$work/all.json" -c "$work/constraints.txt" -r "$work/reqs.txt"
resolve "$work/torch.json" "torch==$TORCH" "torchvision==$TORCHVISION" "torchaudio==$TORCHAUDIO"

rm -rf "$out" && mkdir -p "$out"
"$py" - "$work" <<'EOF' > "$work/urls.txt"
import json, re, sys
work = sys.argv[1]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
image = {norm(i["metadata"]["name"]) for i in json.load(open(f"{work}/torch.json"))["install"]}
image = {n for n in image if n.startswith(("torch", "triton", "nvidia-"))}
for item in json.load(open(f"{work}/all.json"))["install"] + json.load(open(f"{work}/lifted.json"))["install"]:
    if norm(item["metadata"]["name"]) in image:
        continue
    info = item["download_info"]
    digest = info.get("archive_info", {}).get("hashes", {}).get("sha256")
    print(info["url"] + (f"#sha256={digest}" if digest else ""))
EOF
echo "gpu_wheelhouse: downloading $(wc -l < "$work/urls.txt") wheels into $out/"
xargs -a "$work/urls.txt" "$py" -m pip download -q --no-deps "${target[@]}" -d "$out" 2>&1 | quiet
[ "$(ls "$out" | grep -c '^numpy-2')" = 1 ] || { echo "gpu_wheelhouse: expected one numpy 2 wheel in $out" >&2; exit 1; }
if [ "${GPU_WHEELHOUSE_FULL:-0}" != 1 ]; then
  echo "gpu_wheelhouse: leaving out the wheels of scripts/gpu_wheelhouse_drop.txt (GPU_WHEELHOUSE_FULL=1 keeps them)"
  for prefix in $(grep -v -e '^#' -e '^$' scripts/gpu_wheelhouse_drop.txt); do rm -f "$out/$prefix"-[0-9]*.whl; done
  # xgrammar's wheel carries a 65 MB static archive (lib/libxgrammar.a) that nothing loads at run time
  "$py" - "$out"/xgrammar-*.whl <<'PY'
import sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as src:
    items = [(i, src.read(i)) for i in src.infolist() if not i.filename.endswith("/lib/libxgrammar.a")]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
    for info, data in items:
        if info.filename.endswith(".dist-info/RECORD"):
            data = b"".join(line for line in data.splitlines(True) if b"/lib/libxgrammar.a," not in line)
        dst.writestr(info, data)
PY
fi
echo "gpu_wheelhouse: checking that pip takes every wheel, one version each, for CPython 3.12 x86-64 (dry run)"
"$py" -m pip install -q --dry-run --no-index --no-deps --ignore-installed "${target[@]}" --target "$work/none" \
  "$out"/*.whl 2>&1 | quiet
echo "gpu_wheelhouse: $(ls "$out" | wc -l) wheels, $(du -sm "$out" | cut -f1) MiB in $out/ (torch and its CUDA wheels left out)"
echo "On the GPU machine, in the repository root (then: python3 -m astuner --conf ... --backbone=trinity --with-ray):"
echo "  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $out/*.whl"
echo "  export PYTHONPATH=/tmp/site:\$PWD PATH=/tmp/site/bin:\$PATH"
