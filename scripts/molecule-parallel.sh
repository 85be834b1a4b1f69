#!/usr/bin/env bash
# Run molecule scenarios JOBS at a time (default 2): most of a scenario's time is spent waiting
# on package installs and service starts, so two share 2 cores well. Scenarios start in the order
# given (longest first keeps the lanes even). Each one's log goes to build/molecule/<scenario>.log;
# a failed scenario's log is printed. Exit status: 1 if any scenario failed.
# Usage: scripts/molecule-parallel.sh [-j JOBS] SCENARIO...
set -uo pipefail
jobs=2
if [[ "${1:-}" == "-j" ]]; then jobs=$2; shift 2; fi
molecule=${MOLECULE:-.venv/bin/molecule}
logs=build/molecule
mkdir -p "$logs"
declare -A started=() pids=()
failed=()

finish() { # $1: pid that ended, $2: its status
  local s
  for s in "${!pids[@]}"; do
    [[ ${pids[$s]} == "$1" ]] || continue
    unset "pids[$s]"
    if [[ $2 == 0 ]]; then
      echo "molecule: $s passed in $(( $(date +%s) - started[$s] )) s"
    else
      failed+=("$s")
      echo "molecule: $s FAILED (status $2) after $(( $(date +%s) - started[$s] )) s; its log:"
      sed 's/^/    /' "$logs/$s.log"
    fi
  done
}

wait_one() {
  local pid status
  wait -n -p pid "${pids[@]}"
  status=$?
  finish "$pid" "$status"
}

for s in "$@"; do
  while (( ${#pids[@]} >= jobs )); do wait_one; done
  echo "molecule: $s started"
  started[$s]=$(date +%s)
  "$molecule" test -s "$s" > "$logs/$s.log" 2>&1 &
  pids[$s]=$!
done
while (( ${#pids[@]} > 0 )); do wait_one; done

if (( ${#failed[@]} > 0 )); then
  echo "molecule: failed: ${failed[*]}"
  exit 1
fi
echo "molecule: all passed: $*"
