#!/usr/bin/env bash
# Device check: proves the course on one CUDA GPU, without network, in under 8 minutes.
#
#     bash scripts/gpu_check.sh [REPORT]                  # or: make gpu-check
#     GPU_CHECK_DRY_RUN=1 bash scripts/gpu_check.sh R.md  # CPU rehearsal of every step (CI)
#
# The machine has, like Colab, Python with torch, torchvision, Lightning, matplotlib,
# scikit-learn, pandas, tqdm and pytest preinstalled. The rest comes from the wheel folder that
# scripts/gpu_wheels.sh fetched (gpu-wheels/, git-ignored, copied along with the repository):
#   1. install: a throw-away venv that sees the preinstalled packages (which stay untouched),
#      pip --no-index from gpu-wheels/, constrained to the installed torch/torchvision;
#   2. the gpu-marked tests (pytest -m gpu on the test files that have them);
#   3. checkpoint-resume on CUDA: 2 epochs + resume to 4 gives the weights of 4 straight epochs;
#   4. benchmarks/trainer_overhead.py on the GPU: fp32, AMP bf16 + channels_last, + compile;
#   5. chapters 01, 04 and 09 executed with the cpu profile's data on the GPU (copies in a
#      temporary folder; the executed notebooks are kept next to the report).
# Writes ONE report (default: $OUT/gpu-check-report.md when $OUT is set, else
# gpu-check-report.md) with every figure and each step's time; exit status 1 if a step failed.
#
# Environment: PYTHON (python3), GPU_WHEELS (gpu-wheels), GPU_CHECK_CHAPTERS ("01 04 09"),
# GPU_CHECK_STEPS ("install tests resume bench chapters": a rerun can pick some),
# GPU_CHECK_DRY_RUN=1: no CUDA needed; tiny sizes (COURSE_SCALE=tiny), short benchmark, no
# compile; the install step is skipped when the wheel folder is absent.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-gpu-wheels}
DRY=${GPU_CHECK_DRY_RUN:-0}
CHAPTERS=${GPU_CHECK_CHAPTERS:-01 04 09}
STEPS=" ${GPU_CHECK_STEPS:-install tests resume bench chapters} "
want() { [[ $STEPS == *" $1 "* ]]; }
REPORT=${1:-${OUT:+$OUT/}gpu-check-report.md}
REPORT=$(mkdir -p "$(dirname "$REPORT")" && cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export COURSE_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
started=$(date +%s)
failed=()

: > "$REPORT"
say() { printf '%s\n' "$@" | tee -a "$REPORT"; }
block() { { echo '```'; cat; echo '```'; } | tee -a "$REPORT"; }
step() {  # step NAME CMD...: run, time, put its output in the report, remember failures
  local name=$1 t0 rc
  shift
  say "" "## $name"
  t0=$(date +%s)
  "$@" > "$work/out.txt" 2>&1
  rc=$?
  tail -n 80 "$work/out.txt" | block
  say "$name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $(( $(date +%s) - t0 )) s"
  [ $rc -eq 0 ] || failed+=("$name")
  return 0
}

say "# GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$DRY" = 1 ] && echo ' (DRY RUN on CPU, tiny sizes)')"
"$PYTHON" - > "$work/env.txt" 2>&1 <<'EOF'
import platform, torch, torchvision
print(f"python {platform.python_version()} | torch {torch.__version__} | torchvision "
      f"{torchvision.__version__} | cuda {torch.version.cuda} | available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "| bf16", torch.cuda.is_bf16_supported())
EOF
block < "$work/env.txt"
if [ "$DRY" != 1 ] && ! grep -q "available True" "$work/env.txt"; then
  say "error: no CUDA device visible to $PYTHON (GPU_CHECK_DRY_RUN=1 rehearses on CPU)"
  exit 2
fi

# 1. install ---------------------------------------------------------------------------
install() {
  local venv=$work/venv pins=$work/constraints.txt site
  "$PYTHON" -c "from importlib.metadata import version as v
print(f'torch=={v(\"torch\")}'); print(f'torchvision=={v(\"torchvision\")}')" > "$pins" || return 1
  echo "constraints (the installed torch, never replaced):" $(cat "$pins")
  # A venv that sees the interpreter's packages (also when that interpreter is itself a venv or
  # conda env, where --system-site-packages would not) and installs into its own folder only.
  if ! "$PYTHON" -m venv "$venv" 2>/dev/null; then
    "$PYTHON" -m venv --without-pip "$venv" || return 1
    PIP=("$PYTHON" -m pip --python "$venv/bin/python")  # no ensurepip here: the base pip
  else
    PIP=("$venv/bin/python" -m pip)
  fi
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  "$PYTHON" -c "import site
for p in [*site.getsitepackages(), site.getusersitepackages()]:
    print(f'import site; site.addsitedir({p!r})')" > "$site/zz-preinstalled.pth"
  local opts=(--no-index --find-links "$WHEELS" -c "$pins" --disable-pip-version-check
              --no-warn-script-location)
  if ! "${PIP[@]}" install "${opts[@]}" -r "$WHEELS/requirements.txt"; then
    echo "pip could not resolve against the preinstalled versions (above); installing the"
    echo "exact wheel set scripts/gpu_wheels.sh resolved, without dependency resolution"
    "${PIP[@]}" install "${opts[@]}" --no-deps -r "$WHEELS/resolved.txt" || return 1
  fi
  "$venv/bin/python" -c "import torch, mlxtend, mnist1d, nbclient, nbval, ipykernel
print('imports ok; torch', torch.__version__, 'from', torch.__file__)" || return 1
  "$venv/bin/python" -c "from importlib.metadata import version as v
print(f'torch=={v(\"torch\")}'); print(f'torchvision=={v(\"torchvision\")}')" | cmp - "$pins" \
    || { echo "torch/torchvision changed"; return 1; }
}
if ! want install; then
  :
elif [ -f "$WHEELS/requirements.txt" ]; then
  PIP=()
  step "install from $WHEELS ($(du -sh "$WHEELS" | cut -f1), $(find "$WHEELS" -name '*.whl' | wc -l) wheels)" install
  [ -x "$work/venv/bin/python" ] && PYTHON=$work/venv/bin/python
elif [ "$DRY" = 1 ]; then
  say "" "## install" "skipped in the dry run: no $WHEELS/ (scripts/gpu_wheels.sh fetches it)"
else
  step "install (no $WHEELS/: using what $PYTHON has)" "$PYTHON" -c \
    "import mlxtend, mnist1d, nbclient, nbval, ipykernel; print('all present')"
fi
"$PYTHON" -c "from course_lib import runtime; runtime.report()" 2>&1 | block

# 2. gpu tests ---------------------------------------------------------------------------
mapfile -t gpu_tests < <(grep -l "mark.gpu" tests/test_*.py)
want tests && step "pytest -m gpu (${#gpu_tests[@]} files)" \
  "$PYTHON" -m pytest -m gpu -p no:cacheprovider -q -rs "${gpu_tests[@]}"

# 3. checkpoint-resume on the device ---------------------------------------------------------
cat > "$work/resume.py" <<'EOF'
"""Resume on the device: 2 epochs + checkpoint, then a fresh session resumes to 4 epochs; the
weights must equal those of 4 straight epochs (dropout draws from the device RNG)."""
import sys
import torch
from torch import nn
from course_lib.data import TensorLoader, load_dataset, subset
from course_lib.runtime import get_device, seed_everything
from course_lib.train import ModelCheckpoint, Trainer

device = get_device()
train = subset(load_dataset("digits", "train"), 400)

def fresh(seed=0):
    seed_everything(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(128, 10))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

def loader():
    return TensorLoader(train, batch_size=32, seed=0)

model, opt = fresh()
Trainer(model, opt, device=device).fit(loader(), epochs=4)
straight = {k: v.detach().clone() for k, v in model.state_dict().items()}
ckpt = sys.argv[1]
model, opt = fresh()
Trainer(model, opt, device=device, callbacks=[ModelCheckpoint(ckpt)]).fit(loader(), epochs=2)
torch.manual_seed(999)
model, opt = fresh(seed=123)
hist = Trainer(model, opt, device=device).fit(loader(), epochs=4, resume_from=ckpt)
diff = max((v - straight[k]).abs().max().item() for k, v in model.state_dict().items())
print(f"resume on {device}: epochs {hist.epoch}, max |w_resumed - w_straight| = {diff:.3g}")
sys.exit(0 if diff == 0 and hist.epoch == [1, 2, 3, 4] else 1)
EOF
want resume && step "checkpoint-resume on the device" "$PYTHON" "$work/resume.py" "$work/run.pt"

# 4. Trainer overhead benchmark ------------------------------------------------------------
bench() {  # rounds of one epoch each, Trainer and bare loop alternating (see the benchmark)
  local b=benchmarks/trainer_overhead.py
  if [ "$DRY" = 1 ]; then  # short, on CPU (bf16 autocast on a CPU takes minutes: not here)
    "$PYTHON" "$b" --device cpu --rounds 2 --batch-size 256 --channels-last
    return
  fi
  echo "--- fp32" && "$PYTHON" "$b" --device cuda --rounds 5 || return 1
  echo "--- AMP bf16 + channels_last"
  "$PYTHON" "$b" --device cuda --rounds 5 --amp bf16 --channels-last || return 1
  echo "--- AMP bf16 + channels_last + torch.compile"
  "$PYTHON" "$b" --device cuda --rounds 5 --amp bf16 --channels-last --compile
}
want bench && step "Trainer vs bare loop (benchmarks/trainer_overhead.py)" bench

# 5. chapters with the cpu profile's data on the device ---------------------------------------
chapters() {
  local nbs=() ch
  mkdir -p "$work/book"
  cp -r book/. "$work/book/"
  for ch in $CHAPTERS; do nbs+=("$(ls "$work"/book/"$ch"_*.ipynb)"); done
  if [ "$DRY" = 1 ]; then export COURSE_SCALE=tiny; fi
  "$PYTHON" scripts/execute_notebooks.py "${nbs[@]}" --profile cpu --keep-going --timeout 600
  local rc=$?
  "$PYTHON" - "${nbs[@]}" <<'EOF'
import json, sys
print("| chapter | device | gpu | wall time (s) |\n| --- | --- | --- | --- |")
for path in sys.argv[1:]:
    ex = json.load(open(path)).get("metadata", {}).get("course", {}).get("execution")
    name = path.rsplit("/", 1)[-1]
    print(f"| {name} | {ex['device']} | {ex.get('gpu') or '-'} | {ex['wall_time_s']} |" if ex
          else f"| {name} | FAILED | - | - |")
EOF
  mkdir -p "${REPORT%.md}-notebooks" && cp "${nbs[@]}" "${REPORT%.md}-notebooks/"
  return $rc
}
want chapters && step "chapters $CHAPTERS, cpu profile data on the device" chapters

total=$(( $(date +%s) - started ))
say "" "## summary"
say "total: $total s (target: under 480 s on one GPU, install included)"
if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED steps: ${failed[*]}"
  exit 1
fi
say "all steps passed"
