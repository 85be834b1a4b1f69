"""aimachine-bench: streaming throughput and latency benchmark of an OpenAI-compatible endpoint.

Modules: sse (event-stream parsing), client (timed streaming requests), workloads (prompts and
arrival schedules), metrics (vLLM's definitions), telemetry (NVML sampler), roofline (bandwidth
bound of single-stream decode), output (JSON, CSV, PNG), loadgen (a synthetic SSE load generator
for measuring the client's own ceiling), cli (the command).
"""

SCHEMA_VERSION = "1.0"
