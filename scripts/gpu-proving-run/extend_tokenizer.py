"""Give the 16k stand-in tokenizer an entry for every id of the 152,064-token model.

The random-weight checkpoint samples ids from Qwen2.5's whole vocabulary; with the stand-in's 16k
entries most of them decode to nothing, vLLM then streams no content chunks and a client sees no
tokens arrive. Each added id decodes to " t<id>" (never produced by encoding: no merge leads to
it), so encoding and prompt lengths are unchanged and every generated token streams as text.
Usage: python extend_tokenizer.py STAND_IN_DIR OUT_DIR
"""

import json
import shutil
import sys
from pathlib import Path

VOCAB = 152064


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    used = set(vocab.values()) | {token["id"] for token in data["added_tokens"]}
    for token_id in range(VOCAB):
        if token_id not in used:
            vocab[f"\u0120t{token_id}"] = token_id  # \u0120: byte-level BPE's space
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(src / name, out / name)
    print(f"{len(vocab)} entries in {out / 'tokenizer.json'}")


if __name__ == "__main__":
    main()
