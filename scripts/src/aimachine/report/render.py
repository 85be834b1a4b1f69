"""report.md and report.html: the report a person reads, in the origin document's order.

Every number goes in as a `doc.Q` with what measured it or where it is published, every piece of
data text as a `doc.T`; `doc.audit(render_blocks(report))` lists any number that has neither.
The first sections (header, summary) are the page a person scans in a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aimachine.report import doc
from aimachine.report.assess import rules
from aimachine.report.build import METRICS
from aimachine.report.doc import (
    Bullets,
    Code,
    CodeBlock,
    Image,
    Link,
    Para,
    Q,
    Quote,
    Rule,
    Section,
    T,
    Table,
    b,
)
from aimachine.report.plots import plot_name

META = "the run's metadata (meta.json)"


def q(r: dict[str, Any] | None) -> Q:
    """A report.json record as a quantity (None: not measured)."""
    if not r:
        return Q(None)
    return Q(r.get("value"), r.get("unit") or "", int(r.get("digits", 1)), r.get("measured"), r.get("source"))


def pub(r: dict[str, Any] | None) -> Any:
    """A published figure, or the words saying none is published."""
    return q(r) if r and r.get("value") is not None else "none published"


def mq(value: Any, what: str, unit: str = "", digits: int = 1) -> Q:
    return Q(None if value is None else value, unit, digits, measured=what)


def t(text: Any, what: str = META) -> T:
    return T("" if text is None else str(text), measured=what)


def _metric(key: str, value: Any, currency: str, what: str) -> Q:
    unit = METRICS[key]["unit"]
    if value is None:
        return Q(None)
    if unit == "fraction":
        return mq(100 * value, what, "%")
    if unit == "currency":
        return mq(value, what, currency, 4)
    return mq(value, what, "%" if unit == "%" else unit)


def _not(reason: Any) -> Para:
    return Para(["Not measured: ", t(reason, "the report's inputs"), "."])


# --- the one-page summary -------------------------------------------------------------------------


def _header(report: dict[str, Any]) -> list[Any]:
    meta = report["metadata"]
    model = meta.get("model") or {}
    engine = meta.get("engine") or {}
    host = meta.get("host") or {}
    blocks: list[Any] = [
        doc.Heading(1, ["Verification report: ", t(model.get("id", "?")), " on ", t(host.get("name", "?"))])
    ]
    if report["label"]["banner"]:
        blocks.append(Quote([b(t(report["label"]["banner"], "the report's label (mode, checkpoint size)"))]))
    gpus = meta.get("gpus") or []
    gpu_cell: list[Any] = []
    for i, g in enumerate(gpus):
        gpu_cell += [
            ", " if i else "",
            t(g.get("name"), "NVML"),
            " (",
            mq(g.get("memory_total_mib", g.get("vram_mib")), "NVML", "MiB", 0),
            ")",
        ]
    served = report.get("models") or []
    rows = [
        ["Date (UTC)", t(report["generated_at"], "the verification run's clock")],
        [
            "Host",
            [
                t(host.get("name")),
                " (",
                t(host.get("os", "?"), "host facts"),
                ", ",
                mq(host.get("cpus"), "host facts", "CPUs", 0),
                ", ",
                mq(host.get("memory_gib"), "host facts", "GiB"),
                ")",
            ],
        ],
        ["Mode", [t(meta.get("mode")), " (", t(meta.get("run_mode", "?")), " verification run)"]],
        [
            "Model",
            [
                t(model.get("id")),
                " @ ",
                t(model.get("revision") or "no revision"),
                " (served as ",
                Code(t(model.get("served_name"))),
                ", quantization ",
                t(model.get("quantization") or "none"),
                ")",
            ],
        ],
        [
            "Engine",
            [t(engine.get("name")), " ", t(engine.get("version") or "(version unknown)", "the unit's venv")],
        ],
        ["GPUs", gpu_cell or "none"],
        [
            "Served models",
            [
                part
                for i, m in enumerate(served)
                for part in ([", "] if i else []) + [Code(t(m["model"].get("name"))), " (", t(m["role"]), ")"]
            ],
        ],
        ["Deployment fingerprint", Code(t(meta.get("fingerprint"), "aimachine-verify plan"))],
    ]
    blocks.append(Table(["", ""], rows, align="ll"))
    return blocks


def _key_finding(report: dict[str, Any]) -> list[Any]:
    """One line: quality against the best frontier figure, cost against the API, capacity."""
    parts: list[Any] = []
    he = (report["quality"].get("suites") or {}).get("humaneval")
    frontier = (he or {}).get("frontier") or []
    if he and he.get("pass_at_1") is not None:
        parts += ["HumanEval pass@1 ", mq(100 * he["pass_at_1"], "quality/summary.json humaneval", "%")]
        if frontier:
            best = max(frontier, key=lambda f: f["percent"])
            share = 100 * 100 * he["pass_at_1"] / best["percent"]
            parts += [
                " is ",
                mq(share, f"computed: measured / {best['model']}'s published {best['percent']}", "%", 0),
                " of ",
                t(best["model"]),
                "'s ",
                Q(best["percent"], "%", source=best["source"]),
            ]
    cost = report["cost"]
    if cost.get("available") and cost.get("break_even"):
        single = cost.get("single_stream") or cost["peak"]
        api = cost["break_even"][0]
        parts += [
            "; " if parts else "",
            "electricity ",
            mq(
                single["electricity_per_million"],
                f"cost section, level {single['level']}",
                cost["currency"],
                4,
            ),
            " per 1M output tokens against ",
            Q(api["price_per_million"], cost["currency"], 2, source=api.get("source")),
            " for ",
            t(api["name"], "configured: llm_verify_cost.api_prices"),
        ]
    cap = report.get("capacity") or {}
    if cap.get("available"):
        parts += [
            "; " if parts else "",
            "sustains ",
            "at least " if cap.get("lower_bound") else "",
            q(cap["sustained_concurrency"]),
            " within the chat SLO",
        ]
        if (cap.get("developers") or {}).get("value") is not None:
            parts += [" (", q(cap["developers"]), " at the stated load)"]
    if not parts:
        return ["nothing measured to compare"]
    return [*parts, "."]


def _summary(report: dict[str, Any]) -> Section:
    g = report["grade"]
    blocks: list[Any] = []
    if g.get("available"):
        line: list[Any] = [
            b("Overall: ", t(g["letter"], "grade rule on the measured categories")),
            " (",
            q(g["overall"]),
        ]
        if g.get("overall_stderr"):
            line += [" ± ", q(g["overall_stderr"])]
        line += [")"]
        line += [": ", t(g["verdict"], "grade rule"), "."]
        if g.get("partial"):
            line += [" Graded on the measured categories only (see Grade and verdict)."]
        if report["label"]["test_model"]:
            line += [" A test model: the grade describes this test setup, not a coding model."]
        blocks.append(Para(line))
    else:
        blocks.append(Para([b("Overall: not graded"), " (", t(g.get("reason"), "grade rule"), ")."]))
    blocks.append(Para([b("Key finding:"), " ", *_key_finding(report)]))
    rows = []
    for row in report["summary"]:
        measured: list[Any] = [q(row["measured"])]
        if row.get("stderr") and row["stderr"].get("value") is not None:
            measured += [" ± ", q(row["stderr"])]
        if row.get("measured_2"):
            measured += [" / ", q(row["measured_2"])]
        note: list[Any] = [t(row.get("note") or "", "the report's inputs")]
        if row.get("problems"):
            note += [", ", q(row["problems"])]
        if row.get("requests"):
            note += [" ", q(row["requests"])]
        refs: list[Any] = []
        for i, r in enumerate(row["references"]):
            refs += ["; " if i else "", t(r["name"], "references"), ": ", q(r["value"])]
        sources = list(
            dict.fromkeys(
                str(r["value"].get("source") or r["value"].get("measured")) for r in row["references"]
            )
        )
        rows.append(
            [
                row["metric"],
                measured,
                note,
                refs or "-",
                [
                    part
                    for i, src in enumerate(sources)
                    for part in (["; "] if i else []) + [t(src, "references")]
                ]
                or "-",
            ]
        )
    blocks.append(Table(["metric", "measured", "note", "reference", "source"], rows, align="lrlll"))
    return Section("Executive summary", blocks, summary=True)


# --- details -----------------------------------------------------------------------------------------


def _gates(report: dict[str, Any]) -> Section:
    gates = report["gates"]
    if not gates["results"]:
        return Section("Gates", [Para(["No gates configured."])])
    verdict = "PASSED" if gates["passed"] else "FAILED"
    blocks: list[Any] = [
        Para(
            [
                "Result: ",
                b(verdict),
                " (",
                mq(len(gates["failed"]), "gates", "failed", 0),
                ", ",
                mq(len(gates["warned"]), "gates", "warnings", 0),
                ").",
            ]
        )
    ]
    rows = [
        [
            t(r["name"], "configured: llm_verify_gates"),
            mq(r["measured"], f"metric {r['metric']}", "", 4),
            [
                ">= " if r["op"] == "min" else "<= ",
                Q(r["threshold"], "", 4, source="configured: llm_verify_gates"),
            ],
            r["severity"],
            r["status"],
        ]
        for r in gates["results"]
    ]
    blocks.append(Table(["gate", "measured", "threshold", "severity", "status"], rows))
    return Section("Gates", blocks)


def _grade(report: dict[str, Any]) -> Section:
    g = report["grade"]
    blocks: list[Any] = [
        Para(
            [
                "Each category is scored from measurements (zero to ten), the overall grade is their "
                "weighted mean; a "
                "category not measured in this run is left out and the others' weights are rescaled. Rule "
                "and "
                "weights: ",
                Code("aimachine/report/data/assessment.yaml"),
                " (docs/report.md).",
            ]
        )
    ]
    rows = []
    for row in g["categories"]:
        if row["measured"]:
            score: list[Any] = [q(row["score"])]
            if row.get("stderr"):
                score += [" ± ", q(row["stderr"])]
            rows.append(
                [
                    row["label"],
                    score,
                    q(row["weight_rec"]),
                    q(row["effective_weight"]),
                    t(row["basis"], "grade rule"),
                ]
            )
        else:
            rows.append([row["label"], "not measured", q(row["weight_rec"]), "-", "-"])
    for ng in g["not_graded"]:
        rows.append([t(ng["label"], "grade rule"), "not graded", "-", "-", t(ng["why"], "grade rule")])
    if g.get("available"):
        overall: list[Any] = [b(q(g["overall"]))]
        if g.get("overall_stderr"):
            overall += [" ± ", q(g["overall_stderr"])]
        rows.append(
            [
                b("Overall"),
                overall,
                "",
                "",
                [b(t(g["letter"], "grade rule")), " (from ", q(g["letter_min"]), ")"],
            ]
        )
    blocks.append(Table(["category", "score", "rule weight", "weight here", "measured by"], rows))
    letters = ", ".join(x["letter"] for x in rules()["letters"])
    blocks.append(
        Para(
            [
                "Letters, best first: ",
                t(letters, "grade rule"),
                "; each letter's lower limit is in the rule file.",
            ]
        )
    )
    if g.get("available"):
        blocks.append(Para([b("Verdict:"), " ", t(g["verdict"], "grade rule"), "."]))
    return Section("Grade and verdict", blocks)


def _quality(report: dict[str, Any]) -> Section:
    qs = report["quality"]
    if not qs["available"]:
        return Section("Code quality: HumanEval and MBPP", [_not(qs.get("reason"))])
    rows = []
    for s in qs["suites"].values():
        what = f"quality/summary.json {s['label']}"
        published: list[Any] = []
        for i, p in enumerate(s["published"]):
            published += [
                "; " if i else "",
                t(p.get("model"), "published"),
                " ",
                Q(p.get("score"), "%", source=p.get("source")),
            ]
        frontier: list[Any] = []
        for i, f in enumerate(s["frontier"]):
            frontier += [
                "; " if i else "",
                t(f["model"], "references"),
                " ",
                Q(f["percent"], "%", source=f["source"]),
            ]
        rows.append(
            [
                [t(s["label"], what), " (subset)" if s["subset"] else ""],
                mq(s["problems"], what, "", 0),
                mq(None if s["pass_at_1"] is None else 100 * s["pass_at_1"], what, "%"),
                mq(None if s["stderr"] is None else 100 * s["stderr"], f"{what}: binomial SE", "pts"),
                published or "none on record",
                frontier or "-",
            ]
        )
    blocks: list[Any] = [
        Table(["suite", "problems", "pass@1", "± SE", "published (this model)", "frontier"], rows),
        Para(
            [
                "Standard error: sqrt(p(1-p)/n) over the problems run. Frontier figures are those the origin "
                "document lists, with its stated sources."
            ]
        ),
    ]
    if qs["not_run"]:
        blocks.append(
            Para(["Not run in this mode: ", t(", ".join(qs["not_run"]), "the run's settings"), "."])
        )
    settings = qs.get("settings") or {}
    where = "quality/summary.json settings"
    line: list[Any] = [
        "Settings: ",
        t(settings.get("mode"), where),
        " prompts, ",
        mq(settings.get("samples"), where, "sample(s)", 0),
        ", temperature ",
        mq(settings.get("temperature"), where, "", 1),
        ", max ",
        mq(settings.get("max_tokens"), where, "tokens", 0),
    ]
    if settings.get("limit"):
        line += [", first ", mq(settings["limit"], where, "problems", 0), " of each suite only"]
    line += ["; sandbox: ", t(qs.get("sandbox"), where), "."]
    blocks.append(Para(line))
    if "quality.png" in (report.get("plots") or []):
        blocks.append(Image("quality.png", "quality: measured against the published references"))
    return Section("Code quality: HumanEval and MBPP", blocks)


def _humaneval_table(report: dict[str, Any]) -> Section:
    rows = []
    for r in report["humaneval_table"]:
        score: list[Any] = [
            q(r["score"])
            if r["kind"].startswith("measured") or r["score"].get("value") is not None
            else "none published"
        ]
        if r.get("stderr") and r["stderr"].get("value") is not None:
            score += [" ± ", q(r["stderr"])]
        src = r["score"].get("source") or r["score"].get("measured") or "-"
        rows.append([t(r["model"], "references"), score, t(r["kind"], "references"), t(src, "references")])
    return Section(
        "HumanEval: this host, same-size peers, the catalog and the frontier",
        [
            Table(["model", "HumanEval pass@1", "kind", "source"], rows, align="lrll"),
            Para(
                [
                    "Peers: ",
                    T("the Qwen2.5 blog's table", source="qwenlm.github.io/blog/qwen2.5-llm"),
                    " for the instruct models of this size (the origin document's "
                    "figures for them had no source). Catalog: the other chat models this appliance can "
                    "deploy, "
                    "with their publishers' figures. Published figures use their publishers' harnesses and "
                    "prompts, not this host's; compare them as orders of magnitude.",
                ]
            ),
        ],
    )


def _swe_bench(report: dict[str, Any]) -> Section:
    s = report["swe_bench"]
    rows = [
        [t(r["model"], "references"), q(r["score"]), t(r["score"]["source"], "references")]
        for r in s["frontier"]
    ]
    rows += [
        [t(r["model"], "references"), q(r["score"]), t(r["score"]["source"], "references")]
        for r in s["small"]
    ]
    model = (report["metadata"].get("model") or {}).get("id")
    rows.append([[t(model), " (deployed)"], "none published", t(s["note"], "references")])
    return Section(
        "SWE-bench Verified (published only)",
        [Table(["model", "resolved", "source"], rows, align="lrl"), Para([t(s["note"], "references")])],
    )


def _quantization(report: dict[str, Any]) -> Section:
    qz = report["quantization"]
    blocks: list[Any] = []
    if qz["status"] == "no record":
        blocks.append(Para([t(qz["text"], "this host's history")]))
    else:
        rec_ = qz["record"]
        where = f"this host's run at {rec_['generated_at']}"
        blocks.append(
            Para(
                [
                    "Against this host's ",
                    t(rec_["precision"], where),
                    " run of ",
                    t(rec_["model"], where),
                    " on ",
                    t(rec_["generated_at"], where),
                    ":",
                ]
            )
        )
        blocks.append(
            Table(
                ["suite", "higher precision", "this run", "difference", "± SE of difference"],
                [
                    [
                        r["suite"],
                        mq(100 * r["higher_precision"], where, "%"),
                        mq(100 * r["this_run"], "this run", "%"),
                        Q(100 * r["difference"], "pts", measured="computed: this run - record", signed=True),
                        mq(100 * r["stderr_of_difference"], "computed: sqrt(SE1² + SE2²)", "pts"),
                    ]
                    for r in qz["rows"]
                ],
            )
        )
    for item in qz["published"]:
        blocks.append(
            Para(
                [
                    "Published: ",
                    T(item["text"], source=item["source"]),
                    " (",
                    t(item["source"], "references"),
                    ").",
                ]
            )
        )
    return Section("Quantization impact", blocks)


def _scenarios(report: dict[str, Any]) -> Section:
    sc = report["scenarios"]
    if not sc["available"]:
        return Section("Practical scenarios", [_not(sc["reason"])])
    where = "quality/summary.json scenarios"
    blocks: list[Any] = [
        Para(
            [
                "Total: ",
                mq(sc["points"], where, "", 1),
                " / ",
                mq(sc["max_points"], where, "", 0),
                " points (",
                mq(sc["percent"], where, "%"),
                "); the origin document's hand score: ",
                Q(sc["origin_percent"], "%", source=sc["origin_source"]),
                ". SOTA expected: the origin document's own estimate per test (no basis stated), kept to "
                "show the "
                "gap it claimed.",
            ]
        )
    ]
    summary_rows = []
    for item in sc["items"]:
        summary_rows.append(
            [
                t(item["title"], where),
                q(item["percent_rec"]),
                q(item["sota_expected"]),
                q(item["gap"]),
                Q(item.get("origin_reported_percent"), "%", source="origin document (hand score)"),
            ]
        )
    blocks.append(
        Table(
            ["test", "score here", "SOTA expected", "gap", "origin document's score"],
            summary_rows,
            align="lrrrr",
        )
    )
    for item in sc["items"]:
        iwhere = f"{where} {item['id']}"
        blocks.append(doc.Heading(3, [t(item["title"], iwhere), ": ", q(item["percent_rec"])]))
        blocks.append(
            Table(
                ["criterion", "points", "evidence"],
                [
                    [
                        t(c["description"], "scenario rubric"),
                        [
                            mq(c["points"], iwhere, "", 1),
                            " / ",
                            Q(c["max_points"], "", 0, source="scenario rubric"),
                        ],
                        t(c.get("evidence") or "", iwhere),
                    ]
                    for c in item["criteria"]
                ],
                align="lrl",
            )
        )
        if item.get("answer") is not None:
            blocks.append(Para(["The model's answer (", t(item["answer_source"], "quality"), "):"]))
            answer = (
                item["answer"]
                if len(item["answer"]) <= 4000
                else item["answer"][:4000] + "\n[... cut at 4,000 characters]"
            )
            blocks.append(
                CodeBlock(T(answer or "(empty answer)", measured=f"the model's answer to {item['id']}"))
            )
        else:
            blocks.append(Para(["The model's answer: not in this run's quality/samples.jsonl."]))
    return Section("Practical scenarios", blocks)


def _performance(report: dict[str, Any]) -> Section:
    perf = report["performance"]
    if not perf["available"]:
        return Section("Throughput and latency", [_not(perf["reason"])])
    blocks: list[Any] = [
        Para(
            [
                "Workload: ",
                t(perf["workload"], "bench.json"),
                "; definitions as vLLM's benchmark client (docs/metrics.md).",
            ]
        )
    ]
    rows = []
    for lv in perf["levels"]:
        w = f"bench level {lv['name']}"
        rows.append(
            [
                t(lv["name"], "bench.json"),
                [mq(lv["completed"], w, "", 0), "/", mq(lv["requests"], w, "", 0)],
                mq(lv["output_tokens_per_s"], w),
                mq(lv["decode_tokens_per_s_per_stream"], w),
                mq(lv["ttft_p50_ms"], w),
                mq(lv["ttft_p99_ms"], w),
                mq(lv["tpot_p50_ms"], w),
                mq(lv["tpot_p99_ms"], w),
                mq(lv["itl_p50_ms"], w),
                mq(lv["e2el_p50_ms"], w),
                mq(lv["gpu_power_w_mean"], f"{w} NVML"),
            ]
        )
    blocks.append(
        Table(
            [
                "level",
                "ok",
                "output tok/s",
                "decode tok/s/stream",
                "TTFT p50 ms",
                "TTFT p99 ms",
                "TPOT p50 ms",
                "TPOT p99 ms",
                "ITL p50 ms",
                "E2E p50 ms",
                "GPU W",
            ],
            rows,
            align="lrrrrrrrrrr",
        )
    )
    roof = perf["roofline"]
    if roof["available"]:
        w = "bench roofline"
        blocks.append(
            Para(
                [
                    "Roofline: single-stream decode ",
                    mq(roof["measured_tokens_per_s"], w, "tok/s"),
                    " = ",
                    mq(roof["percent_of_bound"], w, "%", 0),
                    " of the bound ",
                    mq(roof["bound_tokens_per_s"], w, "tok/s", 0),
                    " (",
                    mq(roof["bandwidth_gbs"], w, "GB/s", 0),
                    " from ",
                    t(roof["bandwidth_source"], w),
                    " / ",
                    mq(roof["decode_step_bytes"], w, "bytes", 0),
                    " a decode step).",
                ]
            )
        )
    else:
        blocks.append(Para(["Roofline: not available (", t(roof["reason"], "bench roofline"), ")."]))
    tel = perf["telemetry"]
    if tel["available"]:
        blocks.append(Para(["GPU telemetry: NVML at ", mq(tel["achieved_hz"], "bench telemetry", "Hz"), "."]))
    else:
        blocks.append(Para(["GPU telemetry: not available (", t(tel["reason"], "bench telemetry"), ")."]))
    plots = report.get("plots") or []
    blocks += [Image(p, p.removesuffix(".png")) for p in ("throughput.png", "latency.png") if p in plots]
    return Section("Throughput and latency", blocks)


def _capacity_blocks(cap: dict[str, Any], who: str) -> list[Any]:
    if not cap.get("available"):
        return [_not(cap.get("reason"))]
    limits: list[Any] = []
    for i, (k, r) in enumerate(cap["slo"].items()):
        limits += [" and " if i else "", k.removesuffix("_ms").upper(), " p99 <= ", q(r)]
    blocks: list[Any] = [
        Para(
            [
                "SLO: ",
                *limits,
                " (",
                t(cap["slo_source"], "configured"),
                "). A level sustains it when at least ",
                q(cap["min_fraction"]),
                " of its requests meet every limit (a failed request misses). Rule: ",
                t(cap["rule"], "capacity rule"),
                ".",
            ]
        )
    ]
    header = (
        ["level", "streams", "within SLO"]
        + [f"{k.removesuffix('_ms').upper()} p99" for k in cap["slo"]]
        + ["sustains", "how counted"]
    )
    rows = []
    for row in cap["levels"]:
        within: list[Any] = [q(row["fraction"])]
        if row.get("meeting") is not None:
            within += [
                " (",
                mq(row["meeting"], row["fraction"]["measured"], "", 0),
                " of ",
                mq(row["requests"], row["fraction"]["measured"], "", 0),
                ")",
            ]
        rows.append(
            [t(row["level"], "bench.json"), mq(row["concurrency"], "bench.json", "", 0), within]
            + [q(row["p99"][k]) for k in cap["slo"]]
            + ["yes" if row["sustains"] else b("no"), t(row["basis"], "capacity rule")]
        )
    blocks.append(Table(header, rows))
    result: list[Any] = [
        b("Capacity:"),
        " at least " if cap["lower_bound"] else " ",
        q(cap["sustained_concurrency"]),
        " of ",
        who,
        " within the SLO",
    ]
    if cap["lower_bound"]:
        result += [" (the highest level measured still met the SLO: measure higher levels for the limit)"]
    result += ["."]
    blocks.append(Para(result))
    dev = cap.get("developers") or {}
    load = cap["per_developer"]
    if dev.get("value") is not None:
        blocks.append(
            Para(
                [
                    b("Developers served:"),
                    " ",
                    q(dev),
                    ". Per-developer load: ",
                    q(load["requests_per_hour"]),
                    " (",
                    t(load["source"], "configured"),
                    "). With a mean end-to-end latency of ",
                    q(cap["mean_latency_s"]),
                    " at level ",
                    t(cap["at_level"], "bench.json"),
                    " each developer keeps ",
                    q(cap["in_flight_per_developer"]),
                    " on average; the requests in flight are Poisson, and up to a mean of ",
                    q(cap["poisson_mean"]),
                    " their p99 stays within the sustained streams. The benchmark's request shape sets the "
                    "latency: "
                    "longer answers serve fewer developers.",
                ]
            )
        )
    else:
        blocks.append(
            Para(
                [
                    b("Developers served:"),
                    " not computed (",
                    t(cap.get("developers_reason"), "capacity rule"),
                    ").",
                ]
            )
        )
    return blocks


def _capacity(report: dict[str, Any]) -> Section:
    cap = report.get("capacity") or {}
    blocks = _capacity_blocks(cap, "chat")
    if "capacity.png" in (report.get("plots") or []):
        blocks.append(Image("capacity.png", "share of requests within the SLO at each level"))
    return Section("Capacity: concurrency within the SLO and developers served", blocks)


def _models(report: dict[str, Any]) -> list[Section]:
    models = report.get("models") or []
    rows = []
    for m in models:
        mm = m["model"]
        rows.append(
            [
                Code(t(mm.get("name"))),
                t(m["role"]),
                t(mm.get("id")),
                t(mm.get("quantization") or "none"),
                t(mm.get("engine") or "-"),
                t(mm.get("base_url") or "-"),
            ]
        )
    out = [
        Section(
            "Served models",
            [
                Table(
                    ["served name", "role", "model", "quantization", "engine", "loopback URL"],
                    rows,
                    align="llllll",
                )
            ],
        )
    ]
    for m in models:
        name = str(m["model"].get("name"))
        if m["role"] == "autocomplete":
            out.append(_autocomplete(name, m["autocomplete"], report))
        elif m["role"] == "embed":
            out.append(_embed(name, m["embed"], report))
        elif m["role"] != "chat":
            out.append(
                Section(
                    f"Model {name} ({m['role']})",
                    [Para([t(m.get("note"), "report")])],
                    level=3,
                    title_parts=["Model ", t(name), " (", t(m["role"]), ")"],
                )
            )
    co = report.get("cohosting") or {}
    if co.get("applies"):
        out.append(_cohosting(co))
    return out


def _not_measured(what: str, name: str, file: str, suite: str = "") -> Para:
    """The line a model section writes for a measurement this run has no file for."""
    tail = f" with the {suite} suite)." if suite else ")."
    return Para([f"{what}: not measured in this run (no ", Code(["models/", t(name), file]), tail])


def _levels(
    name: str, levels: list[dict[str, Any]], columns: dict[str, str], intro: Para, what: str
) -> list[Any]:
    """A model's bench levels: `intro` and a table of `columns` (key: heading), or the missing line."""
    if not levels:
        return [_not_measured(what, name, "/bench/bench.json")]
    rows = [[t(lv["name"], "bench.json"), *(q(lv[k]) for k in columns)] for lv in levels]
    return [intro, Table(["level", *columns.values()], rows)]


