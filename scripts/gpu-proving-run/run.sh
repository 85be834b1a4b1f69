#!/bin/bash
# The GPU proving run (docs/benchmarks.md, "Proving run on a real GPU"): vLLM started with the
# appliance's rendered config and unit environment, then aimachine-bench and `vllm bench serve`
# against it. Runs on the lent GPU machine from the checkout's root; each argument is a step, and
# steps already done (marker in /tmp/res) are skipped, so one run can span several warm calls.
# Inputs, carried in .gpu/ (git-ignored): p/dpartN/partN (vLLM 0.26.0 wheels, ../shared/gpu),
# tools/make_awq_model.py + stand-in-tokenizer (../shared/gpu), tools/tok152k (extend_tokenizer.py),
# render/ (playbooks/render-serving-config.yml -e render_dir=.gpu/render), run/*.jsonl (make_prompts.py:
# prefixes r1/r2 with 1:8 2:8 4:16 8:32 16:64 32:128 for vllm-a/b, i with C:N:2 for lvl-C, j (or $PFX) with C:64:REPS for rep-C, REPS default 3).
set -u
R=/tmp/res; mkdir -p $R /tmp/parts
M=/var/lib/aimachine/models/Qwen2.5-7B-Instruct-AWQ
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/scripts/src
log() { echo "[$(date +%T)] $*" | tee -a $R/steps.log; }
now() { date +%s.%N; }
healthy() { python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)" 2>/dev/null; }
start_server() { # $1: label [$2: config]
  local cfg=${2:-/etc/aimachine/aimachine-llm.yaml}
  ( set -a; . /etc/aimachine/aimachine-llm.env; set +a; export HOME=/var/lib/aimachine/server
    cd /var/lib/aimachine/server
    exec setsid python3 -m vllm.entrypoints.cli.main serve --config "$cfg" \
      > $R/vllm-$1.log 2>&1 < /dev/null ) &
  local t0; t0=$(now); echo $! > $R/server.pid
  while ! healthy; do
    sleep 0.5
    if ! kill -0 "$(cat $R/server.pid)" 2>/dev/null; then log "server $1 DIED"; tail -40 $R/vllm-$1.log; return 1; fi
    if awk -v a="$(now)" -v b="$t0" 'BEGIN{exit !(a-b>480)}'; then log "server $1 not healthy in 480 s"; return 1; fi
  done
  log "server $1 healthy after $(awk -v a="$(now)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}') s"
}
stop_server() { local p; p=$(cat $R/server.pid 2>/dev/null) || return 0; kill -TERM -- -"$p" 2>/dev/null; for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done; kill -KILL -- -"$p" 2>/dev/null; sleep 2; log "server stopped"; }
key() { sed -n 's/^VLLM_API_KEY=//p' /etc/aimachine/aimachine-llm.env; }
ours() { # $1 round $2 seed $3 levels $4 output-len
  OPENAI_API_KEY=$(key) python3 -m aimachine.bench.cli --base-url http://127.0.0.1:8000 --model-dir $M \
    --input-len 512 --output-len "${4:-128}" --ignore-eos yes --temperature 0 --concurrency "$3" --seed "$2" \
    --telemetry-hz 10 --no-progress --output $R/ours-$1 > $R/ours-$1.txt 2>&1; log "ours $1 rc=$?"; tail -12 $R/ours-$1.txt; }
vb() { # $1 round
  for c in 1 2 4 8 16 32; do n=$(( c*4 > 8 ? c*4 : 8 ))
    OPENAI_API_KEY=$(key) python3 -m vllm.entrypoints.cli.main bench serve --backend openai-chat \
      --base-url http://127.0.0.1:8000 --endpoint /v1/chat/completions --model qwen2.5-7b-instruct --tokenizer $M \
      --dataset-name custom --dataset-path .gpu/run/$1-c$c-1.jsonl --skip-chat-template --custom-output-len 128 \
      --num-prompts $n --max-concurrency $c --ignore-eos --temperature 0 --disable-shuffle --disable-tqdm \
      --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 \
      --save-result --result-dir $R/vllm-$1 --result-filename c$c.json > $R/vllm-$1-c$c.txt 2>&1
    log "vllm bench $1 c$c rc=$? $(grep -E 'Mean TTFT|Mean TPOT|Output token throughput' $R/vllm-$1-c$c.txt | tr -s ' ' | tr '\n' ';')"
  done; }
