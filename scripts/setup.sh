#!/usr/bin/env bash
# One set-up path for a fresh machine.
#   bash scripts/setup.sh app    install, then launch UGAAR Explorer
#   bash scripts/setup.sh test   install with test extras, then run the test suite
#   bash scripts/setup.sh install  install only
# Creates .venv in the repository (reused when present).  Needs Python >= 3.10.
set -euo pipefail
mode="${1:-app}"
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# --- system libraries (Linux) ------------------------------------------------
# PortAudio (audio playback and recording), FluidSynth (synthesis; a built-in
# synthesiser is the fallback), FluidR3_GM (held-out timbres for evaluation),
# Qt's xcb libraries (the window), Xvfb (screenshot test).
apt_packages=(libportaudio2 libfluidsynth3 fluid-soundfont-gm libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-keysyms1 libxcb-shape0 libxcb-image0 libxcb-render-util0 libegl1 libgl1
  libfontconfig1 libdbus-1-3 xvfb)
if [ "$(uname -s)" = "Linux" ] && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing system packages: ${missing[*]}"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || echo "setup: apt-get failed; the app still runs without audio playback/FluidSynth"
    else
      echo "setup: optional system packages missing; install them with:"
      echo "  sudo apt-get install ${missing[*]}"
      echo "(without PortAudio the player is disabled, without FluidSynth the built-in synthesiser is used)"
    fi
  fi
fi

# --- Python environment ------------------------------------------------------
[ -d .venv ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true

# A CPU build of torch first: an unpinned torch on Linux pulls several GB of
# CUDA packages.  Order: a local wheel (pip's find-links), the CPU index,
# then the default index (GPU machines).
if ! python -c "import torch" >/dev/null 2>&1; then
  pip install -q --no-index "torch==2.13.0" 2>/dev/null \
    || { [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1 \
         && pip install -q "torch==2.13.0" --index-url "${UGAAR_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" 2>/dev/null; } \
    || pip install -q "torch>=2.2"
fi

case "$mode" in
  test) pip install -q -e ".[test]" ;;
  *)    pip install -q -e . ;;
esac

case "$mode" in
  app)  exec ugaar-app ;;
  test)
    export QT_QPA_PLATFORM=offscreen
    set +e
    python -m pytest -q -p no:cacheprovider "${@:2}"
    rc=$?
    # pytest exits 5 when it collected no test: that is a failure for CI too.
    exit $rc ;;
  install) echo "setup: installed; run 'source .venv/bin/activate' then 'ugaar-app' or 'ugaar --help'" ;;
  *) echo "usage: bash scripts/setup.sh [app|test|install]" >&2; exit 2 ;;
esac