def _autocomplete(name: str, a: dict[str, Any], report: dict[str, Any]) -> Section:
    intro = Para(
        [
            "Short fill-in-the-middle prompts on ",
            Code("/v1/completions"),
            " (",
            Code("aimachine-bench --workload fim"),
            "): the latency a typing user feels.",
        ]
    )
    columns = {
        "ttft_p50_ms": "TTFT p50 ms",
        "ttft_p99_ms": "TTFT p99 ms",
        "total_p50_ms": "total p50 ms",
        "total_p99_ms": "total p99 ms",
        "errors": "errors",
    }
    blocks = _levels(name, a["levels"], columns, intro, "FIM latency")
    if a.get("infill"):
        i = a["infill"]
        blocks.append(
            Para(
                [
                    "Infill pass@1 (masked spans of HumanEval's canonical solutions, executed in the "
                    "sandbox): ",
                    q(i["pass_at_1"]),
                    " ± ",
                    q(i["stderr"]),
                    " over ",
                    q(i["problems"]),
                    " spans.",
                ]
            )
        )
        if (i.get("ttft_p50_ms") or {}).get("value") is not None:
            blocks.append(
                Para(
                    [
                        "The infill requests, streamed one at a time: TTFT p50 ",
                        q(i["ttft_p50_ms"]),
                        ", p99 ",
                        q(i["ttft_p99_ms"]),
                        "; total p50 ",
                        q(i["total_p50_ms"]),
                        ", p99 ",
                        q(i["total_p99_ms"]),
                        ".",
                    ]
                )
            )
    else:
        blocks.append(_not_measured("Infill pass@1", name, "/quality/summary.json", "infill"))
    if a["capacity"].get("available"):
        blocks += _capacity_blocks(a["capacity"], "autocomplete")
    plot = f"autocomplete-{plot_name(name)}.png"
    if plot in (report.get("plots") or []):
        blocks.append(Image(plot, "autocomplete latency"))
    return Section(
        f"Autocomplete model {name}", blocks, level=3, title_parts=["Autocomplete model ", t(name)]
    )


