#!/usr/bin/env bash
# thighseg bench and bench --peers on a CUDA GPU in half precision; prints ONE JSON line on stdout
# (the bench's JSON plus a "bench_gpu" object: python, torch, GPU, the issue #17 targets), or
# {"error": ..., "log_tail": ...} when something fails. Progress and logs go to stderr.
#
#   scripts/bench_gpu.sh                 # CUDA (make bench-gpu)
#   scripts/bench_gpu.sh --cpu           # the identical path on the CPU with .venv, a 120-slice CT
#   DEVICE=cpu SLICES=200 scripts/bench_gpu.sh
#   scripts/bench_gpu.sh --download-wheels [DIR]   # here, with internet: wheels for a GPU box offline
#
# Which Python runs it, first match wins:
#   1. $PYTHON (default python3) if its torch already sees a GPU: nothing is installed into it.
#      Packages it lacks (SimpleITK, pydicom, monai, dynamic-network-architectures; vtk is optional,
#      without it the report's 3D panel is left out) come from the wheelhouse $WHEELHOUSE (default
#      .whl, git-ignored) unpacked into $SITE (default /tmp/thighseg-site, put on PYTHONPATH), so a
#      machine without internet runs it. Make that wheelhouse here with --download-wheels
#      (cp312 manylinux, the H200 image's Python; about 55 MB, mostly SimpleITK). .whl is git-ignored:
#      a copy of the tree sent to a GPU box must take it along explicitly (55 MB + the 4.5 MB tree).
#   2. $VENV_GPU (default .venv-gpu) if it exists and its torch sees a GPU.
#   3. Otherwise $VENV_GPU is made: torch==$TORCH_VERSION (2.13.0) from $TORCH_INDEX
#      (https://download.pytorch.org/whl/cu126), then -e ".[bench,render,dicom]" with torch pinned
#      by a constraints file (needs the package index, or PIP_FIND_LINKS/--no-index in PIP_ARGS).
# The bench CT is 512 x 512 x $SLICES (default 500 on CUDA, 120 with --cpu).
# Targets (issue #17): <= 1 s end to end per CT on the GPU, the views <= 0.2 s; views >= 5x faster
# than TotalSegmentator's fast network, >= 50x than nnU-Net 3d_fullres at 1.5 mm.
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
MODE=${DEVICE:-cuda}
WHEELS_ONLY=""
case "${1:-}" in
  --cpu) MODE=cpu ;;
  --download-wheels) WHEELS_ONLY=${2:-.whl} ;;
  "") ;;
  *) echo "usage: $0 [--cpu | --download-wheels [DIR]]" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
VENV_GPU=${VENV_GPU:-.venv-gpu}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cu126}
WHEELHOUSE=${WHEELHOUSE:-.whl}
SITE=${SITE:-/tmp/thighseg-site}
PIP_ARGS=${PIP_ARGS:-}
LOG=$(mktemp /tmp/thighseg-bench-gpu.XXXXXX)
# The bench's own packages that the GPU image may lack (pinned as pyproject pins or allows).
OFFLINE_WHEELS="SimpleITK==2.5.7 pydicom==3.0.2 monai==1.6.1 dynamic-network-architectures==0.4.4"

fail() {  # one JSON line on stdout, whatever happened
  python3 - "$1" "$LOG" <<'EOF' 2>/dev/null || echo '{"error": "bench_gpu.sh failed (no python3 to report it)"}'
import json, sys
tail = open(sys.argv[2], encoding="utf-8", errors="replace").read().splitlines()[-15:]
print(json.dumps({"error": sys.argv[1], "log_tail": tail}))
EOF
  exit 1
}

if [ -n "$WHEELS_ONLY" ]; then
  mkdir -p "$WHEELS_ONLY"
  for req in $OFFLINE_WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$WHEELS_ONLY" "$req" >&2 || { echo "could not download $req" >&2; exit 1; }
  done
  du -sh "$WHEELS_ONLY" >&2
  exit 0
fi

sees_gpu() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; }
has_deps() { "$1" -c 'import SimpleITK, pydicom, monai, dynamic_network_architectures' >/dev/null 2>&1; }

