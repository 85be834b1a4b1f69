#!/bin/bash
# Capture vLLM's Prometheus /metrics just before and after a short aimachine-bench load, for the
# bench's server-metrics tests (scripts/tests/data/bench/vllm-metrics/README.md: copy OUT to
# captures/<name>/ there; the provisional fixtures are rendered, not captured).
# Run on the GPU machine from the checkout's root, after run.sh's "install" step:
#   scripts/gpu-proving-run/run.sh ... install cold          # vLLM up with the rendered config
#   scripts/gpu-proving-run/capture_metrics.sh /tmp/res/captures/vllm-0.26.0-default
#   scripts/gpu-proving-run/run.sh stop
#   { cat /etc/aimachine/aimachine-llm.yaml
#     echo 'speculative-config: {method: ngram, num_speculative_tokens: 3, prompt_lookup_max: 4}'; } > /tmp/cfg-spec.yaml
#   SERVE_CONFIG=/tmp/cfg-spec.yaml scripts/gpu-proving-run/capture_metrics.sh /tmp/res/captures/vllm-0.26.0-ngram
#   scripts/gpu-proving-run/run.sh pack                     # captures/ travels in res.tgz
# SERVE_CONFIG: start vLLM with that config as run.sh does (unit environment) and stop it after.
# BASE (default http://127.0.0.1:8000). The key comes from OPENAI_API_KEY or the unit's
# EnvironmentFile and goes to curl on stdin, never on a command line.
# Prints the bench's table (with each level's "server:" line) and the samples that differ.
set -eu
OUT=${1:?usage: capture_metrics.sh OUTDIR}
BASE=${BASE:-http://127.0.0.1:8000}
ENV_FILE=/etc/aimachine/aimachine-llm.env
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-/tmp/site:$PWD/scripts/src}
mkdir -p "$OUT"
if [ -z "${OPENAI_API_KEY:-}" ] && [ -r "$ENV_FILE" ]; then
  OPENAI_API_KEY=$(sed -n 's/^VLLM_API_KEY=//p' "$ENV_FILE")
fi
export OPENAI_API_KEY=${OPENAI_API_KEY:-}
healthy() { curl -sf -o /dev/null "$BASE/health"; }
metrics() { printf 'Authorization: Bearer %s\n' "$OPENAI_API_KEY" | curl -sf -H @- -H 'Accept: text/plain' "$BASE/metrics" -o "$1"; }

pid=
if [ -n "${SERVE_CONFIG:-}" ]; then
  ( set -a; . "$ENV_FILE"; set +a; export HOME=/var/lib/aimachine/server; cd /var/lib/aimachine/server
    exec setsid python3 -m vllm.entrypoints.cli.main serve --config "$SERVE_CONFIG" > "$OUT/vllm.log" 2>&1 < /dev/null ) &
  pid=$!
  for _ in $(seq 960); do healthy && break; kill -0 "$pid" 2>/dev/null || { tail -40 "$OUT/vllm.log"; exit 1; }; sleep 0.5; done
  trap 'kill -TERM -- -"$pid" 2>/dev/null; sleep 5; kill -KILL -- -"$pid" 2>/dev/null || true' EXIT
fi
healthy || { echo "no healthy server at $BASE"; exit 1; }
python3 -c "import vllm; print(vllm.__version__)" > "$OUT/vllm-version.txt" 2>/dev/null || echo unknown > "$OUT/vllm-version.txt"

# The load: the packaged coding prompts (a shared chat-template prefix, so the prefix cache hits),
# natural stops, 1 then 4 streams, no warm-up: every request falls between curl's two reads.
metrics "$OUT/before.prom"
python3 -m aimachine.bench.cli --base-url "$BASE" --dataset coding --stop natural --output-len 128 \
  --concurrency 1,4 --num-requests 8 --warmup 0 --temperature 0 --no-progress --output "$OUT/bench" \
  > "$OUT/bench.txt" 2>&1 || { cat "$OUT/bench.txt"; exit 1; }
metrics "$OUT/after.prom"
cp "$OUT/bench/bench.json" "$OUT/bench.json"
cat "$OUT/vllm-version.txt" "$OUT/bench.txt"
diff <(grep -E '^vllm:(spec_decode|prefix_cache_(queries|hits)|request_success|request_queue_time_seconds_(sum|count)|time_to_first_token_seconds_(sum|count))' "$OUT/before.prom") \
     <(grep -E '^vllm:(spec_decode|prefix_cache_(queries|hits)|request_success|request_queue_time_seconds_(sum|count)|time_to_first_token_seconds_(sum|count))' "$OUT/after.prom") || true
ls -la "$OUT"