def _embed(name: str, e: dict[str, Any], report: dict[str, Any]) -> Section:
    intro = Para([Code("aimachine-bench --workload embeddings"), " on ", Code("/v1/embeddings"), ":"])
    columns = {
        "inputs_per_s": "inputs/s",
        "tokens_per_s": "tokens/s",
        "latency_p50_ms": "latency p50 ms",
        "latency_p99_ms": "latency p99 ms",
    }
    blocks = _levels(name, e["levels"], columns, intro, "Embedding throughput")
    if e.get("retrieval"):
        r = e["retrieval"]
        blocks.append(
            Para(
                [
                    "Retrieval on the fixed code-search set: recall@1 ",
                    q(r["recall_at_1"]),
                    " ± ",
                    q(r["stderr"]),
                    ", MRR ",
                    q(r["mrr"]),
                    " over ",
                    q(r["queries"]),
                    " queries.",
                ]
            )
        )
        if r.get("sanity_rule"):
            verdict = "passed" if r.get("sanity_passed") else "FAILED"
            blocks.append(
                Para(
                    [
                        "Chance: recall@1 ",
                        q(r.get("chance_recall_at_1")),
                        ", MRR ",
                        q(r.get("chance_mrr")),
                        "; the right function among the top five: ",
                        q(r.get("recall_at_5")),
                        ". Sanity check (",
                        t(r["sanity_rule"], "quality/retrieval.py"),
                        "): ",
                        t(verdict, "summary.json"),
                        "; ",
                        q(r.get("texts_per_s")),
                        " embedded.",
                    ]
                )
            )
    else:
        blocks.append(_not_measured("Retrieval recall@1 / MRR", name, "/quality/summary.json", "retrieval"))
    return Section(f"Embedding model {name}", blocks, level=3, title_parts=["Embedding model ", t(name)])


