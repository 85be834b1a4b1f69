"""OpenAI-compatible /v1/embeddings for the CPU engine: the stand-in for vLLM's pooling runner.

`transformers serve` has no /v1/embeddings, so on CPU the appliance serves an embedding model with
this small server instead. It runs with the CPU engine venv's Python (transformers, torch,
fastapi and uvicorn from transformers[serving]; nothing else), on loopback only and without a
key of its own: the front door checks the keys, as it does for `transformers serve`.

    python embeddings_server.py MODEL_DIR [--served-model-name NAME] [--port 8001]

Routes: POST /v1/embeddings (input as a string, a list of strings, a list of token ids or a
list of such lists; encoding_format float or base64, the OpenAI SDK's default; usage.prompt_tokens),
GET /v1/models (the served name and its max_model_len) and GET /health.

Pooling follows what the checkpoint says, as vLLM does: the Sentence Transformers files
(1_Pooling/config.json, modules.json) name the pooling and whether to normalize; without them
the last token, L2-normalized (vLLM's embed converter default). Qwen3-Embedding says the same:
last token (the tokenizer appends <|endoftext|>), then L2 normalization. Inputs longer than the
model takes are refused with a 400 naming the limit, before they reach the model (a text longer
than limit x the longest token in characters is refused without tokenizing it, as vLLM does).
"""

import argparse
import base64
import ipaddress
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger("aimachine.embeddings")
POOLING_MODES = ("last", "mean", "cls")


class RequestError(Exception):
    """A client error: answered with its status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or ("model_not_found" if status == 404 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        kind = "not_found_error" if self.status == 404 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    max_input_tokens: int
    max_inputs: int
    max_request_tokens: int
    max_chars_per_token: int


@dataclass(frozen=True)
class EmbeddingsRequest:
    """A checked request: `inputs` holds strings or token-id lists, in the client's order."""

    inputs: list[str | list[int]]
    encoding_format: str
    dimensions: int | None
    truncate_prompt_tokens: int | None


def parse_request(
    body: Any, served_name: str, dim: int, limits: Limits, matryoshka: bool
) -> EmbeddingsRequest:
    """Check a request body; raise RequestError with the message a client should see."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if model is not None and model != served_name:
        raise RequestError(
            404, f"The model `{model}` does not exist; this server serves `{served_name}`.", "model"
        )
    raw = body.get("input")
    if isinstance(raw, str):
        inputs: list[str | list[int]] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        inputs = [list(raw)]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        inputs = list(raw)
    elif (
        isinstance(raw, list)
        and raw
        and all(
            isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
            for x in raw
        )
    ):
        inputs = [list(x) for x in raw]
    else:
        raise RequestError(
            400,
            "`input` must be a non-empty string, a list of strings, a list of token ids "
            "or a list of such lists.",
            "input",
        )
    if any(len(x) == 0 for x in inputs):
        raise RequestError(400, "`input` must not contain an empty string or an empty token list.", "input")
    if len(inputs) > limits.max_inputs:
        raise RequestError(
            400,
            f"A request takes at most {limits.max_inputs} inputs; this one has {len(inputs)}. "
            "Send them in batches.",
            "input",
        )
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise RequestError(
            400, f"`encoding_format` must be 'float' or 'base64', got {encoding_format!r}.", "encoding_format"
        )
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not isinstance(dimensions, int) or isinstance(dimensions, bool):
            raise RequestError(400, "`dimensions` must be an integer.", "dimensions")
        if not matryoshka:
            raise RequestError(
                400,
                f"Model `{served_name}` does not support Matryoshka embeddings; dimensions must be unset "
                f"(received dimensions={dimensions}).",
                "dimensions",
            )
        if not 1 <= dimensions <= dim:
            raise RequestError(
                400,
                f"Model `{served_name}` only supports dimensions in range [1, {dim}], got {dimensions}.",
                "dimensions",
            )
    truncate = body.get("truncate_prompt_tokens")
    if truncate is not None:
        if not isinstance(truncate, int) or isinstance(truncate, bool) or truncate == 0 or truncate < -1:
            raise RequestError(
                400, "`truncate_prompt_tokens` must be -1 or a positive integer.", "truncate_prompt_tokens"
            )
        truncate = limits.max_input_tokens if truncate == -1 else min(truncate, limits.max_input_tokens)
    # Before any tokenizing: a text this long cannot fit (vLLM's check, renderers/params.py).
    max_chars = limits.max_input_tokens * limits.max_chars_per_token
    for index, item in enumerate(inputs):
        if truncate is None and isinstance(item, str) and len(item) > max_chars:
            raise RequestError(
                400,
                f"Model `{served_name}` takes at most {limits.max_input_tokens} tokens per input; "
                f"input {index} has {len(item)} characters, more than {max_chars} "
                f"({limits.max_input_tokens} tokens of at most {limits.max_chars_per_token} characters). "
                "Please reduce the length of the input.",
                "input",
                "context_length_exceeded",
            )
    return EmbeddingsRequest(inputs, encoding_format, dimensions, truncate)


def check_token_counts(
    counts: list[int], served_name: str, limits: Limits, truncate: int | None
) -> list[int]:
    """Token counts after truncation; RequestError when one input or the request is too long."""
    if truncate is not None:
        counts = [min(c, truncate) for c in counts]
    for index, count in enumerate(counts):
        if count > limits.max_input_tokens:
            raise RequestError(
                400,
                f"Model `{served_name}` takes at most {limits.max_input_tokens} tokens per input; "
                f"input {index} has {count} tokens. Please reduce the length of the input.",
                "input",
                "context_length_exceeded",
            )
    if sum(counts) > limits.max_request_tokens:
        raise RequestError(
            400,
            f"A request takes at most {limits.max_request_tokens} tokens in all; this one has {sum(counts)}. "
            "Send the inputs in smaller batches.",
            "input",
        )
    return counts


def pooling_from_checkpoint(model_dir: Path) -> tuple[str, bool]:
    """(pooling, normalize) as the checkpoint's Sentence Transformers files say; (last, True) when
    it has none, which is vLLM's default for a generative architecture served as an embedder."""
    pooling, normalize = "last", True
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        normalize = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
        for module in modules:
            if str(module.get("type", "")).endswith(".Pooling"):
                config_file = model_dir / module.get("path", "1_Pooling") / "config.json"
                config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
                if config.get("pooling_mode_lasttoken"):
                    pooling = "last"
                elif config.get("pooling_mode_mean_tokens"):
                    pooling = "mean"
                elif config.get("pooling_mode_cls_token"):
                    pooling = "cls"
                else:
                    raise SystemExit(
                        f"embeddings_server: {config_file}: no supported pooling mode (last, mean, cls)"
                    )
    return pooling, normalize


