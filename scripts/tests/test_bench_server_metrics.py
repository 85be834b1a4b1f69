"""The server's Prometheus counters around each level (issue #15.4).

The exposition is vLLM's own: the provisional fixtures in data/bench/vllm-metrics/ were rendered
by vLLM 0.33.0's PrometheusStatLogger from known stats (README there); a real capture from the
GPU run (scripts/gpu-proving-run/capture_metrics.sh) is checked against the bench's own requests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aimachine.bench.server_metrics import (
    ExpositionError,
    Scrape,
    Scraper,
    level_delta,
    parse_exposition,
)
from aiohttp import web
from conftest import serve_app

DATA = Path(__file__).parent / "data" / "bench" / "vllm-metrics"
SERVED = "qwen2.5-7b-instruct-awq"


def read(name: str, t: float = 0.0) -> Scrape:
    return Scrape(parse_exposition((DATA / name).read_text(encoding="utf-8")), t)


# --- the exposition format -----------------------------------------------------------------------


def test_parser_reads_labels_escapes_special_values_and_openmetrics_tails() -> None:
    text = "\n".join(
        [
            "# HELP vllm:x_total Help with a # inside.",
            "# TYPE vllm:x_total counter",
            'vllm:x_total{engine="0",model_name="m"} 12.0',
            'vllm:x_total{model_name="m",engine="1",} 3.5e+01 1712345678000',
            r'odd{path="C:\\dir",quote="say \"hi\"",nl="a\nb"} +Inf',
            "bare 1",
            'nan_one{a="b"} NaN',
            'h_bucket{le="0.1"} 4 # {trace_id="abc"} 0.05 1.7e9',
            "# EOF",
        ]
    )
    samples = parse_exposition(text)
    assert [s.value for s in samples["vllm:x_total"]] == [12.0, 35.0]
    assert samples["vllm:x_total"][1].label("engine") == "1"
    odd = samples["odd"][0]
    assert dict(odd.labels) == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb"}
    assert odd.value == float("inf")
    assert samples["bare"][0].labels == ()
    assert samples["nan_one"][0].value != samples["nan_one"][0].value
    assert samples["h_bucket"][0].value == 4.0


@pytest.mark.parametrize(
    "line", ['m{a="1" 2', "m{a=1} 2", 'm{a="1"}', "metric one", '{a="1"} 2', 'm{a="unterminated} 1']
)
def test_parser_rejects_what_is_not_the_format(line: str) -> None:
    with pytest.raises(ExpositionError):
        parse_exposition(line)


def test_counters_sum_over_engines_and_keep_to_the_benchmarked_model() -> None:
    def scrape(a: int, b: int, other: int) -> Scrape:
        return Scrape(
            parse_exposition(
                f'vllm:prefix_cache_queries_total{{engine="0",model_name="{SERVED}"}} {a}\n'
                f'vllm:prefix_cache_queries_total{{engine="1",model_name="{SERVED}"}} {b}\n'
                f'vllm:prefix_cache_queries_total{{engine="0",model_name="coder"}} {other}\n'
                f'vllm:prefix_cache_hits_total{{engine="0",model_name="{SERVED}"}} 0\n'
                f'vllm:prefix_cache_hits_total{{engine="1",model_name="{SERVED}"}} {b // 2}\n'
                f'vllm:prefix_cache_hits_total{{engine="0",model_name="coder"}} {other}\n'
            )
        )

    delta = level_delta(scrape(100, 200, 50), scrape(400, 600, 9000), SERVED)
    # Engines 0 and 1 together: 300 + 400 queried, 200 - 100 hit; the other model not counted.
    assert delta["prefix_cache"] == {"queried_tokens": 700, "hit_tokens": 200, "hit_rate": 200 / 700}
    assert level_delta(scrape(1, 1, 50), scrape(1, 1, 9000), "coder")["prefix_cache"]["hit_rate"] == 1.0
    nobody = level_delta(scrape(1, 1, 1), scrape(2, 2, 2), "not-served")
    assert nobody["prefix_cache"] is None and nobody["spec_decode"] is None


# --- vLLM's own exposition (provisional fixture) -------------------------------------------------


def test_speculative_decoding_server_level_by_hand() -> None:
    before = read("provisional-vllm-0.33.0-ngram-before.prom", 10.0)
    after = read("provisional-vllm-0.33.0-ngram-after.prom", 25.5)
    assert before.model_names() == [SERVED]
    delta = level_delta(before, after, SERVED)
    # The fed stats (make_provisional.py): 300 drafts of 3 tokens, 450 of the 900 accepted, by
    # position 200, 150, 100; 8 requests finished; 4,096 tokens queried, 2,048 of them cached;
    # queue times summing to 0.120 s, TTFTs to 0.480 s.
    assert delta["interval_s"] == pytest.approx(15.5)
    assert delta["requests_finished"] == 8
    spec = delta["spec_decode"]
    assert (spec["drafts"], spec["draft_tokens"], spec["accepted_tokens"]) == (300, 900, 450)
    assert spec["acceptance_rate"] == pytest.approx(0.5)
    assert spec["mean_acceptance_length"] == pytest.approx(2.5)
    assert [(p["position"], p["accepted_tokens"]) for p in spec["per_position"]] == [
        (0, 200),
        (1, 150),
        (2, 100),
    ]
    assert [p["acceptance_rate"] for p in spec["per_position"]] == pytest.approx([2 / 3, 1 / 2, 1 / 3])
    assert delta["prefix_cache"] == {"queried_tokens": 4096, "hit_tokens": 2048, "hit_rate": 0.5}
    assert delta["queue_time"]["requests"] == 8
    assert delta["queue_time"]["mean_ms"] == pytest.approx(15.0)
    assert delta["ttft"]["requests"] == 8
    assert delta["ttft"]["mean_ms"] == pytest.approx(60.0)


def test_default_server_has_no_speculation_block() -> None:
    delta = level_delta(
        read("provisional-vllm-0.33.0-default-before.prom"),
        read("provisional-vllm-0.33.0-default-after.prom"),
        SERVED,
    )
    assert delta["spec_decode"] is None  # vLLM registers no spec_decode counters without a config
    assert delta["requests_finished"] == 8
    assert delta["prefix_cache"]["hit_rate"] == 0.5
    assert delta["ttft"]["mean_ms"] == pytest.approx(60.0)


def test_a_restart_between_the_reads_gives_no_figures() -> None:
    scraper = Scraper("http://x/metrics", {}, 0.0)
    after = read("provisional-vllm-0.33.0-ngram-before.prom")
    before = read("provisional-vllm-0.33.0-ngram-after.prom")  # higher counts first: a restart
    assert scraper.level("c1", before, after, SERVED) is None
    assert "went down" in scraper.errors["c1"] and "restarted" in scraper.errors["c1"]


CAPTURES = (
    sorted(p for p in (DATA / "captures").glob("*") if p.is_dir()) if (DATA / "captures").is_dir() else []
)


@pytest.mark.skipif(
    not CAPTURES, reason="no real capture yet: the lead runs scripts/gpu-proving-run/capture_metrics.sh"
)
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_real_capture_counts_what_the_bench_sent(capture: Path) -> None:
    """curl's reads around one bench run: the server counted exactly the bench's requests."""
    bench = json.loads((capture / "bench.json").read_text(encoding="utf-8"))
    model = bench["server"]["model"]
    delta = level_delta(
        read(f"captures/{capture.name}/before.prom"), read(f"captures/{capture.name}/after.prom"), model
    )
    sent = len(bench["requests"])
    assert delta["requests_finished"] == sent
    assert delta["ttft"]["requests"] == sent and delta["queue_time"]["requests"] == sent
    assert 0 <= delta["prefix_cache"]["hit_tokens"] <= delta["prefix_cache"]["queried_tokens"]
    # The bench's own reads, just inside curl's, counted each level's requests.
    for level in bench["levels"]:
        assert level["server_metrics"]["requests_finished"] == level["num_requests"]


def read_fixture_name(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


# --- reading /metrics over HTTP: key, refusals, TLS ----------------------------------------------


def test_scraper_sends_the_key_asks_for_text_and_reports_refusals_clearly() -> None:
    seen: list[dict[str, str]] = []
    texts = [read_fixture_name("provisional-vllm-0.33.0-default-before.prom")]

    async def metrics(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.headers.get("Authorization") != "Bearer right-key":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return web.Response(text=texts[0], content_type="text/plain")

    async def forbidden(_: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "forbidden"}}, status=403)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/fd/metrics", forbidden)

    async def check(base: str):
        out = {}
        async with aiohttp.ClientSession() as session:
            for name, path, key in [
                ("ok", "/metrics", "right-key"),
                ("401", "/metrics", "wrong-key"),
                ("403", "/fd/metrics", "right-key"),
                ("404", "/none", "right-key"),
            ]:
                scraper = Scraper(base + path, {"Authorization": f"Bearer {key}", "Accept": "x"}, 0.0)
                first = await scraper.scrape(session)
                out[name] = (first, await scraper.scrape(session), scraper)
        return out

    out = asyncio.run(serve_app(app, check))
    ok, again, scraper = out["ok"]
    assert isinstance(ok, Scrape) and isinstance(again, Scrape) and scraper.unavailable is None
    assert scraper.describe(SERVED)["model_names_seen"] == [SERVED]
    assert seen[0]["Authorization"] == "Bearer right-key"
    assert seen[0]["Accept"].startswith("text/plain")  # prometheus_client's classic format
    for name, words in [
        ("401", "401: the API key"),
        ("403", "llm_frontdoor_metrics_allowed"),
        ("404", "404"),
    ]:
        first, second, scraper = out[name]
        assert isinstance(first, str) and words in first
        assert second == first and scraper.unavailable == first  # asked once, then left alone
        assert scraper.level("c1", first, second, SERVED) is None and scraper.errors == {}
    assert len(seen) == 3  # ok twice, 401 once: a refused server is not asked again


def test_scraper_over_tls_with_the_front_doors_ca(tmp_path: Path) -> None:
    import ssl

    from test_bench_tls import make_pki

    pki = make_pki(tmp_path)
    text = read_fixture_name("provisional-vllm-0.33.0-ngram-after.prom")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=text, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki[1], pki[2])

    async def check(base: str):
        trusted = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(pki[0])))
        async with aiohttp.ClientSession(connector=trusted) as session:
            good = await Scraper(base + "/metrics", {}, 0.0).scrape(session)
        async with aiohttp.ClientSession() as session:  # the system store does not know this CA
            bad = await Scraper(base + "/metrics", {}, 0.0).scrape(session)
        return good, bad

    good, bad = asyncio.run(serve_app(app, check, server_ctx))
    assert isinstance(good, Scrape) and good.total("vllm:spec_decode_num_drafts_total", SERVED) == 340
    assert isinstance(bad, str) and "cannot read" in bad and "certificate" in bad.lower()


def test_text_that_is_not_prometheus_marks_the_server_unavailable() -> None:
    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>{login page}</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", html)

    async def check(base: str):
        async with aiohttp.ClientSession() as session:
            scraper = Scraper(base + "/metrics", {}, 0.0)
            return await scraper.scrape(session), scraper

    result, scraper = asyncio.run(serve_app(app, check))
    assert isinstance(result, str) and "did not answer Prometheus text" in result
    assert scraper.describe(SERVED)["available"] is False