def _cohosting(co: dict[str, Any]) -> Section:
    if not co.get("available"):
        return Section(
            "What co-hosting costs the chat model", [Para([t(co["reason"], "this host's history")])], level=3
        )
    rows = [
        [
            t(r["level"], "bench.json"),
            q(r["alone_tokens_per_s"]),
            q(r["cohosted_tokens_per_s"]),
            q(r["change"]),
            q(r["alone_ttft_p99_ms"]),
            q(r["cohosted_ttft_p99_ms"]),
        ]
        for r in co["levels"]
    ]
    blocks: list[Any] = [
        Para(
            [
                "Against this host's latest run of the chat model alone (",
                t(co["baseline"], "this host's history"),
                "), at the profile's benchmark levels:",
            ]
        ),
        Table(
            [
                "level",
                "alone tok/s",
                "co-hosted tok/s",
                "change",
                "alone TTFT p99 ms",
                "co-hosted TTFT p99 ms",
            ],
            rows,
        ),
    ]
    kv = co.get("kv_cache")
    if kv:
        blocks.append(
            Para(
                [
                    "KV cache of the chat model: ",
                    q(kv["alone"]),
                    " alone, ",
                    q(kv["cohosted"]),
                    " co-hosted (",
                    q(kv["change"]),
                    ").",
                ]
            )
        )
    else:
        blocks.append(
            Para(["KV cache: not compared (the host role published no KV capacity for both runs)."])
        )
    return Section("What co-hosting costs the chat model", blocks, level=3)


