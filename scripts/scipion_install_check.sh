#!/usr/bin/env bash
# The plugin as a user gets it, end to end, on a bare Debian machine:
#   1. Scipion from PyPI's scipion-installer (a venv where conda is absent);
#   2. this clone as a plugin: scipion3 installp -p <clone> --devel;
#   3. the model environment from the plugin's own defineBinaries: scipion3 installb membraneseg-<version>;
#   4. a quick subset of the protocol tests through scipion3 tests (the segment test's engine jobs run inside
#      the model environment, not in Scipion's Python);
#   5. the scripted workflow example through scipion3 python.
# Everything goes under one folder (default $TMPDIR/membraneseg-scipion; removed first); the log of each step is
# printed with the time it took. Needs network access to PyPI, about 3 GB of disk and 10-20 minutes.
#
#   bash scripts/scipion_install_check.sh [FOLDER]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-${TMPDIR:-/tmp}/membraneseg-scipion}
VERSION=$(cd "$REPO/membraneseg" && python3 -c "import constants; print(constants.VERSION)")
SCIPION="$ROOT/scipion/scipion3"
# Scipion takes a plugin's pip name from its folder's name: a clone must be called scipion-em-membraneseg
CLONE="$ROOT/scipion-em-membraneseg"
START=$(date +%s)

step() {
  echo
  echo "== [$(($(date +%s) - START)) s] $*"
}

rm -rf "$ROOT"
mkdir -p "$ROOT"
if ! python3 -c 'import tkinter' 2>/dev/null; then
  step "python3-tk (pyworkflow needs tkinter)"
  apt-get update -qq && apt-get install -y -qq python3-tk
fi

step "1. scipion-installer from PyPI, then Scipion in venv mode"
python3 -m venv "$ROOT/installer"
"$ROOT/installer/bin/pip" install -q scipion-installer virtualenv
"$ROOT/installer/bin/python" -m scipioninstaller "$ROOT/scipion" -venv -noAsk
"$SCIPION" version || true

step "2. the plugin: a clone of $REPO (committed state), scipion3 installp -p $CLONE --devel --noBin"
git clone -q "$REPO" "$CLONE"
"$SCIPION" installp -p "$CLONE" --devel --noBin
"$SCIPION" python -c "import membraneseg, pwem; print('plugin', membraneseg.__file__)"

step "3. the model environment: scipion3 installb membraneseg-$VERSION"
"$SCIPION" installb "membraneseg-$VERSION"
ENV_PY="$ROOT/scipion/software/em/membraneseg-$VERSION/venv/bin/python"
"$ENV_PY" -c "import tensorflow as tf, membraneseg; print('model environment: TensorFlow', tf.__version__)" \
  2>/dev/null || "$ENV_PY" -c "import tensorflow as tf; print('model environment: TensorFlow', tf.__version__)"

step "4. protocol tests through scipion3 tests"
# run from $ROOT, so that no other checkout in the working folder shadows the installed plugin; projects and test
# data stay under $ROOT too
cd "$ROOT"
export SCIPION_TEST_NOSYNC=True SCIPION_USER_DATA="$ROOT/userdata"
for t in test_protocol_vesicles test_protocol_clean test_protocol_segment; do
  step "   scipion3 tests membraneseg.tests.$t"
  "$SCIPION" tests "membraneseg.tests.$t"
done
step "   the segment test's engine jobs ran inside the model environment (their activation, from the run logs):"
grep -rhoE "[^ ]*membraneseg-$VERSION/venv/bin/activate && [^ ]* [^ ]* python -m membraneseg.engine segment" \
  "$ROOT"/userdata/projects/*/Runs/*Segment*/logs/run.stdout | sort -u | head -3

step "5. the scripted workflow example through scipion3 python"
"$SCIPION" python "$CLONE/examples/scripted_workflow.py" --phantoms 2

step "done: Scipion, the plugin, its model environment, tests and the example all ran"
