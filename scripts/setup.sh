#!/usr/bin/env bash
# One-command set-up: system packages, .venv, torch (CPU wheel first), then AMELA with every stage's dependencies.
# Idempotent: a stamp keyed on this script and pyproject.toml makes a second run take seconds.
# Needs root (or sudo) only for apt-get; set AMELA_SKIP_APT=1 on a machine where the packages are already present.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${AMELA_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
APT_PACKAGES=(libc++1 libc++abi1 espeak-ng sox libsndfile1 chromium)  # chromium: the report's browser tests

stamp_key() { cat "$ROOT/scripts/setup.sh" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1; }
STAMP="$VENV/.amela-setup-stamp"
installed() {  # the distributions a working install has (metadata only: importing NeMo would take seconds)
  "$VENV/bin/python" -c "import importlib.metadata as m
for d in ('amela', 'torch', 'nemo_toolkit', 'fairseq', 'ten-vad', 'submitit', 'speechmos', 'onnxruntime'): m.version(d)" 2>/dev/null
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_key)" ]] && installed; then
  echo "setup: already up to date ($VENV)"; exit 0
fi

# --- system packages ------------------------------------------------------------------------------
if [[ "${AMELA_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "setup: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# --- python environment ---------------------------------------------------------------------------
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -U pip setuptools wheel
# torch first, pinned: anything that depends on torch must find it satisfied, else pip pulls a CUDA build.
"${PIP[@]}" install "torch==$TORCH_VERSION"
"${PIP[@]}" install -e ".[dev]"
# fairseq 0.12.2 pins omegaconf<2.1 (unresolvable beside NeMo), so it goes in with --no-deps (its real runtime
# dependencies are in pyproject.toml). Its sdist lacks clib/libbase, which setup.py compiles whenever torch is
# importable, so the wheel is built in a small torch-free venv against the same numpy (only libbleu and the Cython
# data utilities get compiled; AMELA's inference path needs neither libbase nor libnat).
if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.version('fairseq')" 2>/dev/null; then
  NUMPY_VERSION=$("$VENV/bin/python" -c "import numpy; print(numpy.__version__)")
  BUILD=$(mktemp -d)
  "$PY" -m venv "$BUILD/venv"
  "$BUILD/venv/bin/python" -m pip --disable-pip-version-check -q install setuptools wheel cython "numpy==$NUMPY_VERSION"
  "$BUILD/venv/bin/python" -m pip --disable-pip-version-check -q wheel --no-deps --no-build-isolation \
    -w "$BUILD/wheels" fairseq==0.12.2
  "${PIP[@]}" install --no-deps "$BUILD"/wheels/fairseq-0.12.2-*.whl
  rm -rf "$BUILD"
fi
installed && stamp_key > "$STAMP"
echo "setup: done ($VENV)"