def _cost(report: dict[str, Any]) -> Section:
    cost = report["cost"]
    if not cost["available"]:
        return Section("Cost", [Para(["Not computed: ", t(cost["reason"], "cost section"), "."])])
    cur = cost["currency"]
    conf = "configured: llm_verify_cost"
    hardware: Any = (
        "not configured"
        if cost["hardware_price"] is None
        else Q(cost["hardware_price"], cur, 0, source=cost["hardware_price_source"])
    )
    blocks: list[Any] = [
        Para(
            [
                "Electricity ",
                Q(
                    cost["electricity_price_per_kwh"],
                    f"{cur}/kWh",
                    2,
                    source=cost["electricity_price_source"],
                ),
                "; hardware ",
                hardware,
                "; power: ",
                t(cost["power"]["source"], "cost section"),
                ".",
            ]
        )
    ]
    blocks.append(
        Table(
            [
                "level",
                "output tok/s",
                "power W",
                "kWh per 1M tokens",
                f"electricity per 1M tokens ({cur})",
                "arithmetic",
            ],
            [
                [
                    t(c["level"], "bench.json"),
                    mq(c["output_tokens_per_s"], f"bench level {c['level']}"),
                    Q(c["power_w"], "", 1, measured=cost["power"]["source"])
                    if cost["power"]["measured"]
                    else Q(c["power_w"], "", 1, source=conf),
                    mq(c["kwh_per_million"], "computed (arithmetic)", "", 4),
                    mq(c["electricity_per_million"], "computed (arithmetic)", "", 4),
                    t(c["arithmetic"], "computed from the cells to its left"),
                ]
                for c in cost["per_level"]
            ],
            align="lrrrrl",
        )
    )
    if cost["break_even"]:
        blocks.append(
            Para(
                [
                    "Break-even against API prices, on the electricity cost of level ",
                    t(cost["basis"], "bench.json"),
                    ":",
                ]
            )
        )
        blocks.append(
            Table(
                [
                    "API",
                    f"price per 1M ({cur})",
                    "source",
                    "break-even (1M tokens)",
                    "break-even (months)",
                    "arithmetic / note",
                ],
                [
                    [
                        t(be["name"], conf),
                        Q(be["price_per_million"], "", 2, source=be["source"]),
                        t(be["source"], conf),
                        mq(be.get("break_even_million_tokens"), "computed (arithmetic)"),
                        mq(be.get("break_even_months"), "computed (arithmetic)"),
                        t(be.get("arithmetic") or be.get("note", ""), "computed from the cells to its left"),
                    ]
                    for be in cost["break_even"]
                ],
                align="lrlrrl",
            )
        )
    blocks.append(
        Para(
            [
                "Idle power ",
                Q(cost["idle_watts"], "W", 0, source=conf),
                " = ",
                mq(
                    cost["idle_cost_per_month"],
                    "computed: idle W x hours a month / 1000 x price per kWh",
                    cur,
                    2,
                ),
                " a month (",
                Q(730, "h", 0, source="hours a month: 8,760 h a year / 12"),
                "); monthly volume ",
                Q(cost["monthly_output_tokens_millions"], "M output tokens", 1, source=conf),
                " (configured).",
            ]
        )
    )
    return Section("Cost", blocks)


