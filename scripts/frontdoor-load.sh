#!/usr/bin/env bash
# Load through the front door: N concurrent streaming clients (aimachine-bench, closed loop) from
# this machine to an appliance in a local container, then what nginx answered (status counts from
# its access log) and the connections to the engine before, right after and 30 s after.
#
# Usage: scripts/frontdoor-load.sh CONTAINER SECRETS_DIR [CONCURRENCY] [REQUESTS] [OUTPUT_LEN] [OUT_DIR]
#   SECRETS_DIR holds api_key and frontdoor-ca.crt (the play's secrets/<host>/).
# Bounded: the bench stops after REQUESTS requests; every request has a 300 s read timeout.
set -euo pipefail
container=$1
secrets=$2
concurrency=${3:-200}
requests=${4:-1000}
output_len=${5:-16}
out=${6:-$(mktemp -d /tmp/frontdoor-load.XXXXXX)}
mkdir -p "$out"
bench=$(dirname "$0")/../.venv/bin/aimachine-bench
log=/var/log/nginx/aimachine-frontdoor.access.log

ip=$(docker inspect -f '{{(index .NetworkSettings.Networks "bridge").IPAddress}}' "$container")
conns() {
  docker exec "$container" sh -c "
    printf 'engine ESTABLISHED %s  TIME-WAIT %s  | clients ESTABLISHED %s\n' \
      \$(ss -Htn state established '( dport = :8000 )' | wc -l) \
      \$(ss -Htn state time-wait '( dport = :8000 )' | wc -l) \
      \$(ss -Htn state established '( sport = :8443 )' | wc -l)"
}

echo "before:        $(conns)"
start_line=$(($(docker exec "$container" sh -c "wc -l < $log") + 1))
started=$(date +%s)
# The key comes from its 0600 file (never the command line); TLS is verified against the CA.
"$bench" --base-url "https://$ip:8443" --ca-cert "$secrets/frontdoor-ca.crt" \
  --api-key-file "$secrets/api_key" --dataset coding --concurrency "$concurrency" \
  --num-requests "$requests" --output-len "$output_len" --warmup 0 --timeout 300 \
  --no-telemetry --no-progress --output "$out" >"$out/bench.log" 2>&1 || echo "bench exit $?"
ended=$(date +%s)
echo "right after:   $(conns)"
echo "wall: $((ended - started)) s for $requests requests at concurrency $concurrency (max_tokens $output_len)"
echo "nginx answers (status: count) during the run:"
docker exec "$container" sh -c "tail -n +$start_line $log" \
  | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) { print $(i + 1); break }}' | sort | uniq -c
sleep 30
echo "30 s after:    $(conns)"
echo "bench output in $out (bench.json, bench.log)"
