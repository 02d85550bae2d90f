#!/usr/bin/env bash
# Create (or reuse) .venv with Scipion headless + the engine, and install this plugin into it in develop mode.
# Idempotent: a stamp records the hash of the requirements; a second run with nothing changed does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MEMBRANESEG_VENV:-.venv}
if ! "$PY" -c 'import tkinter' 2>/dev/null; then
  # pwem imports pyworkflow.gui, which needs tkinter even headless (Debian: python3-tk)
  echo "bootstrap: installing python3-tk" >&2
  (apt-get update -qq && apt-get install -y -qq python3-tk) >/dev/null || echo "bootstrap: could not install python3-tk" >&2
fi
if ! command -v xvfb-run >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libxkbcommon-x11; then
  # the form test draws every protocol's GUI form on a virtual X server, and the napari test opens napari there
  # (Qt's xcb platform and Mesa's OpenGL); both are skipped without them
  echo "bootstrap: installing xvfb and Qt's X libraries" >&2
  (apt-get update -qq && apt-get install -y -qq xvfb xauth libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
    libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 \
    libxcb-cursor0 libxcb-xkb1 libgl1 libegl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3) >/dev/null 2>&1 \
    || echo "bootstrap: could not install xvfb or Qt's libraries; the GUI form and napari tests will be skipped" >&2
fi
if ! command -v slurmctld >/dev/null 2>&1; then
  # the queue test starts a one-node SLURM cluster of its own (skipped without these)
  echo "bootstrap: installing SLURM and munge" >&2
  (apt-get update -qq && apt-get install -y -qq slurmctld slurmd slurm-client munge) >/dev/null 2>&1 \
    || echo "bootstrap: could not install SLURM; the real-queue test will be skipped" >&2
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.membraneseg-stamp"
want=$(cat requirements-dev.txt setup.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements-dev.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
  echo "bootstrap: environment ready in $VENV" >&2
fi
