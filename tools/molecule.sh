#!/usr/bin/env bash
# Run every molecule scenario under molecule/ (each brings up its own isolated lab).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
scenarios=$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename | sort)
if [ -z "$scenarios" ]; then
  echo "no molecule scenarios found" >&2
  exit 1
fi
for s in $scenarios; do
  echo "=== molecule test -s $s"
  molecule test -s "$s"
done
