#!/usr/bin/env bash
# Run the two lab suites side by side: the pytest lab tests (make lab-test) in the foreground and the molecule
# scenarios (tools/molecule.sh) in the background. Each brings up its own isolated labs, and both spend most of
# their time waiting on containers, SSH and probes, so on a 2-core machine the pair takes about the longer of the
# two instead of their sum. The molecule output goes to a log that is printed when both are done.
# LAB_SUITES_SERIAL=1 runs them one after the other.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
log=${MOLECULE_LOG:-$root/.cache/molecule-suite.log}
mkdir -p "$(dirname "$log")"

if [ "${LAB_SUITES_SERIAL:-0}" = 1 ]; then
  make --no-print-directory lab-test && tools/molecule.sh
  exit
fi

start=$(date +%s)
tools/molecule.sh >"$log" 2>&1 &
mol_pid=$!
make --no-print-directory lab-test
pytest_rc=$?
echo "=== lab tests finished rc=$pytest_rc after $(( $(date +%s) - start )) s; waiting for molecule (log: $log)"
wait "$mol_pid"
mol_rc=$?
echo "=== molecule finished rc=$mol_rc after $(( $(date +%s) - start )) s; its output:"
# The whole log when it failed; otherwise its scenario lines and summaries.
if [ "$mol_rc" -ne 0 ]; then
  cat "$log"
else
  grep -E '^=== |actions=|Executed: (Successful|Failed)' "$log" | sed 's/\x1b\[[0-9;]*m//g'
fi
[ "$pytest_rc" -eq 0 ] && [ "$mol_rc" -eq 0 ]