def _value(report: dict[str, Any]) -> Section:
    v = report["value"]
    rows = [
        [t(r["name"], "references"), q(r["quality"]), q(r["price"]), q(r["per_money"])] for r in v["rows"]
    ]
    blocks: list[Any] = [
        Para(
            [
                "Quality per money: HumanEval pass@1 (percentage points) over the price of 1M output "
                "tokens. This host "
                "pays electricity only (the hardware is in the break-even above); API rows use list output "
                "prices "
                "in their currency and the HumanEval figures the origin document lists."
            ]
        ),
        Table(
            ["option", "HumanEval pass@1", "price per 1M output tokens", "quality per money"],
            rows,
            align="lrrr",
        ),
    ]
    if v.get("reason"):
        blocks.append(Para(["This host's row: not computed (", t(v["reason"], "cost section"), ")."]))
    return Section("Quality per money", blocks)


def _suitability(report: dict[str, Any]) -> Section:
    s = report["suitability"]
    bands: list[Any] = []
    for i, band in enumerate(s["bands"]):
        bands += [
            "; " if i else "",
            t(band["band"], "suitability rule"),
            " from ",
            q(band["min_rec"]),
            " (",
            t(band["recommendation"], "suitability rule"),
            ")",
        ]
    rows = []
    for row in s["rows"]:
        if not row["measured"]:
            rows.append(
                [
                    t(row["use_case"], "suitability rule"),
                    "not measured",
                    "-",
                    "-",
                    t(row["why"], "suitability rule"),
                ]
            )
            continue
        score: list[Any] = [q(row["score"])]
        if row.get("stderr"):
            score += [" ± ", q(row["stderr"])]
        rows.append(
            [
                t(row["use_case"], "suitability rule"),
                score,
                b(t(row["band"], "suitability rule")),
                t(row["certainty"], "suitability rule"),
                t(row["basis"], "suitability rule"),
            ]
        )
    return Section(
        "Use-case suitability",
        [
            Para(
                [
                    "Each use case scores the mean of its measured components; bands: ",
                    *bands,
                    ". A band is confident when the score ± two standard errors stays inside it.",
                ]
            ),
            Table(["use case", "score", "band", "certainty", "measured by"], rows, align="lrlll"),
        ],
    )