class Embedder:
    """The model, its tokenizer and the pooling; one batch at a time (the lock bounds memory)."""

    def __init__(self, model_dir: Path, pooling: str, normalize: bool, batch_tokens: int) -> None:
        import torch  # noqa: PLC0415 (heavy imports only once the arguments are good)
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.pooling = pooling
        self.normalize = normalize
        self.batch_tokens = batch_tokens
        self.dim = int(self.model.config.hidden_size)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)
        vocab = self.tokenizer.get_vocab()
        self.max_chars_per_token = max(len(token) for token in vocab)
        self.lock = threading.Lock()

    def tokenize(self, inputs: list[str | list[int]]) -> list[list[int]]:
        texts = [x for x in inputs if isinstance(x, str)]
        encoded = iter(self.tokenizer(texts, add_special_tokens=True)["input_ids"]) if texts else iter(())
        return [list(next(encoded)) if isinstance(x, str) else list(x) for x in inputs]

    def embed(self, sequences: list[list[int]]) -> list[list[float]]:
        """Embeddings in the order given; inputs of similar length batched together."""
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        results: dict[int, Any] = {}
        batch: list[int] = []
        for position, index in enumerate(order):
            batch.append(index)
            longest = len(sequences[index])
            nxt = order[position + 1] if position + 1 < len(order) else None
            if nxt is None or (len(batch) + 1) * len(sequences[nxt]) > max(self.batch_tokens, longest):
                results.update(zip(batch, self._forward([sequences[i] for i in batch]), strict=True))
                batch = []
        return [results[i] for i in range(len(sequences))]

    def _forward(self, batch: list[list[int]]) -> Any:
        torch = self.torch
        width = max(len(s) for s in batch)
        # Right padding: positions start at 0 for every input, the last real token is at len - 1.
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        with self.lock, torch.inference_mode():
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            if self.pooling == "last":
                pooled = hidden[torch.arange(len(batch)), mask.sum(dim=1) - 1]
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.to(torch.float32).numpy()


def encode(vector: Any, dimensions: int | None, renormalize: bool, encoding_format: str) -> Any:
    import numpy as np  # noqa: PLC0415

    values = np.asarray(vector, dtype=np.float32)
    if dimensions is not None:
        # Matryoshka: the first `dimensions` values, normalized again (as vLLM does).
        values = values[:dimensions]
        if renormalize:
            values = values / max(float(np.linalg.norm(values)), 1e-12)
    if encoding_format == "base64":
        # What the OpenAI SDK decodes: little-endian float32, base64.
        return base64.b64encode(values.astype("<f4").tobytes()).decode("ascii")
    return values.tolist()


