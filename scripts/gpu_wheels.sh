#!/usr/bin/env bash
# Fetch, on a machine with registry access, the wheels that scripts/gpu_check.sh installs on a
# GPU machine WITHOUT network. That machine is assumed to have, like Colab, Python 3.12 with
# torch 2.11, torchvision 0.26, Lightning, matplotlib, scikit-learn, pandas, tqdm and pytest.
# Everything else course_lib and the notebook runs need (mlxtend, mnist1d, the Jupyter
# execution stack: nbclient, nbval, nbformat, ipykernel and their dependencies) lands in
# gpu-wheels/ (git-ignored; copy it along with the repository).
#
#     bash scripts/gpu_wheels.sh [DEST]          # default DEST: gpu-wheels
#
# How: pip resolves (metadata only, nothing installed) the preinstalled set alone, then the
# preinstalled set plus what we need, with the first resolution's versions pinned; the wheels
# are the difference, downloaded with --no-deps. Fails when they exceed GPU_WHEELS_MAX_MB
# (default 64). Environment: GPU_PYTHON (3.12), GPU_GLIBC (2.28: wheels for glibc <= 2.28, x86_64).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-gpu-wheels}
PY=${GPU_PYTHON:-3.12}
GLIBC_MINOR=${GPU_GLIBC:-2.28}
GLIBC_MINOR=${GLIBC_MINOR#2.}
platforms=()  # pip does not widen --platform: list every manylinux tag up to that glibc
for m in $(seq "$GLIBC_MINOR" -1 17); do platforms+=(--platform "manylinux_2_${m}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
MAX_MB=${GPU_WHEELS_MAX_MB:-64}
PIP=${PIP:-python3 -m pip}
PREINSTALLED=(torch==2.11.0 torchvision==0.26.0 lightning matplotlib scikit-learn pandas tqdm pytest)
NEEDED=(mlxtend mnist1d nbclient nbval nbformat ipykernel)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target=(--dry-run --ignore-installed --quiet --only-binary=:all: --python-version "$PY"
        "${platforms[@]}" --target "$work/target")

start=$(date +%s)
$PIP install "${target[@]}" --report "$work/base.json" "${PREINSTALLED[@]}"
python3 - "$work/base.json" > "$work/base-pins.txt" <<'EOF'
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    print(f"{item['metadata']['name']}=={item['metadata']['version']}")
EOF
$PIP install "${target[@]}" --report "$work/all.json" -c "$work/base-pins.txt" \
  "${PREINSTALLED[@]}" "${NEEDED[@]}"
python3 - "$work/base.json" "$work/all.json" > "$work/extra.txt" <<'EOF'
import json, sys
from packaging.utils import canonicalize_name as norm
base = {norm(i["metadata"]["name"]) for i in json.load(open(sys.argv[1]))["install"]}
for item in json.load(open(sys.argv[2]))["install"]:
    if norm(item["metadata"]["name"]) not in base:
        print(f"{item['metadata']['name']}=={item['metadata']['version']}")
EOF

rm -rf "$DEST" && mkdir -p "$DEST"
$PIP download --quiet --no-deps --only-binary=:all: --python-version "$PY" "${platforms[@]}" \
  -d "$DEST" -r "$work/extra.txt"
printf '%s\n' "${NEEDED[@]}" > "$DEST/requirements.txt"  # what gpu_check.sh installs
cp "$work/extra.txt" "$DEST/resolved.txt"

count=$(find "$DEST" -name '*.whl' | wc -l)
bytes=$(du -sb "$DEST" | cut -f1)
mb=$(( (bytes + 1048575) / 1048576 ))
echo "gpu wheels: $count wheels, $mb MiB in $DEST for Python $PY (glibc <= 2.$GLIBC_MINOR), $(( $(date +%s) - start )) s"
if [ "$mb" -gt "$MAX_MB" ]; then
  echo "error: $DEST is $mb MiB, over the ${MAX_MB} MiB limit" >&2
  exit 1
fi