def _weaknesses(report: dict[str, Any]) -> Section:
    items = report["weaknesses"]
    if not items:
        return Section(
            "Known weaknesses and mitigations", [Para(["No use case scored in the lowest band in this run."])]
        )
    bullets = []
    for w in items:
        line: list[Any] = [
            b(t(w["use_case"], "suitability rule")),
            " (",
            q(w["score"]) if w.get("score") else t(w["band"], "suitability rule"),
            ")",
        ]
        if w.get("why"):
            line += [": ", t(w["why"], "suitability rule")]
        if w["lost"]:
            line += ["; points lost on: "]
            for i, c in enumerate(w["lost"]):
                line += [
                    "; " if i else "",
                    t(c["criterion"], "scenario rubric"),
                    " ",
                    q(c["points"]),
                    "/",
                    q(c["max_points"]),
                ]
        line += [
            ". Mitigation: ",
            T(w.get("mitigation") or "-", source=w["source"]),
            ". Alternative: ",
            T(w.get("alternative") or "-", source=w["source"]),
            ".",
        ]
        bullets.append(line)
    return Section(
        "Known weaknesses and mitigations",
        [Bullets(bullets), Para(["Mitigations: the origin document's, condensed."])],
    )


def _hybrid(report: dict[str, Any]) -> Section:
    h = report["hybrid"]
    blocks: list[Any] = [
        Bullets(
            [
                [
                    b("Local"),
                    " (the upper bands): ",
                    t(", ".join(h["local"]) or "none", "suitability rule"),
                    ".",
                ],
                [
                    b("Cloud"),
                    " (the lowest band or not measured): ",
                    t(", ".join(h["cloud"]) or "none", "suitability rule"),
                    ".",
                ],
                [
                    b("Verify locally"),
                    ": run the tests and static analysis on every generated change; retry in the cloud "
                    "when they fail.",
                ],
            ]
        )
    ]
    c = h.get("cost")
    if c:
        blocks.append(
            Table(
                ["monthly", "value"],
                [
                    ["cloud share of the work", q(c["cloud_share"])],
                    ["volume", q(c["monthly_volume"])],
                    ["local electricity", q(c["local"])],
                    [
                        ["cloud (", t(c["api"], "configured"), " at ", q(c["api_price"]), " per 1M)"],
                        q(c["cloud"]),
                    ],
                    [b("hybrid total"), q(c["hybrid"])],
                    ["all in the cloud", q(c["all_cloud"])],
                    ["saving", q(c["saving"])],
                ],
                align="lr",
            )
        )
    else:
        blocks.append(Para(["Cost split: not computed (", t(h.get("reason"), "cost section"), ")."]))
    return Section("Recommended hybrid workflow", blocks)


def _strategies(report: dict[str, Any]) -> Section:
    s = report["strategies"]
    blocks: list[Any] = []
    if s["models"]:
        rows = []
        for m in s["models"]:
            here = m.get("measured_here")
            measured: Any = (
                [q(here["humaneval"]), ", ", q(here["single_stream_tokens_per_s"])]
                if here
                else "not run on this host"
            )
            rows.append(
                [
                    Code(t(m["key"], "catalog")),
                    t(m["description"], "catalog"),
                    q(m["weights_gb"]),
                    q(m["gpus"]),
                    q(m["vram_per_gpu_gib"]),
                    pub(m["humaneval"]),
                    pub(m["mbpp"]),
                    q(m["bound_tokens_per_s"]),
                    measured,
                ]
            )
        blocks.append(
            Para(
                [
                    "Other models of the catalog (",
                    Code("vm_llm_aimachine_model"),
                    "): published scores, size, and the single-stream bound on this card (bandwidth / "
                    "weights).",
                ]
            )
        )
        blocks.append(
            Table(
                [
                    "catalog key",
                    "what",
                    "weights",
                    "GPUs",
                    "VRAM per GPU",
                    "HumanEval (published)",
                    "MBPP (published)",
                    "decode bound here",
                    "measured on this host",
                ],
                rows,
                align="llrrrrrrl",
            )
        )
        notes = [
            [Code(t(m["key"], "catalog")), ": ", T(m["scores_note"], source=f"catalog entry {m['key']}")]
            for m in s["models"]
            if m.get("scores_note")
        ]
        if notes:
            blocks.append(Bullets(notes))
    elif not s["catalog_available"]:
        blocks.append(
            Para(
                [
                    "The catalog's entries were not passed to this run (",
                    Code("vm_llm_aimachine_deployed.catalog"),
                    ").",
                ]
            )
        )
    if s["profile"]:
        rows = [
            [
                q(p["streams"]),
                q(p["profile_tokens_per_s"]),
                q(p["defaults_tokens_per_s"]),
                q(p["profile_ttft_mean_ms"]),
                q(p["defaults_ttft_mean_ms"]),
            ]
            for p in s["profile"]
        ]
        blocks.append(
            Para(
                [
                    b("Serving profile"),
                    ": the profile's cap on concurrent sequences trades peak throughput for a bounded KV "
                    "cache; measured "
                    "on the lent GPU with the card capped to a sixteen-GiB budget (",
                    t(report["strategies"]["profile"][0]["streams"]["source"], "references"),
                    "):",
                ]
            )
        )
        blocks.append(
            Table(
                [
                    "streams",
                    "profile tok/s",
                    "vLLM defaults tok/s",
                    "profile TTFT mean ms",
                    "defaults TTFT mean ms",
                ],
                rows,
            )
        )
    spec = s["speculation"]
    if spec.get("available"):
        rows = [[t(r.get("label"), "speculation"), q(r)] for r in spec.get("rows") or []]
        blocks.append(Para([b("Speculative decoding"), ": ", t(spec.get("text") or "", "speculation")]))
        if rows:
            blocks.append(Table(["", "value"], rows, align="lr"))
    else:
        blocks.append(
            Para([b("Speculative decoding"), ": not measured (", t(spec.get("reason"), "speculation"), ")."])
        )
    blocks.append(
        Para(
            [
                b("Prompting and temperature"),
                ": the origin document's gains for prompt engineering and temperature tuning have no "
                "source and are "
                "not measured here; the quality settings above are what this run used.",
            ]
        )
    )
    return Section("Improvement strategies", blocks)


