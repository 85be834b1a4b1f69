"""Write the PROVISIONAL /metrics fixtures: vLLM 0.33.0's own Prometheus logger, fed known stats.

Not a served run (no GPU here): vLLM's PrometheusStatLogger and prometheus_client render the
exposition exactly as a server would, from the SchedulerStats/IterationStats below, so every
delta the tests expect is known. Run with the pinned vLLM (README.md here):

    /var/tmp/aimachine-vllm-0.33.0/bin/python make_provisional.py TINY_MODEL_DIR
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import prometheus_client
from vllm.config import CacheConfig, ModelConfig, ObservabilityConfig
from vllm.v1.engine import FinishReason
from vllm.v1.metrics.loggers import PrometheusStatLogger
from vllm.v1.metrics.prometheus import get_prometheus_registry
from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats, PrefixCacheStats, SchedulerStats
from vllm.v1.spec_decode.metrics import SpecDecodingStats

SERVED = "qwen2.5-7b-instruct-awq"
HERE = Path(__file__).resolve().parent
SPEC_TOKENS = 3


class Config(SimpleNamespace):
    """The attributes PrometheusStatLogger reads (VllmConfig itself refuses to build without a GPU)."""


def requests(stats: IterationStats, ttfts, queues, reasons) -> None:
    for ttft, queue, reason in zip(ttfts, queues, reasons, strict=True):
        stats.time_to_first_tokens_iter.append(ttft)
        stats.finished_requests.append(
            FinishedRequestStats(
                finish_reason=reason,
                e2e_latency=ttft + 0.5,
                num_prompt_tokens=512,
                num_generation_tokens=128,
                queued_time=queue,
                prefill_time=ttft - queue,
                inference_time=0.5,
                decode_time=0.5 - ttft,
                mean_time_per_output_token=0.004,
            )
        )


def spec(drafts: int, per_draft_accepted: list[int]) -> SpecDecodingStats:
    s = SpecDecodingStats.new(SPEC_TOKENS)
    for accepted in per_draft_accepted[:drafts]:
        s.observe_draft(SPEC_TOKENS, accepted)
    return s


def write(name: str, speculative: bool, model_dir: str) -> None:
    model = ModelConfig(model=model_dir, served_model_name=SERVED, max_model_len=256)
    config = Config(
        model_config=model,
        observability_config=ObservabilityConfig(),
        speculative_config=SimpleNamespace(num_speculative_tokens=SPEC_TOKENS) if speculative else None,
        cache_config=CacheConfig(),
        lora_config=None,
        watermark_config=None,
        kv_transfer_config=None,
        ec_transfer_config=None,
    )
    logger = PrometheusStatLogger(config)  # unregisters vLLM's metrics of an earlier call first

    # Before the level: one warm-up request (TTFT 45 ms, queued 2 ms), 512 prompt tokens queried.
    sched = SchedulerStats(prefix_cache_stats=PrefixCacheStats(requests=1, queries=512, hits=0))
    if speculative:
        # 40 drafts of 3 tokens: 10 accept 2, 5 accept 1, 5 accept 3, 20 accept 0 = 40 tokens
        # (per position 20, 15, 5).
        sched.spec_decoding_stats = spec(40, [2] * 10 + [1] * 5 + [3] * 5 + [0] * 20)
    it = IterationStats()
    requests(it, [0.045], [0.002], [FinishReason.LENGTH])
    logger.record(sched, it)
    (HERE / f"{name}-before.prom").write_bytes(prometheus_client.generate_latest(get_prometheus_registry()))

    # The level: 8 requests, 4,096 prompt tokens queried, 2,048 of them cached; queue times sum to
    # 0.120 s (mean 15 ms), TTFTs to 0.480 s (mean 60 ms); 6 ended at max_tokens, 2 at a stop.
    sched = SchedulerStats(prefix_cache_stats=PrefixCacheStats(requests=8, queries=4096, hits=2048))
    if speculative:
        # 300 drafts: 100 accept 3, 50 accept 2, 50 accept 1, 100 accept 0 = 450 of 900 draft tokens;
        # per position 200, 150, 100.
        sched.spec_decoding_stats = spec(300, [3] * 100 + [2] * 50 + [1] * 50 + [0] * 100)
    it = IterationStats()
    requests(
        it,
        [0.030, 0.040, 0.050, 0.060, 0.060, 0.070, 0.080, 0.090],
        [0.001, 0.002, 0.003, 0.004, 0.010, 0.020, 0.030, 0.050],
        [FinishReason.LENGTH] * 6 + [FinishReason.STOP] * 2,
    )
    logger.record(sched, it)
    (HERE / f"{name}-after.prom").write_bytes(prometheus_client.generate_latest(get_prometheus_registry()))


if __name__ == "__main__":
    write("provisional-vllm-0.33.0-ngram", True, sys.argv[1])
    write("provisional-vllm-0.33.0-default", False, sys.argv[1])