# One run of either client at one level, for the alternated comparisons (steps lvl-C, rep-C):
# $1 file prefix (i, j), $2 streams, $3 requests, then ours: $4 seed $5 run; vLLM's: $4 run.
# The server's own TTFT (vLLM's Prometheus histogram: sum and count) around each run, so a
# client's figure can be set against the server's for the same minutes.
srv_ttft() { python3 -c "import urllib.request as u; m=u.urlopen('http://127.0.0.1:8000/metrics', timeout=5).read().decode()
v={k: sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith('vllm:time_to_first_token_seconds_'+k)) for k in ('sum','count')}
print('$1', v['sum'], int(v['count']))" >> $R/server-ttft.tsv; }
pair_ours() { srv_ttft "$1-ours-c$2-$5 before"; OPENAI_API_KEY=$(key) python3 -m aimachine.bench.cli --base-url http://127.0.0.1:8000 --model-dir $M \
    --input-len 512 --output-len 128 --ignore-eos yes --temperature 0 --concurrency $2 --num-requests $3 --warmup 1 \
    --seed $4 --telemetry-hz 10 --no-progress --output $R/$1-ours-c$2-$5 > $R/$1-ours-c$2-$5.txt 2>&1
  log "ours c$2 #$5 rc=$? $(grep -E "^ +c$2 " $R/$1-ours-c$2-$5.txt)"; srv_ttft "$1-ours-c$2-$5 after"; }
pair_vllm() { srv_ttft "$1-vllm-c$2-$4 before"; OPENAI_API_KEY=$(key) python3 -m vllm.entrypoints.cli.main bench serve --backend openai-chat \
    --base-url http://127.0.0.1:8000 --endpoint /v1/chat/completions --model qwen2.5-7b-instruct --tokenizer $M \
    --dataset-name custom --dataset-path .gpu/run/$1-c$2-$4.jsonl --skip-chat-template --custom-output-len 128 \
    --num-prompts $3 --max-concurrency $2 --ignore-eos --temperature 0 --disable-shuffle --disable-tqdm \
    --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 --save-result --save-detailed \
    --result-dir $R/$1-vllm --result-filename c$2-$4.json > $R/$1-vllm-c$2-$4.txt 2>&1
  log "vllm c$2 #$4 rc=$? $(grep -E 'Mean TTFT|Mean TPOT|Output token throughput' $R/$1-vllm-c$2-$4.txt | tr -s ' ' | tr '\n' ';')"; srv_ttft "$1-vllm-c$2-$4 after"; }
