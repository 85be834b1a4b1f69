"""aimachine-bench: streaming throughput and latency benchmark of an OpenAI-compatible endpoint.

Modules: sse (event-stream parsing), client (timed streaming and embeddings requests), workloads
(prompts, FIM holes, embedding batches, arrival schedules), metrics (vLLM's definitions),
server_metrics (the server's Prometheus counters around each level), telemetry (NVML sampler),
roofline (bandwidth bound of single-stream decode), output (JSON, CSV, PNG), loadgen (a synthetic
load generator for measuring the client's own ceiling), cli (the command).
"""

SCHEMA_VERSION = "1.1"