if [ "$MODE" = cpu ]; then
  PY=.venv/bin/python
  [ -x "$PY" ] || fail "no .venv: run make setup first"
  has_deps "$PY" || fail ".venv lacks the [bench] extra: .venv/bin/pip install -c <(echo torch==$TORCH_VERSION) -e '.[bench]'"
  SLICES=${SLICES:-120}
elif command -v "$PYTHON" >/dev/null && sees_gpu "$PYTHON"; then
  PY=$(command -v "$PYTHON")
  if ! has_deps "$PY"; then
    ls "$WHEELHOUSE"/*.whl >/dev/null 2>&1 || fail "$PY sees a GPU but lacks SimpleITK/pydicom/monai/dynamic-network-architectures and there is no wheelhouse $WHEELHOUSE (make it with $0 --download-wheels)"
    echo "installing the wheelhouse $WHEELHOUSE into $SITE" >&2
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$WHEELHOUSE"/*.whl >>"$LOG" 2>&1 || fail "pip could not install the wheelhouse"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    has_deps "$PY" || fail "the wheelhouse did not provide every package the bench needs"
  fi
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
elif [ -x "$VENV_GPU/bin/python" ] && sees_gpu "$VENV_GPU/bin/python" && has_deps "$VENV_GPU/bin/python"; then
  PY=$VENV_GPU/bin/python
else
  echo "making $VENV_GPU with torch==$TORCH_VERSION from $TORCH_INDEX" >&2
  python3 -m venv "$VENV_GPU" >>"$LOG" 2>&1 || fail "could not make $VENV_GPU"
  echo "torch==$TORCH_VERSION" >"$VENV_GPU/constraints.txt"
  # shellcheck disable=SC2086
  "$VENV_GPU/bin/pip" install -q $PIP_ARGS torch=="$TORCH_VERSION" --index-url "$TORCH_INDEX" >>"$LOG" 2>&1 \
    || fail "could not install the CUDA torch from $TORCH_INDEX"
  # shellcheck disable=SC2086
  "$VENV_GPU/bin/pip" install -q $PIP_ARGS -c "$VENV_GPU/constraints.txt" -e ".[bench,render,dicom]" >>"$LOG" 2>&1 \
    || fail "could not install the project into $VENV_GPU"
  PY=$VENV_GPU/bin/python
  sees_gpu "$PY" || fail "$VENV_GPU's torch sees no GPU (driver? TORCH_INDEX?)"
fi
SLICES=${SLICES:-500}
echo "bench on $MODE with $PY, CT 512 x 512 x $SLICES (several minutes on a CPU)" >&2

OUTFILE=$(mktemp /tmp/thighseg-bench-gpu-out.XXXXXX)
PYTHONUNBUFFERED=1 "$PY" -m ThighMuscleSegLib.cli.main bench --json --devices "$MODE" --peers --slices "$SLICES" \
  >"$OUTFILE" 2>>"$LOG" || fail "thighseg bench failed on $MODE"
"$PY" - "$OUTFILE" "$MODE" <<'EOF' 2>>"$LOG" || fail "the bench printed no JSON"
import json, platform, sys

import torch

lines = [line for line in open(sys.argv[1], encoding="utf-8").read().splitlines() if line.strip()]
result = json.loads(lines[-1])
mode = sys.argv[2]
views = result.get("views_2_5d_s")
gpu = torch.cuda.get_device_name(0) if mode == "cuda" and torch.cuda.is_available() else None
peers = result.get("peers", {})
result["bench_gpu"] = {
    "mode": mode, "python": platform.python_version(), "torch": torch.__version__, "gpu": gpu,
    "half": result.get("details", {}).get("half"),
    "end_to_end_s_per_ct": result.get("end_to_end_s"), "views_s": views,
    "targets": {"end_to_end_le_1s": None if mode != "cuda" else result.get("end_to_end_s", 1e9) <= 1.0,
                "views_le_0.2s": None if mode != "cuda" or views is None else views <= 0.2,
                **result.get("targets", {})},
    "peers_s": peers,
}
print(json.dumps(result))
EOF
rm -f "$OUTFILE" "$LOG"
