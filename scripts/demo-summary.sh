#!/usr/bin/env bash
# Print how to reach the demo appliance that `make demo` left running; with --destroyed (after
# `make demo-destroy`), what the demo leaves on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
container=aimachine-demo
image=aimachine-molecule:bookworm
key_file=secrets/$container/api_key
ca_file=secrets/$container/frontdoor-ca.crt
reports=reports/$container

if [ "${1:-}" = "--destroyed" ]; then
  echo
  echo "aimachine demo: container $container removed. Left on this machine:"
  if [ -e "$reports/latest" ]; then
    echo "  reports    $reports/ (latest: $reports/$(readlink "$reports/latest")); delete with: rm -r $reports"
  else
    echo "  reports    none under $reports/"
  fi
  [ -e "secrets/$container" ] && echo "  secrets    secrets/$container/ (API key, CA); delete with: rm -r secrets/$container"
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "  image      $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')); delete with: docker image rm $image"
  fi
  for cache in "${AIMACHINE_UV_CACHE:-/var/cache/aimachine-molecule/uv}" "${AIMACHINE_WHEELHOUSE:-/opt/wheels}"; do
    [ -d "$cache" ] && echo "  cache      $cache ($(du -sh "$cache" 2>/dev/null | cut -f1)); kept for the next run"
  done
  if docker info >/dev/null 2>&1; then
    echo "  dockerd    running (started by 'make host-deps-demo' or you); left as it is"
  fi
  exit 0
fi

[ -s "$key_file" ] || { echo "demo: no API key at $key_file; run 'make demo' first" >&2; exit 1; }
docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null | grep -q true \
  || { echo "demo: container $container is not running; run 'make demo'" >&2; exit 1; }
model=$(docker exec "$container" curl -sf http://127.0.0.1:8000/v1/models \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
ip=$(docker inspect -f '{{(index .NetworkSettings.Networks "bridge").IPAddress}}' "$container")
if [ -e "$reports/latest" ]; then
  results="$reports/latest/ (report.md, report.html, clients/; kept by make demo-destroy)"
else
  results="$reports/ (written by the verification step; none yet)"
fi
cat <<MSG

aimachine demo is up (CPU mode, tiny random-weight test model: its text is gibberish by design).
  front door https://$ip:8443/v1   TLS (trust $ca_file), the key on every route
  engine     http://127.0.0.1:8000/v1   inside container $container (loopback only)
  model      $model
  API key    $key_file (mode 0600; sent from a file, never on a command line)
  service    docker exec $container systemctl status aimachine-llm
  logs       docker exec $container journalctl -u aimachine-llm
  results    $results
  clients    . $reports/latest/clients/openai-env.sh   (OpenAI SDK, Aider; the CA and key on this machine)

Try it (the key is read by the shell and passed on stdin):
printf 'Authorization: Bearer %s\n' "\$(cat $key_file)" | docker exec -i $container curl -s -H @- -H 'Content-Type: application/json' -d '{"model": "$model", "messages": [{"role": "user", "content": "def fib(n):"}], "max_tokens": 24}' http://127.0.0.1:8000/v1/chat/completions

Or from this machine through the front door (TLS checked against the generated CA):
printf 'Authorization: Bearer %s\n' "\$(cat $key_file)" | curl -s --cacert $ca_file -H @- -H 'Content-Type: application/json' -d '{"model": "$model", "messages": [{"role": "user", "content": "def fib(n):"}], "max_tokens": 24}' https://$ip:8443/v1/chat/completions

Remove it with: make demo-destroy (the reports and secrets stay)
MSG
