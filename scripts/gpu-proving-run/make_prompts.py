"""Prompt files for `vllm bench serve --dataset-name custom`, built like aimachine-bench's own.

Every prompt is exactly INPUT_LEN tokens after the chat template and distinct from every other
(prefix caching must not favour either client). Usage:
python make_prompts.py TOKENIZER_DIR OUT_DIR SEED PREFIX CONCURRENCY:REQUESTS[:FILES] ...
e.g. `... .gpu/tools/stand-in-tokenizer .gpu/run 777 j 1:64:3 2:64:3` -> j-c1-1.jsonl ... j-c2-3.jsonl
"""

import json
import sys
from pathlib import Path

from aimachine.bench.workloads import ModelTokenizer, random_prompts

INPUT_LEN = 512
OUTPUT_LEN = 128


def main() -> None:
    tokenizer_dir, out, seed, prefix = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    plan = []
    for spec in sys.argv[5:]:
        concurrency, requests, files = ([*map(int, spec.split(":")), 1])[:3]
        plan += [(concurrency, requests, k) for k in range(1, files + 1)]
    prompts = random_prompts(ModelTokenizer(tokenizer_dir), "chat", INPUT_LEN, sum(p[1] for p in plan), seed)
    out.mkdir(parents=True, exist_ok=True)
    for concurrency, requests, k in plan:
        with (out / f"{prefix}-c{concurrency}-{k}.jsonl").open("w", encoding="utf-8") as handle:
            for prompt in prompts[:requests]:
                handle.write(json.dumps({"prompt": prompt.text, "output_tokens": OUTPUT_LEN}) + "\n")
        prompts = prompts[requests:]
    print(f"{len(plan)} files in {out}")


if __name__ == "__main__":
    main()
