#!/usr/bin/env bash
# Regenerate the hash-locked requirements.txt of images from their requirements.in.
#   images/lock.sh                      all, bases first
#   images/lock.sh jupyter-ml-gpu ...   only these (give bases before derived images)
# Each lock is constrained by the locks below it in the FROM chain (-c lines in the .in
# files), so a derived image never changes a package its base installed. A folder's
# requirements-<variant>.in (the CUDA 12 variant: requirements-cu12.in) is locked to
# requirements-<variant>.txt the same way. The GPU base's locks also get their CUDA
# layer (cuda-layer*.txt, see images/cuda_layer.py).
# The target is the images' interpreter, not this machine's: Debian bookworm's Python
# 3.11.2 on x86_64 glibc 2.36, wheels only; jupyter-rust (Debian trixie): Python 3.13.5, glibc 2.41 (uv names up to manylinux_2_40). uv can resolve for another Python and
# platform (pip-compile cannot); it runs from a private venv under
# $GPU_JUPYTERHUB_WORK_DIR (default .work/) and uses the default package index.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${GPU_JUPYTERHUB_WORK_DIR:-$here/../.work}"
venv="$work/lock-venv"
uv_version="0.13.9"
if [[ ! -x "$venv/bin/uv" ]] || [[ "$("$venv/bin/uv" --version)" != "uv $uv_version"* ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "uv==$uv_version"
fi
if (($#)); then
  images=("$@")
else
  images=(common jupyter-ml-cpu jupyter-agent-dev jupyter-ml-gpu jupyter-fine-tuning jupyter-jax jupyter-rapids
          jupyter-rust)
fi
for name in "${images[@]}"; do
  python_version=3.11.2 platform=x86_64-manylinux_2_36
  if [[ "$name" == jupyter-rust ]]; then
    python_version=3.13.5 platform=x86_64-manylinux_2_40
  fi
  for input in "$here/$name"/requirements*.in; do
    variant="$(basename "$input" .in)"
    variant="${variant#requirements}"
    echo "locking $name${variant:+ ($variant)}" >&2
    (cd "$here/$name" && "$venv/bin/uv" pip compile "requirements$variant.in" \
      --output-file "requirements$variant.txt" \
      --generate-hashes \
      --python-version "$python_version" \
      --python-platform "$platform" \
      --only-binary :all: \
      --custom-compile-command "images/lock.sh $name" \
      --quiet)
    if [[ "$name" == jupyter-ml-gpu ]]; then
      python3 "$here/cuda_layer.py" "$here/$name/requirements$variant.txt" >"$here/$name/cuda-layer$variant.txt"
    fi
  done
done
