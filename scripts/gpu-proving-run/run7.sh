#!/bin/bash
# GPU proving run 7 (issues 15, 16, 18.2, 21 prep): the appliance's rendered configs on the lent H200.
#
# ---- What the lead does (every command is run from the checkout's root; each < 2000 chars) ----
# On the CPU machine, once (about 1 minute; needs .venv with Ansible):
#   export PYTHONPATH=$PWD/scripts/src; .venv/bin/python scripts/gpu-proving-run/render_run7.py
#   -> .gpu/render7/ (git-ignored): profile, defaults, spec-ngram, spec-suffix, chat, coder, embed,
#      tp2-14b .yaml, aimachine-llm.env, predictions.json. .gpu/p/dpart0..6 (prepare-wheels.sh) and
#      .gpu/tools/stand-in-tokenizer + .gpu/tools/tok152k (extend_tokenizer.py) as for run.sh.
# Device calls, kind nvidia-h200, back to back (/tmp survives only while the machine stays warm):
#   calls 1-6: carry [".gpu/p/dpartN"]  command: bash scripts/gpu-proving-run/run7.sh partsN
#   call 7:    carry [".gpu/p/dpart6", ".gpu/render7", ".gpu/tools"]
#              command: bash scripts/gpu-proving-run/run7.sh parts6 install
#              (cat + pip install of the wheels into /tmp/site, aimachine-bench from scripts/ with
#              --no-deps, the bench's imports checked, the three random-weight checkpoints, ~2 min)
#   call 8 (measuring, <= 9.5 min): carry [".gpu/render7", ".gpu/tools"]
#              command: bash scripts/gpu-proving-run/run7.sh a-profile a-defaults pack
#   call 9 (measuring, <= 9.5 min): carry [".gpu/render7", ".gpu/tools"]
#              command: bash scripts/gpu-proving-run/run7.sh d-restart e-7mb b-ngram b-suffix c-bundle pack
#   timeout_s 580 for calls 8-9. Every step checks the time left (BUDGET, default 550 s from the
#   call's start) before it begins and is deferred when it would not finish; a step done is
#   skipped when named again, so a further call with the same command resumes where it stopped.
#   Results: $OUT/r7.tgz (all of /tmp/r7) and $OUT/summary.txt (each step's key lines).
# Run 8 (session 6: #15 re-measured with 512-token CUDA graphs, the restart's time, the clients'
#   endpoints): calls 1-6 as above; call 7: carry [".gpu/p/dpart6", ".gpu/render7", ".gpu/tools"]
#   BUDGET=570 bash scripts/gpu-proving-run/run7.sh parts6 install a-profile a-defaults pack
#   then carry [".gpu/render7", ".gpu/tools"]: BUDGET=570 bash scripts/gpu-proving-run/run7.sh a-defaults d-restart2 f-clients pack
# Run 8 as made (session 7): calls 1-6; call 7 BUDGET=570 ... parts6 install a-profile f-clients d-import pack;
#   call 8 BUDGET=570 ... a-defaults d-restart2 pack; call 9 BUDGET=300 ... d-restart3 pack
# Run 9 as made (session 8: #15, three configs up at once, forked restarts, the one-file compile
#   artifact): calls 1-6; call 7 carry [".gpu/p/dpart6", ".gpu/render7", ".gpu/tools"]:
#   CHECKPOINTS=chat BUDGET=580 bash scripts/gpu-proving-run/run7.sh parts6 install g-start pack;
#   then carry [".gpu/render7", ".gpu/tools"]: BUDGET=580 ... g-rounds pack; BUDGET=580 ... g-rounds g-restart pack;
#   BUDGET=300 ... g-mega pack (its need lowered to 270 on the device); a last call by hand sourced
#   these functions for one more restart with the artifact and a 1- and 4-stream bench (mega2).
# Run 10 (session 9): calls 1-6; call 7 carry [".gpu/p/dpart6", ".gpu/render7", ".gpu/tools"]:
#   CHECKPOINTS=chat BUDGET=580 bash scripts/gpu-proving-run/run7.sh parts6 install h-start pack;
#   then carry [".gpu/render7", ".gpu/tools"]: BUDGET=300 ... h-warm h-rounds pack, the same again
#   until h-rounds is done (it resumes), then BUDGET=300 ... h-restart pack. Then ab_table.py
#   csv/report as for run 9, and ab_table.py pooled (every request's TTFT, all turns). As made:
#   calls 1-7 came back (536 s); the first measuring call (580 s) was lost with the machine, and
#   with it all it had measured: hence calls of 300 s.
# Issue 21 (needs nvidia-h200-x2, withheld now; prepared, not run): calls 1-7 on that kind, then
#   carry [".gpu/render7", ".gpu/tools"]  command: bash scripts/gpu-proving-run/run7.sh t-tp2 pack
# ---------------------------------------------------------------------------------------------
# Random weights: speed and memory only. Never read an acceptance rate or a speculative speedup
# from them (the text is noise, so ngram/suffix accept almost nothing: that is the overhead figure).
set -u
R=/tmp/r7; G=$PWD/.gpu/render7; C=/tmp/r7cfg
mkdir -p $R $C /tmp/parts
M=/var/lib/aimachine/models/Qwen2.5-7B-Instruct-AWQ
ENVF=/etc/aimachine/aimachine-llm.env
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/scripts/src
T0=$(date +%s); BUDGET=${BUDGET:-550}
log() { echo "[$(date +%T)] $*" | tee -a $R/steps.log; }
now() { date +%s.%N; }
left() { echo $((T0 + BUDGET - $(date +%s))); }
key() { sed -n 's/^VLLM_API_KEY=//p' $ENVF; }
healthy() { python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$1/health', timeout=2).status == 200 else 1)" 2>/dev/null; }

# start LABEL CONFIG PORT: vLLM with that config and the unit's environment, HOME in the state
# dir (its caches kept between starts, as on the appliance); an option this vLLM lacks
# ("unrecognized arguments") is dropped from the copy, logged, and the start retried (twice at most).
start() {
  local label=$1 cfg=$2 port=$3 t0 pid dt bad try
  for try in 1 2 3; do
    # START_ENV: extra VAR=value words for this start only (the restart experiments).
    ( set -a; . $ENVF; set +a; export HOME=/var/lib/aimachine/server; cd /var/lib/aimachine/server
      exec env ${START_ENV:-} setsid python3 -m vllm.entrypoints.cli.main serve --config "$cfg" > $R/vllm-$label.log 2>&1 < /dev/null ) &
    pid=$!; echo $pid > $R/pid-$port; t0=$(now)
    while ! healthy $port; do
      sleep 0.5
      if ! kill -0 $pid 2>/dev/null; then
        bad=$(grep -o 'unrecognized arguments: --[a-z0-9-]*' $R/vllm-$label.log | head -1 | sed 's/.*--//')
        if [ -n "$bad" ] && [ $try -lt 3 ]; then log "$label: this vLLM lacks $bad; dropped, retrying"; sed -i "/^$bad:/d" "$cfg"; continue 2; fi
        # An older PoolerConfig may name its fields otherwise: its default pooling (last token) then.
        if grep -q '^pooler-config:' "$cfg" && grep -qiE 'pooler|pooling_type|is_matryoshka' $R/vllm-$label.log && [ $try -lt 3 ]; then
          log "$label: this vLLM refuses the catalog's pooler-config/hf-overrides; dropped, retrying"; sed -i '/^pooler-config:/d; /^hf-overrides:/d' "$cfg"; continue 2; fi
        log "$label DIED"; tail -25 $R/vllm-$label.log | cut -c1-400; return 1
      fi
      if [ "$(left)" -lt 3 ]; then log "$label not healthy before the budget ran out"; stop $port; return 1; fi
    done
    dt=$(awk -v a="$(now)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}')
    echo "$label $dt" >> $R/starts.tsv; log "$label healthy after $dt s"
    grep -h "GPU KV cache size\|Available KV cache\|Actual usage\|Model loading took\|init engine" $R/vllm-$label.log | cut -c1-420 | tee -a $R/summary.txt
    return 0
  done
}
stop() { local p; for port in "$@"; do p=$(cat $R/pid-$port 2>/dev/null) || continue
  kill -TERM -- -"$p" 2>/dev/null; for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- -"$p" 2>/dev/null; rm -f $R/pid-$port; done; sleep 2; }
stop_all() { stop 8000 8001 8002; }
cfg() { cp -f $G/$1.yaml $C/$1.yaml && echo $C/$1.yaml; }
# cfg_on NAME PORT [COPY]: cfg, as COPY.yaml when given, serving on PORT (several up at once).
cfg_on() { local c=$C/${3:-$1}.yaml; cp -f $G/$1.yaml "$c" && sed -i "s/^port: .*/port: $2/" "$c" && echo "$c"; }
# import_bound LABEL: the time of the API server's import alone, the bound a restart is held to.
import_bound() { python3 -c "import time; t = time.time(); import vllm.entrypoints.openai.api_server; print(f'$1: {time.time() - t:.1f} s')" 2>&1 | tail -1 | tee -a $R/summary.txt; }
# vb LABEL PORT LEVELS: vllm bench serve, random dataset, ignore_eos, in one process (bench_levels.py).
vb() { OPENAI_API_KEY=$(key) ${VB_TIMEOUT:+timeout $VB_TIMEOUT} python3 scripts/gpu-proving-run/bench_levels.py $R/vb "$1" "$3" --backend openai \
    --base-url http://127.0.0.1:$2 --endpoint /v1/completions --model "$4" --tokenizer "${5:-$M}" 2>&1 \
    | grep -E "tok/s|failed|no result|unavailable" | tee -a $R/summary.txt; }
# ours LABEL PORT LEVELS N [args]: aimachine-bench, 512 in / 128 out, ignore_eos, /metrics around each level.
ours() { local label=$1 port=$2 levels=$3 n=$4; shift 4
  OPENAI_API_KEY=$(key) python3 -m aimachine.bench.cli --base-url http://127.0.0.1:$port --model-dir $M \
    --concurrency "$levels" --num-requests "$n" --warmup 2 --temperature 0 --no-progress --output $R/ours-$label "$@" \
    > $R/ours-$label.txt 2>&1; log "ours $label rc=$?"; grep -E "^ +c?[0-9]+ |server:" $R/ours-$label.txt | head -24 | tee -a $R/summary.txt; }
# vbx LABEL PORT LEVELS PROMPTS_PER_STREAM SECONDS: one vb, skipped when done, deferred without the time.
# Done only when every level left its result file (vb's pipe ends in tee: its status says nothing).
vbx() { [ -e $R/done-vb-$1 ] && return 0; need "$5" || return 1
  PROMPTS_PER_STREAM=$4 vb "$1" "$2" "$3" qwen2.5-7b-instruct
  [ "$(ls $R/vb/$1-c*.json 2>/dev/null | wc -l)" -ge "$(echo "$3" | tr ',' '\n' | wc -l)" ] && touch $R/done-vb-$1; }
# turn NAME SEED LEVELS PROMPTS_PER_STREAM SECONDS CONFIG:PORT...: one bench process for the configs
# served at once, level by level in the order given, the prompts of seed SEED shared by them
# (files CONFIG-NAME-cC-I.json). Done when every file is there; cut at the budget, it resumes.
turn() { local name=$1 seed=$2 levels=$3 k=$4 s=$5 x list=; shift 5
  [ -e $R/done-turn-$name ] && return 0; need "$s" || return 1
  for x in "$@"; do list="$list,${x%:*}-$name@${x#*:}"; done
  BENCH_SEED=$seed PROMPTS_PER_STREAM=$k VB_TIMEOUT=$(( $(left) - 3 )) vb "${list#,}" 8000 "$levels" qwen2.5-7b-instruct
  [ "$(ls $R/vb/*-$name-c*.json 2>/dev/null | wc -l)" -ge $(( $# * $(echo "$levels" | tr ',' '\n' | wc -l) )) ] && touch $R/done-turn-$name; }
port_of() { case $1 in profile) echo 8000 ;; defaults) echo 8001 ;; *) echo 8002 ;; esac; }
# timeline LABEL: vLLM's own lines of a start, for where its seconds go.
timeline() { grep -hE "non-default args|Loading weights|Model loading took|torch.compile|Compil|compil|AOT|aot|artifact|Capturing CUDA|Graph capturing finished|init engine|KV cache size|Starting vLLM|Application startup" \
    $R/vllm-$1.log | cut -c1-230 | tee $R/timeline-$1.txt | tee -a $R/summary.txt; }
need() { if [ "$(left)" -lt "$1" ]; then log "step $step deferred: needs ~$1 s, $(left) s left (run the same command again)"; return 1; fi; }

for step in "$@"; do
  [ "$step" != pack ] && [ -e $R/done-$step ] && { log "skip $step (done)"; continue; }
  log "step $step ($(left) s left)"; echo "== $step" >> $R/summary.txt
  rc=0
  case $step in
    parts[0-6]) n=${step#parts}; cp .gpu/p/dpart$n/part$n /tmp/parts/ || rc=1; [ $n = 0 ] && nvidia-smi -L ;;
    install)
      cat /tmp/parts/part0 /tmp/parts/part1 /tmp/parts/part2 /tmp/parts/part3 /tmp/parts/part4 /tmp/parts/part5 /tmp/parts/part6 > /tmp/w.tar || exit 1
      mkdir -p /tmp/wh && tar -C /tmp/wh -xf /tmp/w.tar && rm -f /tmp/w.tar
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/wh/*.whl || exit 1
      # aimachine-bench from scripts/ without its dependencies (no index here): they must be on the device.
      python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site ./scripts 2>&1 | tail -2 \
        || log "aimachine not installed (PYTHONPATH has scripts/src)"
      python3 - <<'EOF' 2>&1 | tee -a $R/summary.txt
import importlib, sys
mods = ["httpx", "numpy", "yaml", "tqdm", "safetensors", "tokenizers", "matplotlib", "pynvml", "jinja2", "aiohttp", "torch", "vllm"]
missing = [m for m in mods if importlib.util.find_spec(m) is None]
import torch, vllm
print("python", sys.version.split()[0], "torch", torch.__version__, "vllm", vllm.__version__, "missing for aimachine-bench:", missing or "none")
import aimachine.bench.cli  # noqa: F401
print("aimachine.bench imports")
EOF
      mkdir -p /var/lib/aimachine/models /var/lib/aimachine/server /etc/aimachine
      install -m 0600 $G/aimachine-llm.env $ENVF
      python3 scripts/gpu-proving-run/make_checkpoint.py qwen2.5-7b-awq /tmp/model || exit 1
      mkdir -p /tmp/m-coder /tmp/m-embed
      # CHECKPOINTS=chat (run 9): the 7B only; the bundle's two small models are not served then.
      if [ "${CHECKPOINTS:-all}" = all ]; then
        python3 scripts/gpu-proving-run/make_checkpoint.py qwen2.5-coder-1.5b-awq /tmp/m-coder || exit 1
        python3 scripts/gpu-proving-run/make_checkpoint.py qwen3-embedding-0.6b /tmp/m-embed || exit 1
      fi
      for d in /tmp/model /tmp/m-coder /tmp/m-embed; do cp .gpu/tools/stand-in-tokenizer/* $d/; done
      cp -f .gpu/tools/tok152k/* /tmp/model/; cp -f .gpu/tools/tok152k/* /tmp/m-coder/
      # The coder's vocabulary is 151,936: no token id of a prompt may reach past it (an embedding
      # lookup out of range), so its copy of the extended tokenizer stops there.
      python3 -c "import json; p = '/tmp/m-coder/tokenizer.json'; d = json.load(open(p)); d['model']['vocab'] = {k: i for k, i in d['model']['vocab'].items() if i < 151936}; json.dump(d, open(p, 'w'), ensure_ascii=False)"
      ln -sfn /tmp/model $M; du -sh /tmp/model /tmp/m-coder /tmp/m-embed | tee -a $R/summary.txt
      nvidia-smi --query-gpu=name,memory.total,memory.reserved,driver_version --format=csv | tee -a $R/summary.txt ;;
    # Run 8 (#15 re-measured): 8 prompts a stream (steadier TTFT p50), two rounds of every level for
    # each config; the profile's second round runs on the sampled restart (d-restart2).
    a-profile) need 200 || continue; stop_all; start profile "$(cfg profile)" 8000 || { rc=1; stop_all; }
      [ $rc = 0 ] && PROMPTS_PER_STREAM=8 vb profile-1 8000 1,4,16,32,64,4:8192:256 qwen2.5-7b-instruct ;;
    a-defaults) need 240 || continue; stop_all; start defaults "$(cfg defaults)" 8000 || { rc=1; stop_all; }
      [ $rc = 0 ] && PROMPTS_PER_STREAM=8 vb defaults-1 8000 1,4,16,32,64,4:8192:256 qwen2.5-7b-instruct
      [ $rc = 0 ] && [ "$(left)" -gt 330 ] && PROMPTS_PER_STREAM=8 vb defaults-2 8000 1,4,16,32,64,4:8192:256 qwen2.5-7b-instruct
      stop_all ;;
    # Where a restart's time goes (#15.5): the import bound with and without compiled bytecode (the
    # appliance's venv is read-only to the unit, so without --compile-bytecode nothing is ever
    # cached), then a restart with stack samples of every process, then one as today's venv.
    d-import) need 60 || continue
      import_bound "import, bytecode cached"
      PYTHONPYCACHEPREFIX=/tmp/nopyc PYTHONDONTWRITEBYTECODE=1 import_bound "import, no bytecode" ;;
    d-restart2) need 250 || continue; stop_all
      ( for _ in $(seq 45); do echo "=== $(date +%s.%N)"; ps -eo pid,ppid,etimes,pcpu,args --sort=pid | grep -v "ps -eo" | cut -c1-200 | tail -n 40; sleep 2; done > $R/ps-restart.txt 2>&1 & )
      START_ENV="AIMACHINE_STACK_DIR=$R/stacks-restart PYTHONPATH=$PWD/scripts/gpu-proving-run/startup_sampler:$PYTHONPATH" start restart-sampled "$(cfg profile)" 8000 || rc=1
      python3 scripts/gpu-proving-run/startup_sampler/summarize.py $R/stacks-restart > $R/stacks-restart.txt 2>&1
      cut -c1-220 $R/stacks-restart.txt | awk 'NR % 3 == 1' | head -80 | tee -a $R/summary.txt
      grep -hE "non-default args|incorrect regex|Initializing a V1|Loading weights|Model loading took|torch.compile took|Graph capturing finished|init engine|Starting vLLM" $R/vllm-restart-sampled.log | cut -c1-160 | tee -a $R/summary.txt
      [ $rc = 0 ] && PROMPTS_PER_STREAM=8 vb profile-2 8000 1,4,16,32,64,4:8192:256 qwen2.5-7b-instruct
      stop_all
      [ "$(left)" -gt 100 ] && { START_ENV="PYTHONPYCACHEPREFIX=/tmp/nopyc PYTHONDONTWRITEBYTECODE=1" start restart-nobytecode "$(cfg profile)" 8000 || rc=1; } ;;
    # The engine core's start method (#15.5): fork named explicitly, and the engine in the API
    # server's process, each a restart with the kept caches; the in-process one benchmarked too.
    d-restart3) need 200 || continue; stop_all
      START_ENV="VLLM_WORKER_MULTIPROC_METHOD=fork" start restart-fork "$(cfg profile)" 8000 || rc=1
      grep -hE "spawn|fork|Initializing a V1|Model loading took|init engine|Starting vLLM" $R/vllm-restart-fork.log | cut -c1-160 | tee -a $R/summary.txt
      stop_all
      [ "$(left)" -gt 120 ] && { START_ENV="VLLM_ENABLE_V1_MULTIPROCESSING=0" start restart-inproc "$(cfg profile)" 8000 || rc=1; }
      grep -hE "spawn|fork|Initializing a V1|Model loading took|init engine|Starting vLLM" $R/vllm-restart-inproc.log 2>/dev/null | cut -c1-160 | tee -a $R/summary.txt
      [ $rc = 0 ] && [ "$(left)" -gt 60 ] && PROMPTS_PER_STREAM=4 vb inproc 8000 1,16,64 qwen2.5-7b-instruct
      stop_all ;;
    # The endpoints Codex CLI (Responses) and Claude Code (Anthropic Messages) talk to, on the rendered vLLM.
    f-clients) need 60 || continue; healthy 8000 || { start clients "$(cfg profile)" 8000 || rc=1; }
      [ $rc = 0 ] && OPENAI_API_KEY=$(key) python3 - <<'EOF' 2>&1 | tee -a $R/summary.txt
import json, os, urllib.error, urllib.request
key = os.environ["OPENAI_API_KEY"]
calls = [
    ("/v1/responses", {"model": "qwen2.5-7b-instruct", "input": "Write a Python function add(a, b).", "max_output_tokens": 24}),
    ("/v1/responses", {"model": "qwen2.5-7b-instruct", "input": "Say hi.", "max_output_tokens": 8, "stream": True}),
    ("/v1/messages", {"model": "qwen2.5-7b-instruct", "max_tokens": 24, "messages": [{"role": "user", "content": "Say hi."}]}),
    ("/v1/messages", {"model": "qwen2.5-7b-instruct", "max_tokens": 8, "stream": True, "messages": [{"role": "user", "content": "Say hi."}]}),
    ("/v1/messages/count_tokens", {"model": "qwen2.5-7b-instruct", "messages": [{"role": "user", "content": "Say hi."}]}),
]
for path, body in calls:
    req = urllib.request.Request("http://127.0.0.1:8000" + path, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + key, "x-api-key": key,
        "anthropic-version": "2023-06-01"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, ctype, text = r.status, r.headers.get("content-type"), r.read(4000).decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, ctype, text = e.code, e.headers.get("content-type"), e.read(600).decode(errors="replace")
    except Exception as e:  # noqa: BLE001
        status, ctype, text = "error", "", repr(e)
    stream = " stream" if body.get("stream") else ""
    print(f"client endpoint {path}{stream}: {status} {ctype}: {' '.join(text.split())[:500]}")
EOF
      ;;
    d-restart) need 150 || continue; stop_all
      # The import bound first, on an idle machine.
      import_bound "import vllm.entrypoints.openai.api_server"
      du -sh /var/lib/aimachine/server/* 2>/dev/null | tee -a $R/summary.txt
      date +%T.%N > $R/restart-t0.txt; start restart "$(cfg profile)" 8000 || rc=1
      # Where the time goes: vLLM's own timestamped lines, from the process start to healthy.
      grep -hE "non-default args|Loading weights|Model loading took|torch.compile|Compil|Capturing CUDA graph|Graph capturing finished|init engine|Starting vLLM API server|Application startup complete" \
        $R/vllm-restart.log | cut -c1-260 | tee $R/restart-breakdown.txt | tee -a $R/summary.txt
      [ $rc = 0 ] && ours profile-low 8000 1,4 16 --input-len 512 --output-len 128 --ignore-eos yes
      [ $rc = 0 ] && ours profile-high 8000 16,32,64 128 --input-len 512 --output-len 128 --ignore-eos yes
      [ $rc = 0 ] && bash scripts/gpu-proving-run/capture_metrics.sh $R/captures/vllm-0.26.0-profile > $R/capture-profile.txt 2>&1 ;;
    e-7mb) need 40 || continue; healthy 8000 || { start e7mb "$(cfg profile)" 8000 || rc=1; }
      [ $rc = 0 ] && OPENAI_API_KEY=$(key) python3 - <<'EOF' 2>&1 | tee -a $R/summary.txt
import json, os, time, urllib.error, urllib.request
prompt = "word " * 1_400_000  # 7.0 MB, about 1.4-7 million tokens depending on the tokenizer
for path, body in (("/v1/completions", {"prompt": prompt, "max_tokens": 8}),
                   ("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8})):
    data = json.dumps(dict(body, model="qwen2.5-7b-instruct")).encode()
    req = urllib.request.Request("http://127.0.0.1:8000" + path, data=data, headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
    t = time.time()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, text = r.status, r.read(600).decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read(600).decode(errors="replace")
    except Exception as e:  # noqa: BLE001
        status, text = "error", repr(e)
    print(f"7 MB prompt {path}: {len(data) / 1e6:.1f} MB body -> {status} in {time.time() - t:.2f} s: {text[:400]}")
EOF
      healthy 8000 && log "server still healthy after the 7 MB prompts" ;;
    b-ngram) need 200 || continue; stop_all; start ngram "$(cfg spec-ngram)" 8000 || { rc=1; stop_all; }
      [ $rc = 0 ] && vb ngram 8000 1,4,16 qwen2.5-7b-instruct
      [ $rc = 0 ] && ours ngram-coding 8000 1,16 24 --dataset coding --stop natural --output-len 256
      [ $rc = 0 ] && bash scripts/gpu-proving-run/capture_metrics.sh $R/captures/vllm-0.26.0-ngram > $R/capture-ngram.txt 2>&1
      grep -h "SpecDecoding metrics" $R/vllm-ngram.log | tail -3 | cut -c1-400 | tee -a $R/summary.txt; stop_all ;;
    b-suffix) need 200 || continue; stop_all
      python3 -c "import arctic_inference" 2>/dev/null || log "arctic-inference is not on this machine: vLLM refuses suffix decoding without it (recorded below)"
      start suffix "$(cfg spec-suffix)" 8000 || rc=1
      [ $rc = 0 ] && vb suffix 8000 1,4,16 qwen2.5-7b-instruct
      [ $rc = 0 ] && ours suffix-coding 8000 1,16 24 --dataset coding --stop natural --output-len 256
      grep -h "SpecDecoding metrics\|arctic\|Arctic" $R/vllm-suffix.log | tail -3 | cut -c1-400 | tee -a $R/summary.txt
      stop_all; rc=0 ;;
    c-bundle) need 330 || continue; stop_all
      start chat "$(cfg chat)" 8000 || { rc=1; stop_all; }
      [ $rc = 0 ] && vb chat-alone 8000 1,16,32 qwen2.5-7b-instruct
      [ $rc = 0 ] && { start coder "$(cfg coder)" 8001 || rc=1; }
      [ $rc = 0 ] && { start embed "$(cfg embed)" 8002 || rc=1; }
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv | tee -a $R/summary.txt
      if [ $rc = 0 ]; then
        vb chat-cohosted 8000 1,16,32 qwen2.5-7b-instruct
        vb coder 8001 1,4:1024:32 qwen2.5-coder-1.5b /tmp/m-coder
        OPENAI_API_KEY=$(key) python3 -c "
import json, os, urllib.request
req = urllib.request.Request('http://127.0.0.1:8002/v1/embeddings', data=json.dumps({'model': 'qwen3-embedding-0.6b', 'input': ['def add(a, b): return a + b'] * 8}).encode(),
    headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + os.environ['OPENAI_API_KEY']})
r = json.load(urllib.request.urlopen(req, timeout=60)); print('embeddings:', len(r['data']), 'x', len(r['data'][0]['embedding']), r.get('usage'))" 2>&1 | tail -1 | tee -a $R/summary.txt
      fi
      stop_all ;;
    t-tp2) need 420 || continue; stop_all
      nvidia-smi -L | tee -a $R/summary.txt
      [ -e /tmp/m-14b/config.json ] || { python3 scripts/gpu-proving-run/make_checkpoint.py qwen2.5-14b-awq /tmp/m-14b && cp .gpu/tools/stand-in-tokenizer/* /tmp/m-14b/ && cp -f .gpu/tools/tok152k/* /tmp/m-14b/; }
      # NVLink multicast stays off (the device docs); both GPUs, each capped to a 16 GiB card's budget.
      export NCCL_NVLS_ENABLE=0 CUDA_VISIBLE_DEVICES=0,1
      start tp2 "$(cfg tp2-14b)" 8000 || rc=1
      [ $rc = 0 ] && vb tp2 8000 1,4,16,32 qwen2.5-14b-instruct /tmp/m-14b
      [ $rc = 0 ] && M=/tmp/m-14b ours tp2 8000 1,4,16,32 64 --input-len 512 --output-len 128 --ignore-eos yes
      stop_all; unset CUDA_VISIBLE_DEVICES ;;
    # Run 9 (#15): the profile as sized (128 sequences here), the same with 256 (vLLM's default below 70 GiB)
    # and vLLM's defaults, all three up at once, each capped to a 16 GiB card's budget (idle
    # neighbours cost nothing: run 7), benchmarked in turn so drift and order fall on all alike.
    # They share the compile cache (max-num-seqs is not in vLLM's compile hash): one cold start.
    g-start) need 400 || continue; stop_all
      start profile "$(cfg profile)" 8000 || rc=1
      [ $rc = 0 ] && { start defaults "$(cfg_on defaults 8001)" 8001 || rc=1; }
      [ $rc = 0 ] && { start p256 "$(cfg profile-256)" 8002 || rc=1; }
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv | tee -a $R/summary.txt ;;
    g-rounds)
      for x in profile-r1:8000 defaults-r1:8001 p256-r1:8002 p256-r2:8002 defaults-r2:8001 profile-r2:8000; do
        vbx "${x%:*}" "${x#*:}" 1,4,16,32,64,4:8192:256 8 85 || { rc=1; break; }
      done
      # 4 streams, where run 8 lost: three more turns each, 16 prompts a stream, the order rotated.
      [ $rc = 0 ] && for x in profile-c4a:8000 defaults-c4a:8001 p256-c4a:8002 defaults-c4b:8001 p256-c4b:8002 profile-c4b:8000 \
          p256-c4c:8002 profile-c4c:8000 defaults-c4c:8001; do
        vbx "${x%:*}" "${x#*:}" 4 16 25 || { rc=1; break; }
      done ;;
    # Restarts with caches kept, the engine core forked (the unit's environment), one server at a
    # time: the import bound first, then each profile twice, alternating.
    g-restart) need 150 || continue; stop_all
      import_bound "import, bytecode cached"
      for x in profile:8000:fork-a profile-256:8002:fork256-a profile:8000:fork-b profile-256:8002:fork256-b; do
        l=${x##*:}; [ -e $R/done-$l ] && continue; need 70 || { rc=1; break; }
        y=${x%:*}; start "restart-$l" "$(cfg ${y%:*})" "${y#*:}" || rc=1; timeline "restart-$l"; stop "${y#*:}"
        [ $rc = 0 ] && touch $R/done-$l
      done ;;
    # vLLM's one-file compile artifact (VLLM_USE_MEGA_AOT_ARTIFACT, default on only from torch
    # 2.12): a cold start writes it (its own cache key), a restart loads it; then a short bench.
    g-mega) need 270 || continue; stop_all
      START_ENV="VLLM_USE_MEGA_AOT_ARTIFACT=1" start mega-cold "$(cfg profile)" 8000 || rc=1; timeline mega-cold; stop 8000
      [ $rc = 0 ] && { START_ENV="VLLM_USE_MEGA_AOT_ARTIFACT=1" start mega-warm "$(cfg profile)" 8000 || rc=1; timeline mega-warm; }
      [ $rc = 0 ] && [ "$(left)" -gt 40 ] && PROMPTS_PER_STREAM=8 vb mega 8000 1,16 qwen2.5-7b-instruct
      stop_all ;;
    # Run 10 (session 9): the unit's environment writes VLLM_USE_MEGA_AOT_ARTIFACT=1. The profile
    # as deployed (with it), vLLM's defaults as vLLM 0.26 starts them on torch 2.11 (without it) and
    # the profile without it, all three up at once. h-warm: every server one unmeasured pass of the
    # loaded levels first (run 9's first turns were slower at 4 streams on all three). h-rounds:
    # turns, each one process with the three servers interleaved level by level, its own prompts
    # (BENCH_SEED) shared by the three, the order rotated: every level twice, 32 streams four more
    # turns, one stream two more; then three restarts.
    h-start) need 420 || continue; stop_all
      grep -q '^VLLM_USE_MEGA_AOT_ARTIFACT=1' $ENVF || { log "$ENVF lacks VLLM_USE_MEGA_AOT_ARTIFACT=1: render again"; rc=1; continue; }
      START_ENV="VLLM_USE_MEGA_AOT_ARTIFACT=1" start profile "$(cfg profile)" 8000 || rc=1
      [ $rc = 0 ] && { START_ENV="VLLM_USE_MEGA_AOT_ARTIFACT=0" start defaults "$(cfg_on defaults 8001)" 8001 || rc=1; }
      [ $rc = 0 ] && { START_ENV="VLLM_USE_MEGA_AOT_ARTIFACT=0" start nomega "$(cfg_on profile 8002 nomega)" 8002 || rc=1; }
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv | tee -a $R/summary.txt ;;
    # Its files are turn "warm": ab_table.py leaves them out of the tables.
    h-warm) turn warm 9000 32,64,4:8192:256 4 90 profile:8000 defaults:8001 nomega:8002 || rc=1 ;;
    h-rounds)
      for t in "r1 1000 profile defaults nomega" "r2 2000 nomega defaults profile"; do set -- $t
        turn "$1" "$2" 1,4,16,32,64,4:8192:256 8 220 "$3:$(port_of $3)" "$4:$(port_of $4)" "$5:$(port_of $5)" || { rc=1; break; }
      done
      [ $rc = 0 ] && for t in "c32a 3000 defaults nomega profile" "c32b 4000 profile defaults nomega" \
          "c32c 5000 nomega profile defaults" "c32d 6000 defaults profile nomega" "c1a 7000 nomega profile defaults" \
          "c1b 8000 profile nomega defaults"; do set -- $t
        case $1 in c32*) lv=32 k=16 s=75 ;; *) lv=1 k=8 s=70 ;; esac
        turn "$1" "$2" $lv $k $s "$3:$(port_of $3)" "$4:$(port_of $4)" "$5:$(port_of $5)" || { rc=1; break; }
      done ;;
    h-restart) need 120 || continue; stop_all
      import_bound "import, bytecode cached"
      for l in mega-a mega-b mega-c; do [ -e $R/done-$l ] && continue; need 50 || { rc=1; break; }
        START_ENV="VLLM_USE_MEGA_AOT_ARTIFACT=1" start "restart-$l" "$(cfg profile)" 8000 || rc=1
        timeline "restart-$l"; stop 8000; [ $rc = 0 ] && touch $R/done-$l
      done ;;
    stop) stop_all ;;
    pack)
      python3 - <<'EOF' 2>&1 | tee $R/kv-check.txt | tee -a $R/summary.txt
import json, re, pathlib
pred = json.loads(pathlib.Path(".gpu/render7/predictions.json").read_text())
names = {"profile": "profile", "restart": "profile", "e7mb": "profile", "restart-sampled": "profile",
         "restart-nobytecode": "profile", "clients": "profile", "restart-fork": "profile", "restart-inproc": "profile",
         "p256": "profile-256", "restart-fork-a": "profile", "restart-fork-b": "profile", "restart-fork256-a": "profile-256",
         "restart-fork256-b": "profile-256", "mega-cold": "profile", "mega-warm": "profile", "nomega": "profile",
         "restart-mega-a": "profile", "restart-mega-b": "profile", "restart-mega-c": "profile", "defaults": None, "ngram": "spec-ngram",
         "suffix": "spec-suffix", "chat": "chat", "coder": "coder", "embed": "embed", "tp2": "tp2-14b"}
for log in sorted(pathlib.Path("/tmp/r7").glob("vllm-*.log")):
    label = log.stem.removeprefix("vllm-")
    found = re.findall(r"GPU KV cache size: ([0-9,]+) tokens", log.read_text(errors="replace"))
    key = names.get(label)
    want = pred.get(key, {}).get("kv_cache_tokens") if key else None
    got = [int(f.replace(",", "")) for f in found]
    ratio = f"{want / got[0]:.3f}" if want and got else "-"
    print(f"{label}: vLLM {got or 'no KV line'} tokens, predicted {want}, predicted/vLLM {ratio}")
EOF
      tar -C /tmp -czf $OUT/r7.tgz r7 && cp $R/summary.txt $OUT/summary.txt && ls -la $OUT ;;
    *) log "unknown step $step"; rc=1 ;;
  esac
  [ $rc = 0 ] && touch $R/done-$step; log "end $step rc=$rc"
done