for step in "$@"; do
  [ "$step" != pack ] && [ -e $R/done-$step ] && { log "skip $step (done)"; continue; }
  log "step $step"
  case $step in
    parts0) cp .gpu/p/dpart0/part0 /tmp/parts/ && nvidia-smi -L ;;
    model) python3 .gpu/tools/make_awq_model.py /tmp/model && cp .gpu/tools/stand-in-tokenizer/* /tmp/model/ && cp -f .gpu/tools/tok152k/* /tmp/model/ && ls -la /tmp/model ;;
    parts[1-6]) n=${step#parts}; cp .gpu/p/dpart$n/part$n /tmp/parts/ ;;
    install)
      cat /tmp/parts/part0 /tmp/parts/part1 /tmp/parts/part2 /tmp/parts/part3 /tmp/parts/part4 /tmp/parts/part5 /tmp/parts/part6 > /tmp/w.tar
      echo "sha $(sha256sum /tmp/w.tar | cut -c1-16) want $(cat .gpu/p/SHA256-PREFIX 2>/dev/null || echo b119fdc40e74d4bc)"
      mkdir -p /tmp/wh && tar -C /tmp/wh -xf /tmp/w.tar && rm -f /tmp/w.tar
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/wh/*.whl || exit 1
      mkdir -p /var/lib/aimachine/models /var/lib/aimachine/server /etc/aimachine
      ln -sfn /tmp/model $M
      install -m 0600 .gpu/render/aimachine-llm.env /etc/aimachine/aimachine-llm.env
      total=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0)
      util=$(python3 -c "print(round(0.95*16384/$total, 5))")
      sed "s/^gpu-memory-utilization: .*/gpu-memory-utilization: $util/" .gpu/render/aimachine-llm.yaml > /etc/aimachine/aimachine-llm.yaml
      diff .gpu/render/aimachine-llm.yaml /etc/aimachine/aimachine-llm.yaml | tee $R/config-diff.txt
      python3 -c "import vllm; print('vllm', vllm.__version__)" 2>&1 | tail -1 | tee $R/versions.txt
      nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.mem,pstate --format=csv | tee -a $R/versions.txt
      python3 -m aimachine.gpu > $R/gpu-facts.json 2>&1; head -c 1500 $R/gpu-facts.json ;;
    cold) rm -rf /var/lib/aimachine/server/* /root/.cache/vllm /tmp/torchinductor_*; start_server cold || exit 1 ;;
    tok) stop_server; mkdir -p $R/old && mv $R/vllm-r1* $R/ours-r1* $R/smi-ours-r1.csv $R/old/; cp -f .gpu/tools/tok152k/* /tmp/model/ && ls -la /tmp/model/tokenizer.json ;;
    mbt8k) stop_server; sed 's/^max-num-batched-tokens: .*/max-num-batched-tokens: 8192/' /etc/aimachine/aimachine-llm.yaml > /tmp/cfg8k.yaml
      start_server mbt8k /tmp/cfg8k.yaml; grep -h "Actual usage\|Available KV\|KV cache size" $R/vllm-mbt8k.log | cut -c1-600; stop_server ;;
    ours-a|ours-b) healthy || start_server extra || exit 1
      ( nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw,temperature.gpu,clocks.sm,clocks.mem --format=csv -lms 200 > $R/smi-$step.csv & echo $! > $R/smi.pid )
      ours "${step#ours-}" "$([ $step = ours-a ] && echo 1 || echo 2)" 1,2,4,8,16,32; kill "$(cat $R/smi.pid)" ;;
    vllm-a|vllm-b) healthy || start_server extra || exit 1; vb "$([ $step = vllm-a ] && echo r1 || echo r2)" ;;
    single) healthy || start_server extra || exit 1; ours single 7 1 512 ;;
    restart) stop_server; rm -rf /tmp/torchinductor_* /root/.cache/vllm /root/.triton; du -sh /var/lib/aimachine/server/* | tee $R/cache-size.txt
      start_server warm || exit 1
      healthy && ours after-restart 9 1 128 ;;
    warmup) healthy || start_server extra || exit 1; ours warmup 77 1,2,4,8,16,32 ;;
    lvl-*) healthy || start_server extra || exit 1; c=${step#lvl-}
      case $c in 1|2|4) n=32 ;; 8) n=64 ;; *) n=128 ;; esac
      pair_ours i $c $n $((1000 + c)) 1; pair_vllm i $c $n 1; pair_vllm i $c $n 2; pair_ours i $c $n $((2000 + c)) 2 ;;
    rep-*) healthy || start_server extra || exit 1; c=${step#rep-}; n=64
      p=${PFX:-j}; for k in $(seq "${REPS:-3}"); do pair_ours $p $c $n $(((k + 2) * 1000 + c)) $k; pair_vllm $p $c $n $k; done ;;
    stop) stop_server ;;
    pack) for f in $R/vllm-*.log; do grep -E "max_model_len|max_seq_len|KV cache|Available KV|CUDA graph|kernel|Kernel|Model loading took|torch.compile|Compil|memory|Maximum concurrency|init engine|Loading weights|warm" "$f" | grep -v "GET /health" | tail -80 > "${f%.log}.key.txt"; done
      tar -C /tmp -czf $OUT/res.tgz res && ls -la $OUT ;;
  esac
  rc=$?; [ $rc = 0 ] && touch $R/done-$step; log "end $step rc=$rc"
done
