"""Stream parsing and metric arithmetic on recorded real SSE streams (see tests/data/bench/README.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from aimachine.bench.client import RequestResult, interpret_events, replay
from aimachine.bench.metrics import meets_slo, parse_goodput, request_metrics, summarize
from aimachine.bench.sse import SSEDecoder

DATA = Path(__file__).parent / "data"
BENCH = DATA / "bench"
CURL_SSE = DATA / "sse"


def load_streams(name: str) -> list[dict]:
    streams = []
    for line in (BENCH / name).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        record["reads"] = [(t, text.encode("utf-8", "surrogateescape")) for t, text in record["reads"]]
        streams.append(record)
    return streams


def result_of(record: dict) -> RequestResult:
    """A RequestResult as the live client builds it, from a recorded stream."""
    result = RequestResult(send_perf=0.0, status=record["status"], end=record["reads"][-1][0])
    result.stream = replay(record["reads"], record["api"])
    return result


def events_of(body: bytes, cuts: list[int]) -> list[str]:
    decoder = SSEDecoder()
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    events = [e.data for i, piece in enumerate(pieces) for e in decoder.feed(piece, float(i))]
    return events + [e.data for e in decoder.close(float(len(pieces)))]


# --- SSE decoding: read boundaries anywhere must not change the events ---------------------------


@pytest.mark.parametrize(
    "name", ["transformers-serve-5.24.0-chat-completions.txt", "transformers-serve-5.24.0-completions.txt"]
)
def test_sse_events_do_not_depend_on_read_boundaries(name: str) -> None:
    path = CURL_SSE / name
    if not path.is_file():
        pytest.skip(f"{path} (recorded by the tiny-model tests) is not there")
    body = path.read_bytes()
    whole = events_of(body, [])
    assert len(whole) == body.count(b"\n\n")
    assert all(json.loads(data)["id"] for data in whole)
    assert events_of(body, list(range(1, len(body)))) == whole  # one byte a read
    rng = random.Random(7)
    for _ in range(20):
        assert events_of(body, sorted(rng.sample(range(1, len(body)), 25))) == whole
    # The same stream with CRLF line ends, cut between every CR and its LF.
    crlf = body.replace(b"\n", b"\r\n")
    cuts = [i + 1 for i in range(len(crlf)) if crlf[i : i + 1] == b"\r"]
    assert events_of(crlf, cuts) == whole


def test_sse_multiline_data_comments_named_events_and_unterminated_tail() -> None:
    body = b': keep-alive\n\nevent: delta\ndata: {"a":\ndata: 1}\n\ndata:no-space\n\ndata: [DONE]'
    decoder = SSEDecoder()
    events = decoder.feed(body, 1.0) + decoder.close(2.0)
    assert [(e.data, e.event, e.t) for e in events] == [
        ('{"a":\n1}', "delta", 1.0),
        ("no-space", "message", 1.0),
        ("[DONE]", "message", 2.0),  # delivered at close although the blank line never came
    ]


def test_sse_utf8_character_cut_by_a_read_boundary() -> None:
    body = 'data: {"text": "naïve €"}\n\n'.encode()
    cut = body.index("€".encode()) + 1
    assert events_of(body, [cut]) == ['{"text": "naïve €"}']


# --- one recorded chat stream, worked by hand ----------------------------------------------------


def test_chat_stream_metrics_by_hand() -> None:
    record = load_streams("transformers-serve-5.24.0-tiny-chat.jsonl")[0]
    # The recording: role chunk at 0.074692 s, first content at 0.660059 s, last content at
    # 4.796165 s, a closing chunk with finish_reason + usage (48 tokens) at 4.80611 s.
    assert record["reads"][0][0] == pytest.approx(0.074692)
    metrics = request_metrics(result_of(record))
    assert metrics.ok
    assert metrics.ttft == pytest.approx(0.660059)  # the role chunk is not a token
    assert metrics.e2el == pytest.approx(4.796165)  # the usage chunk carries no token
    assert metrics.output_tokens == 48
    assert metrics.token_count_source == "usage"
    assert metrics.prompt_tokens == 48
    assert metrics.tpot == pytest.approx((4.796165 - 0.660059) / 47)
    # Coalescing: 48 tokens in 44 content events, so 43 gaps whose sum is the decode time.
    assert metrics.output_events == 44
    assert len(metrics.itl) == 43
    assert sum(metrics.itl) == pytest.approx(4.796165 - 0.660059)
    assert np.mean(metrics.itl) > metrics.tpot
    assert metrics.finish_reason == "length"
    assert metrics.response_end == pytest.approx(4.80611)


def test_completions_stream_closing_empty_text_is_not_a_token() -> None:
    record = load_streams("transformers-serve-5.24.0-tiny-completions.jsonl")[0]
    metrics = request_metrics(result_of(record))
    # 44 reads: 43 with text, then {"text": "", "finish_reason": "length", usage} at 6.291455 s.
    assert len(record["reads"]) == 44
    assert metrics.output_events == 43
    assert metrics.ttft == pytest.approx(0.294911)
    assert metrics.e2el == pytest.approx(6.291383)
    assert metrics.output_tokens == 48


def test_level_summary_on_three_recorded_streams() -> None:
    metrics = [
        request_metrics(result_of(r)) for r in load_streams("transformers-serve-5.24.0-tiny-chat.jsonl")
    ]
    # TTFTs 660.059, 385.430, 703.135 ms; p90 by linear interpolation between the 2nd and 3rd
    # sorted values: 660.059 + 0.8 x (703.135 - 660.059) = 694.5198 ms.
    summary = summarize(
        metrics, duration_s=16.0, slo=parse_goodput(["ttft:500"]), target_prompt_tokens=[48] * 3
    )
    assert summary["completed"] == 3
    assert summary["errors"] == 0
    assert summary["ttft_ms"]["p50"] == pytest.approx(660.059)
    assert summary["ttft_ms"]["p90"] == pytest.approx(694.5198)
    assert summary["ttft_ms"]["mean"] == pytest.approx((660.059 + 385.430 + 703.135) / 3)
    assert summary["total_output_tokens"] == 144
    assert summary["output_throughput"] == pytest.approx(144 / 16.0)
    assert summary["request_throughput"] == pytest.approx(3 / 16.0)
    assert summary["total_token_throughput"] == pytest.approx((144 + 144) / 16.0)
    assert summary["itl_ms"]["count"] == 43 + 38 + 44
    assert summary["tokens_per_output_event"] == pytest.approx(144 / (44 + 39 + 45))
    # Only the 385 ms request meets TTFT <= 500 ms.
    assert summary["goodput"]["requests_meeting_slo"] == 1
    assert summary["goodput"]["request_goodput"] == pytest.approx(1 / 16.0)
    assert summary["prompt_tokens_check"] == {"checked": 3, "exact": 3, "mismatches": []}
    decode_tokens = 3 * 47
    decode_time = sum(m.e2el - m.ttft for m in metrics)
    assert summary["decode_tokens_per_s_per_stream"] == pytest.approx(decode_tokens / decode_time)


def test_without_usage_the_fallback_counts_and_says_so() -> None:
    record = load_streams("transformers-serve-5.24.0-tiny-chat.jsonl")[1]
    reads = [
        (t, chunk.replace(b',"usage":{"completion_tokens":48,"prompt_tokens":48,"total_tokens":96}', b""))
        for t, chunk in record["reads"]
    ]
    assert reads != record["reads"]
    result = result_of(record | {"reads": reads})
    by_events = request_metrics(result)
    assert (by_events.token_count_source, by_events.output_tokens) == ("events", 39)
    by_tokenizer = request_metrics(result, count_tokens=lambda text: len(text.split()))
    assert by_tokenizer.token_count_source == "tokenizer"
    assert by_tokenizer.output_tokens == len(result.stream.text.split())
    assert by_tokenizer.prompt_tokens is None


def test_error_event_and_empty_stream_are_failures() -> None:
    # transformers serve reports a generation error as `data: {"error": "..."}` (its chat_completion.py).
    decoder = SSEDecoder()
    events = decoder.feed(b'data: {"error": "CUDA out of memory"}\n\n', 0.5)
    result = RequestResult(send_perf=0.0, status=200, end=0.5)
    result.stream = interpret_events(events, "chat")
    failed = request_metrics(result)
    assert not failed.ok
    assert "CUDA out of memory" in failed.error
    empty = RequestResult(send_perf=0.0, status=200, end=0.1)
    assert request_metrics(empty).error == "the stream ended without any generated output"
    summary = summarize([failed, request_metrics(empty)], duration_s=1.0)
    assert summary["errors"] == 2
    assert summary["completed"] == 0
    assert summary["ttft_ms"]["mean"] is None


def test_goodput_parsing_and_one_token_answers() -> None:
    assert parse_goodput(["ttft:500", "tpot:50", "e2el:10000"]) == {
        "ttft": 500.0,
        "tpot": 50.0,
        "e2el": 10000.0,
    }
    for bad in ["ttft", "latency:5", "ttft:fast", "tpot:0"]:
        with pytest.raises(ValueError, match="goodput objective"):
            parse_goodput([bad])
    record = load_streams("transformers-serve-5.24.0-tiny-chat.jsonl")[0]
    metrics = request_metrics(result_of(record))
    assert meets_slo(metrics, {"tpot": 89.0}) and not meets_slo(metrics, {"tpot": 87.0})
    metrics.tpot = None  # a one-token answer has no TPOT; vLLM counts it as 0 for goodput
    assert meets_slo(metrics, {"tpot": 1.0})