def _personas(report: dict[str, Any]) -> Section:
    rows = []
    for p in report["personas"]:
        fits = "-" if p["fits"] is None else ("yes" if p["fits"] else b("no"))
        rows.append(
            [
                t(p["persona"], "persona rule"),
                q(p["developers"]),
                q(p["served"]),
                fits,
                q(p["break_even_months"]),
                t(p["recommendation"], "persona rule"),
            ]
        )
    return Section(
        "Recommendations by persona",
        [
            Para(
                [
                    "Developers served is the capacity figure above; break-even at each persona's volume "
                    "(developers x the configured monthly volume)."
                ]
            ),
            Table(
                [
                    "persona",
                    "developers",
                    "served by this box",
                    "fits",
                    "break-even (months)",
                    "recommendation",
                ],
                rows,
                align="lrrlrl",
            ),
        ],
    )


def _changes(report: dict[str, Any]) -> Section:
    ch = report["changes"]
    cur = report["cost"].get("currency", "")
    if ch["previous"] is None:
        return Section("Changes since the previous run", [Para([ch["text"]])])
    prev = ch["previous"]
    where = f"this host's run at {prev['generated_at']}"
    blocks: list[Any] = [
        Para(
            [
                "Previous run: ",
                t(prev["generated_at"], where),
                " (",
                t(prev["run_mode"], where),
                " mode, ",
                "same deployment" if prev["same_deployment"] else "a different deployment",
                "). Regressions are changes for the worse beyond ",
                Q(
                    ch["tolerance_percent"],
                    "%",
                    0,
                    source="configured: llm_verify_regression_tolerance_percent",
                ),
                " (pass@1: also beyond two standard errors; error rate: one point).",
            ]
        )
    ]
    rows = [
        [
            r["label"],
            _metric(r["metric"], r["previous"], cur, where),
            _metric(r["metric"], r["current"], cur, "this run"),
            "-"
            if r["delta_percent"] is None
            else Q(r["delta_percent"], "%", 1, measured="computed", signed=True),
            b("REGRESSION") if r["regression"] else ("improved" if r["improvement"] else "within tolerance"),
        ]
        for r in ch["rows"]
    ]
    blocks.append(Table(["metric", "previous", "this run", "change", ""], rows))
    return Section("Changes since the previous run", blocks)


def _trend(report: dict[str, Any]) -> Section:
    points = report["trend"]
    keys = [
        "humaneval_pass_at_1",
        "scenarios_percent",
        "single_stream_tokens_per_s",
        "peak_output_tokens_per_s",
        "ttft_p99_ms",
        "error_rate",
    ]
    rows = []
    for p in points:
        where = f"this host's run at {p['generated_at']}"
        rows.append(
            [t(p["generated_at"], where), t(p["run_mode"], where), Code(t(str(p["fingerprint"])[:12], where))]
            + [_metric(k, p["metrics"].get(k), "", where) for k in keys]
        )
    blocks: list[Any] = [
        Table(
            ["run", "mode", "deployment"] + [METRICS[k]["label"] for k in keys],
            rows,
            align="lll" + "r" * len(keys),
        )
    ]
    if "trend.png" in (report.get("plots") or []):
        blocks.append(Image("trend.png", "trend"))
    return Section("Trend over this host's runs", blocks)


def _clients(report: dict[str, Any]) -> Section:
    clients = report.get("clients") or {}
    if not clients.get("files"):
        return Section("Client configuration", [Para(["None written."])])
    line: list[Any] = [
        "Endpoint ",
        Code(t(clients["base_url"])),
        " (via ",
        t(clients.get("via")),
        "), model ",
        Code(t(clients["model"])),
        ". The key is referenced, never written: environment variable ",
        Code(t(clients["key_env"])),
    ]
    if clients.get("key_file"):
        line += [", read from ", Code(t(clients["key_file"]))]
    line += ["."]
    return Section(
        "Client configuration",
        [
            Para(line),
            Bullets(
                [
                    [Code(["clients/", t(name, "clients")]), ": ", t(what, "clients")]
                    for name, what in clients["files"].items()
                ]
            ),
        ],
    )


def _references(report: dict[str, Any], blocks: list[Any]) -> Section:
    """Every source the report cites, with how many of its numbers use it; then the benchmarks' pages."""
    counts: dict[str, int] = {}
    for _text, prov in doc.provenances(blocks):
        if isinstance(prov, str):
            counts[prov] = counts.get(prov, 0) + 1
    pieces = [p for blk in blocks for p in doc._block_pieces(blk)]
    sourced = {p.source for p in pieces if isinstance(p, Q | T) and p.source}
    rows = [
        [
            t(src, "the report's sources"),
            mq(counts.get(src, 0), "count of the report's numbers citing it", "", 0),
        ]
        for src in sorted(sourced)
    ]
    bench_links = [
        [t(x["name"], "references"), ": ", Link(t(x["url"], "references"), t(x["url"], "references"))]
        for x in report.get("benchmarks") or []
    ]
    return Section(
        "References",
        [
            Para(
                [
                    "Published and configured figures this report cites (measured numbers name their "
                    "measurement instead; the HTML shows each number's provenance on hover):"
                ]
            ),
            Table(["source", "numbers citing it"], rows, align="lr"),
            Para(["Benchmarks and reports:"]),
            Bullets(bench_links),
        ],
    )


def render_blocks(report: dict[str, Any]) -> list[Any]:
    blocks: list[Any] = []
    blocks += _header(report)
    blocks.append(_summary(report))
    for part in (
        _gates,
        _grade,
        _quality,
        _humaneval_table,
        _swe_bench,
        _quantization,
        _scenarios,
        _performance,
        _capacity,
    ):
        blocks.append(part(report))
    blocks += _models(report)
    for part in (
        _cost,
        _value,
        _suitability,
        _weaknesses,
        _hybrid,
        _strategies,
        _personas,
        _changes,
        _trend,
        _clients,
    ):
        blocks.append(part(report))
    blocks.append(_references(report, blocks))
    blocks.append(Rule())
    blocks.append(
        Para(
            [
                "Written by aimachine-report ",
                t(report["tool"]["version"], "the package"),
                "; the data is in report.json (schema ",
                t(report["schema_version"], "the package"),
                "), the raw results under bench/, quality/ and models/. What each section means: "
                "docs/report.md.",
            ]
        )
    )
    return blocks


def render_markdown(report: dict[str, Any]) -> str:
    return doc.to_markdown(render_blocks(report))


def render_html(report: dict[str, Any], images: Path | None = None) -> str:
    model = (report["metadata"].get("model") or {}).get("id", "?")
    host = (report["metadata"].get("host") or {}).get("name", "?")
    return doc.to_html(render_blocks(report), f"Verification report: {model} on {host}", images)
