#!/usr/bin/env bash
# Run molecule scenarios, and other named commands, JOBS at a time (default 2): most of a
# scenario's time is spent waiting on package installs and service starts, so two share 2 cores
# well. Jobs start in the order given (longest first keeps the lanes even). A job is a scenario
# name (`molecule test -s NAME`) or NAME=COMMAND (run with bash -c; CI puts its lint and pytest
# suites in the same lanes, so they fill a lane instead of running before the scenarios).
# Each job's log goes to build/molecule/<name>.log; a failed job's log is printed, a passed
# command's last lines. Exit status: 1 if any job failed (the others still run to the end).
# Usage: scripts/molecule-parallel.sh [-j JOBS] JOB...
set -uo pipefail
jobs=2
if [[ "${1:-}" == "-j" ]]; then jobs=$2; shift 2; fi
molecule=${MOLECULE:-.venv/bin/molecule}
logs=build/molecule
mkdir -p "$logs"
declare -A started=() pids=() commands=()
failed=()
t0=$(date +%s)

finish() { # $1: pid that ended, $2: its status
  local s
  for s in "${!pids[@]}"; do
    [[ ${pids[$s]} == "$1" ]] || continue
    unset "pids[$s]"
    if [[ $2 == 0 ]]; then
      [[ -n ${commands[$s]:-} ]] && tail -n 3 "$logs/$s.log" | sed "s/^/    [$s] /"
      echo "molecule: $s passed in $(( $(date +%s) - started[$s] )) s (at $(( $(date +%s) - t0 )) s)"
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

names=()
for job in "$@"; do
  while (( ${#pids[@]} >= jobs )); do wait_one; done
  s=${job%%=*}
  names+=("$s")
  started[$s]=$(date +%s)
  if [[ $s != "$job" ]]; then
    commands[$s]=${job#*=}
    echo "molecule: $s started: ${commands[$s]}"
    bash -c "${commands[$s]}" > "$logs/$s.log" 2>&1 < /dev/null &
  else
    echo "molecule: $s started"
    "$molecule" test -s "$s" > "$logs/$s.log" 2>&1 < /dev/null &
  fi
  pids[$s]=$!
done
while (( ${#pids[@]} > 0 )); do wait_one; done

if (( ${#failed[@]} > 0 )); then
  echo "molecule: failed: ${failed[*]} (all jobs: $(( $(date +%s) - t0 )) s)"
  exit 1
fi
echo "molecule: all passed in $(( $(date +%s) - t0 )) s: ${names[*]}"
