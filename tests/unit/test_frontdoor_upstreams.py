"""The front door's table of served models (llm_frontdoor_upstreams): checks and body limits."""

import pytest
from test_frontdoor_networks import frontdoor

FALLBACK = {"host": "127.0.0.1", "port": 8000}


def test_no_upstreams_is_todays_single_engine():
    assert frontdoor.llm_frontdoor_routes([], FALLBACK, "8m") == [
        {
            "index": 0,
            "name": "",
            "host": "127.0.0.1",
            "port": 8000,
            "paths": list(frontdoor.PATHS),
            "max_model_len": None,
            "limit": 8 * 1024 * 1024,
            "limit_note": "llm_frontdoor_client_max_body_size",
        }
    ]


def test_the_single_engine_takes_its_body_limit_from_its_context():
    """The default deployment (one engine): the host role passes the served context, so a prompt
    that cannot fit is refused at the door (issue 18, item 2)."""
    (route,) = frontdoor.llm_frontdoor_routes([], {**FALLBACK, "max_model_len": 4096}, "8m")
    assert route["limit"] == 4096 * 32 + 65536 and route["max_model_len"] == 4096
    assert route["limit_note"] == "4096 tokens of context x 32 bytes + 65536 bytes"
    assert frontdoor.llm_frontdoor_routes([], {**FALLBACK, "max_model_len": 0}, "8m")[0]["limit"] == 8 << 20


def test_body_limits_follow_the_context_then_the_explicit_size_then_the_default():
    routes = frontdoor.llm_frontdoor_routes(
        [
            {"name": "chat", "port": 8000, "max_model_len": 32768},
            {
                "name": "fim",
                "port": 8001,
                "role": "autocomplete",
                "max_model_len": "8192",
                "max_body_size": "512k",
            },
            {"name": "embed", "port": 8002, "role": "embed"},
        ],
        FALLBACK,
        "8m",
    )
    # 32,768 tokens x 32 bytes + 64 KiB: 1.06 MiB for the 7B chat model's full context.
    assert [(r["name"], r["limit"]) for r in routes] == [
        ("chat", 1_114_112),
        ("fim", 524_288),
        ("embed", 8_388_608),
    ]
    assert routes[0]["limit_note"] == "32768 tokens of context x 32 bytes + 65536 bytes"
    assert routes[1]["paths"] == ["completions", "chat/completions"] and routes[2]["paths"] == ["embeddings"]
    tight = frontdoor.llm_frontdoor_routes(
        [{"name": "c", "port": 1, "max_model_len": 4096}], FALLBACK, "8m", 8, 0
    )
    assert tight[0]["limit"] == 32768


def test_model_cards_carry_the_context_where_known():
    routes = frontdoor.llm_frontdoor_routes(
        [{"name": "a", "port": 1, "max_model_len": 4096}, {"name": "b", "port": 2}], FALLBACK, "1m"
    )
    assert frontdoor.llm_frontdoor_model_cards(routes) == [
        {"id": "a", "object": "model", "created": 0, "owned_by": "aimachine", "max_model_len": 4096},
        {"id": "b", "object": "model", "created": 0, "owned_by": "aimachine"},
    ]


@pytest.mark.parametrize(
    ("upstreams", "says"),
    [
        ("chat", "llm_frontdoor_upstreams must be a list, got str"),
        (
            [{"name": "my model", "port": 8000}],
            "llm_frontdoor_upstreams[0].name must be the served model name",
        ),
        ([{"name": "x';", "port": 8000}], "llm_frontdoor_upstreams[0].name must be the served model name"),
        ([{"name": "a"}], "llm_frontdoor_upstreams[0].port must be 1-65535 (got None)"),
        (
            [{"name": "a", "port": 8000, "host": "10.0.0.5"}],
            ".host must be a loopback address (got '10.0.0.5')",
        ),
        (
            [{"name": "a", "port": 8000, "role": "tts"}],
            ".role must be one of chat, autocomplete, embed, rerank",
        ),
        (
            [{"name": "a", "port": 8000, "paths": ["admin"]}],
            ".paths must be a non-empty list of chat/completions",
        ),
        (
            [{"name": "a", "port": 8000, "max_model_len": -1}],
            ".max_model_len must be a positive number of tokens",
        ),
        (
            [{"name": "a", "port": 8000, "max_body_size": "1g"}],
            ".max_body_size must be an nginx size like '1m'",
        ),
        (
            [{"name": "a", "port": 8000, "max_body_size": "1000"}],
            ".max_body_size must be at least 1024 bytes",
        ),
        ([{"name": "a", "port": 8000, "weight": 2}], "has unknown keys ['weight']"),
        ([{"name": "a", "port": 8000}, {"name": "a", "port": 8001}], "each name once (repeated: a)"),
        ([{"name": "a", "port": 8000}, {"name": "b", "port": 8000}], "each port once (repeated: 8000)"),
        ([{"name": "a", "port": 8443}], "port 8443 is the front door's own"),
    ],
)
def test_bad_upstreams_are_named(upstreams, says):
    errors = frontdoor.llm_frontdoor_upstream_errors(upstreams, 8443)
    assert any(says in e for e in errors), errors


def test_good_upstreams_have_no_errors():
    good = [
        {"name": "qwen2.5-7b-instruct-awq", "port": 8000, "max_model_len": 32768},
        {"name": "qwen2.5-coder-1.5b", "port": 8001, "role": "autocomplete", "max_model_len": 8192},
        {"name": "qwen3-embedding-0.6b", "port": 8002, "role": "embed", "host": "::1"},
        # vLLM's default served name, and the CPU engine's (the model's path).
        {"name": "Qwen/Qwen3-8B-AWQ", "port": 8003},
        {"name": "/var/lib/aimachine/models/tiny", "port": 8004},
    ]
    assert frontdoor.llm_frontdoor_upstream_errors(good, 8443) == []
    routes = frontdoor.llm_frontdoor_routes(good, FALLBACK, "8m")
    assert [r["metrics_path"] for r in routes][-2:] == [
        "/metrics/Qwen/Qwen3-8B-AWQ",
        "/metrics/var/lib/aimachine/models/tiny",
    ]
    assert frontdoor.llm_frontdoor_size_bytes("512k") == 524_288
    with pytest.raises(ValueError, match="not an nginx size"):
        frontdoor.llm_frontdoor_size_bytes("1 g")