def build_app(embedder: Embedder, served_name: str, root: str, limits: Limits, matryoshka: bool) -> Any:
    from fastapi import FastAPI, Request  # noqa: PLC0415
    from fastapi.responses import JSONResponse  # noqa: PLC0415
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

    app = FastAPI(title="aimachine embeddings", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    def error(exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    def models() -> JSONResponse:
        card = {
            "id": served_name,
            "object": "model",
            "created": created,
            "owned_by": "aimachine",
            "root": root,
            "max_model_len": limits.max_input_tokens,
        }
        return JSONResponse({"object": "list", "data": [card]})

    def compute(request: EmbeddingsRequest) -> dict[str, Any]:
        sequences = embedder.tokenize(request.inputs)
        if request.truncate_prompt_tokens is not None:
            sequences = [s[-request.truncate_prompt_tokens :] for s in sequences]
        counts = check_token_counts(
            [len(s) for s in sequences], served_name, limits, request.truncate_prompt_tokens
        )
        vectors = embedder.embed(sequences)
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode(vector, request.dimensions, embedder.normalize, request.encoding_format),
            }
            for index, vector in enumerate(vectors)
        ]
        tokens = sum(counts)
        return {
            "object": "list",
            "data": data,
            "model": served_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        try:
            try:
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as exc:
                raise RequestError(400, f"The request body is not valid JSON: {exc}.") from None
            checked = parse_request(body, served_name, embedder.dim, limits, matryoshka)
            return JSONResponse(await run_in_threadpool(compute, checked))
        except RequestError as exc:
            return error(exc)

    return app


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="embeddings_server.py",
        description="OpenAI-compatible /v1/embeddings on CPU (the stand-in for vLLM's pooling runner).",
    )
    parser.add_argument(
        "model", type=Path, nargs="?", help="model directory (config.json, tokenizer, safetensors)"
    )
    parser.add_argument("--model-dir", type=Path, dest="model_dir", help="the model directory, as an option")
    parser.add_argument(
        "--served-model-name",
        "--served-name",
        default="",
        help="name clients send in `model`; default: the directory's name",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (the front door is the way in)"
    )
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--max-input-tokens",
        type=int,
        default=0,
        help="tokens per input; 0: the model's max_position_embeddings",
    )
    parser.add_argument("--max-inputs", type=int, default=2048, help="inputs per request (OpenAI's limit)")
    parser.add_argument(
        "--max-request-tokens",
        type=int,
        default=0,
        help="tokens per request in all; 0: 8 x --max-input-tokens",
    )
    parser.add_argument("--batch-tokens", type=int, default=8192, help="padded tokens per forward pass")
    parser.add_argument(
        "--pooling", choices=("auto", *POOLING_MODES), default="auto", help="auto: as the checkpoint says"
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="L2-normalize; default: as the checkpoint says",
    )
    parser.add_argument(
        "--matryoshka",
        action="store_true",
        help="accept `dimensions` (the model was trained for truncated vectors)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: torch's default")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    if (args.model is None) == (args.model_dir is None):
        parser.error("give the model directory once: as the argument or as --model-dir")
    args.model = args.model or args.model_dir
    if not _loopback(args.host):
        parser.error(
            f"--host must be a loopback address (got {args.host!r}); the front door serves the network"
        )
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1-65535 (got {args.port})")
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} has no config.json")
    for name in ("max_input_tokens", "max_request_tokens", "threads"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("max_inputs", "batch_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    served = args.served_model_name or args.model.resolve().name
    if "/" in served:
        parser.error(f"--served-model-name must not contain '/' (got {served!r})")
    args.served_model_name = served
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = json.loads((args.model / "config.json").read_text(encoding="utf-8"))
    native = int(config.get("max_position_embeddings") or 0)
    max_input = args.max_input_tokens or native
    if max_input < 1:
        raise SystemExit(
            "embeddings_server: config.json has no max_position_embeddings; pass --max-input-tokens"
        )
    if native and max_input > native:
        raise SystemExit(
            f"embeddings_server: --max-input-tokens {max_input} is beyond the model's {native} positions"
        )
    pooling, normalize = pooling_from_checkpoint(args.model)
    pooling = pooling if args.pooling == "auto" else args.pooling
    normalize = normalize if args.normalize is None else args.normalize

    import torch  # noqa: PLC0415
    import uvicorn  # noqa: PLC0415

    if args.threads:
        torch.set_num_threads(args.threads)
    embedder = Embedder(args.model, pooling, normalize, args.batch_tokens)
    limits = Limits(
        max_input_tokens=max_input,
        max_inputs=args.max_inputs,
        max_request_tokens=args.max_request_tokens or 8 * max_input,
        max_chars_per_token=embedder.max_chars_per_token,
    )
    app = build_app(embedder, args.served_model_name, str(args.model), limits, args.matryoshka)
    LOG.info(
        "serving %s as %s on %s:%d: %d dimensions, %s pooling%s, at most %d tokens per input",
        args.model,
        args.served_model_name,
        args.host,
        args.port,
        embedder.dim,
        pooling,
        ", normalized" if normalize else "",
        max_input,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
