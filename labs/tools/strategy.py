"""Strategy advisor: prompting vs RAG vs SFT vs DPO vs LoRA for a described use case.

    >>> r = assess_use_case(format_strictness="strict", requests_per_day=50_000,
    ...                     knowledge_change="static", privacy="none", latency="interactive",
    ...                     examples_on_hand=2_000, task_kind="format")
    >>> r["recommendation"]
    'LoRA SFT'

The decision is a transparent points system (each factor adds points to an
approach and says why), so a learner can see which answer would flip it.
Prices are assumptions, returned with the result so they can be edited. The
prompted baseline is priced twice, as a frontier model and as a small hosted
one, with the batch discount when answers may wait (issue 23: pricing only a
frontier model made fine-tuning look cheaper than it is); volume counts fully
towards fine-tuning only when the tuned model is also the cheapest option.
"""
from __future__ import annotations

import math
from labs.tools.spec import ToolSpec, enum, num

FORMAT_STRICTNESS = ("loose", "moderate", "strict")
KNOWLEDGE_CHANGE = ("static", "yearly", "monthly", "weekly", "daily")
PRIVACY = ("none", "sensitive", "on_premises")
LATENCY = ("relaxed", "interactive", "realtime")
TASK_KINDS = ("style", "format", "domain", "preference", "general")

# Rules of thumb taught in the lessons. They have no published source, so the
# result labels them as such.
DATA_TIERS = {
    "style": (50, 500, "examples"),
    "format": (500, 5_000, "examples"),
    "domain": (10_000, 100_000, "examples"),
    "preference": (1_000, 20_000, "preference pairs"),
    "general": (500, 5_000, "examples"),
}

# Editable defaults for the cost comparison (USD). Plausible mid-2020s list
# prices for a frontier hosted model, for the small tier of the same providers,
# and for a rented inference GPU; the learner or the model overrides any of
# them. Hosted providers' batch APIs (OpenAI's, Anthropic's) take requests that
# may wait up to a day at half price: applied when latency is "relaxed".
DEFAULT_ASSUMPTIONS = {
    "input_price_per_mtok": 3.0,
    "output_price_per_mtok": 15.0,
    "small_input_price_per_mtok": 0.15,
    "small_output_price_per_mtok": 0.6,
    "batch_discount": 0.5,
    "input_tokens_per_request": 800,
    "output_tokens_per_request": 200,
    "gpu_hourly_usd": 1.2,
    "serving_hours_per_day": 24.0,
    "requests_per_gpu_hour": 3_000,
    "training_gpu_hours": 4.0,
    "training_gpu_hourly_usd": 2.5,
    "retrains_per_month": 1.0,
}
DAYS_PER_MONTH = 30


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {str(value)[:40]!r})")


def _hosted_per_request(a: dict, input_price: float, output_price: float, batch: bool) -> float:
    price = (a["input_tokens_per_request"] * input_price + a["output_tokens_per_request"] * output_price) / 1e6
    return price * (1 - a["batch_discount"]) if batch else price


def cost_comparison(requests_per_day: int, assumptions: dict, batch: bool = False) -> dict:
    """Monthly cost of a prompted frontier model, a prompted small hosted model and a
    tuned small self-hosted one; `batch` prices the hosted ones at the batch discount."""
    a = assumptions
    monthly_requests = requests_per_day * DAYS_PER_MONTH
    per_request = _hosted_per_request(a, a["input_price_per_mtok"], a["output_price_per_mtok"], batch)
    small_per_request = _hosted_per_request(a, a["small_input_price_per_mtok"],
                                            a["small_output_price_per_mtok"], batch)
    large = monthly_requests * per_request
    small_hosted = monthly_requests * small_per_request
    # Enough GPUs to serve the busiest hour if traffic were spread evenly over
    # the serving hours; at least one if the service is on at all.
    hours = a["serving_hours_per_day"]
    per_hour = requests_per_day / hours if hours else math.inf
    gpus = max(1, math.ceil(per_hour / a["requests_per_gpu_hour"])) if requests_per_day else 0
    if hours == 0 and requests_per_day:
        raise ValueError("serving_hours_per_day is 0 but there is traffic to serve")
    serving = gpus * hours * DAYS_PER_MONTH * a["gpu_hourly_usd"]
    training = a["training_gpu_hours"] * a["training_gpu_hourly_usd"] * a["retrains_per_month"]
    small = serving + training
    # Break-even volume: where the per-request API bill equals the fixed
    # serving + training bill (ignores the step when a second GPU is needed).
    fixed_one_gpu = hours * DAYS_PER_MONTH * a["gpu_hourly_usd"] + training
    breakeven = math.ceil(fixed_one_gpu / (per_request * DAYS_PER_MONTH)) if per_request else None
    breakeven_small = (math.ceil(fixed_one_gpu / (small_per_request * DAYS_PER_MONTH))
                       if small_per_request else None)
    options = {"prompted large model": large, "prompted small hosted model": small_hosted,
               "tuned small model": small}
    return {
        "monthly_requests": monthly_requests,
        "batch_applied": batch,
        "large_prompted_per_request_usd": round(per_request, 6),
        "large_prompted_monthly_usd": round(large, 2),
        "small_prompted_per_request_usd": round(small_per_request, 6),
        "small_prompted_monthly_usd": round(small_hosted, 2),
        "tuned_small_gpus": gpus,
        "tuned_small_serving_monthly_usd": round(serving, 2),
        "tuned_small_training_monthly_usd": round(training, 2),
        "tuned_small_monthly_usd": round(small, 2),
        "cheaper": ("tuned small model" if small < large else
                    "prompted large model" if large < small else "equal"),
        "cheapest": min(options, key=options.get),
        "ratio": round(large / small, 2) if small else None,
        "breakeven_requests_per_day": breakeven,
        "breakeven_vs_small_requests_per_day": breakeven_small,
        "note": ("Fine-tuned side excludes engineering time and data labelling; "
                 "hosted side excludes prompt-caching discounts"
                 + ("" if batch else " and batch pricing (answers needed within seconds)")
                 + ". A hosted model's price counts only if that model passes your evaluation. "
                 "A self-hosted GPU costs the same per hour however many tokens it serves, up to its capacity."),
    }


def assess_use_case(format_strictness: str, requests_per_day: int, knowledge_change: str,
                    privacy: str, latency: str, examples_on_hand: int,
                    task_kind: str | None = None, **assumption_overrides: float) -> dict:
    """Recommend an approach with reasons, a data-size estimate and a cost comparison."""
    _check_choice("format_strictness", format_strictness, FORMAT_STRICTNESS)
    _check_choice("knowledge_change", knowledge_change, KNOWLEDGE_CHANGE)
    _check_choice("privacy", privacy, PRIVACY)
    _check_choice("latency", latency, LATENCY)
    if task_kind is not None:
        _check_choice("task_kind", task_kind, TASK_KINDS)
    unknown = set(assumption_overrides) - set(DEFAULT_ASSUMPTIONS)
    if unknown:
        raise ValueError(f"unknown assumption(s): {', '.join(sorted(unknown))}")
    if requests_per_day < 0 or examples_on_hand < 0:
        raise ValueError("requests_per_day and examples_on_hand cannot be negative")
    assumptions = {**DEFAULT_ASSUMPTIONS, **{k: float(v) for k, v in assumption_overrides.items()}}
    for key, value in assumptions.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a non-negative number")
    for key in ("input_tokens_per_request", "output_tokens_per_request",
                "requests_per_gpu_hour"):
        if assumptions[key] <= 0:
            raise ValueError(f"{key} must be positive")
    if assumptions["batch_discount"] >= 1:
        raise ValueError("batch_discount is a fraction of the price saved (0.5 = half price); it must be below 1")

    kind = task_kind or ("format" if format_strictness == "strict" else "general")
    reasons: list[str] = []
    cautions: list[str] = []
    costs = cost_comparison(requests_per_day, assumptions, batch=latency == "relaxed")

    # RAG: for facts that change, retrieval beats retraining.
    use_rag = knowledge_change in ("monthly", "weekly", "daily")
    if use_rag:
        reasons.append(f"Knowledge changes {knowledge_change}: put facts in retrieval (RAG) so "
                       "updates are a re-index, not a retrain. Fine-tuning teaches behaviour, "
                       "not fresh facts.")

    # Fine-tuning signals, each with its reason.
    ft_points = 0
    if format_strictness == "strict":
        ft_points += 2
        reasons.append("Strict output format: schema-constrained decoding (vLLM structured "
                       "outputs, hosted structured-output modes) guarantees valid syntax "
                       "without training for replies that finish within the token limit; fine-tuning adds correct field values and "
                       "consistent conventions from a small model without a long prompt.")
    elif format_strictness == "moderate":
        ft_points += 1
    tuned_cheapest = costs["cheapest"] == "tuned small model"
    if requests_per_day >= 10_000:
        # Volume favours a consistent small model either way; it is a price
        # argument only when the tuned model is really the cheapest option.
        ft_points += 2 if tuned_cheapest else 1
        reasons.append(_volume_reason(requests_per_day, costs))
    elif requests_per_day >= 1_000:
        ft_points += 1 if tuned_cheapest else 0
    if requests_per_day and not tuned_cheapest:
        cautions.append(f"At this volume the {costs['cheapest']} costs less "
                        f"(USD {min(costs['large_prompted_monthly_usd'], costs['small_prompted_monthly_usd']):,.0f}"
                        f" a month against USD {costs['tuned_small_monthly_usd']:,.0f} for a tuned self-hosted "
                        "model): evaluate it first, and fine-tune for quality, privacy or latency, not price.")
    if privacy == "on_premises":
        ft_points += 2
        reasons.append("Data must stay on your infrastructure: a self-hosted open model (tuned "
                       "with LoRA) is the way to get quality without a hosted API.")
    elif privacy == "sensitive":
        ft_points += 1
        cautions.append("Sensitive data: check the hosted provider's retention terms, or self-host.")
    if latency == "realtime":
        ft_points += 2
        reasons.append("Realtime latency: a small specialised model answers faster than a large "
                       "general one with a long prompt.")
    elif latency == "interactive":
        ft_points += 1
    if kind in ("style", "domain"):
        ft_points += 1

    lo, hi, unit = DATA_TIERS[kind]
    enough_for_sft = examples_on_hand >= lo
    if examples_on_hand < 50:
        ft_points -= 3
        reasons.append(f"Only {examples_on_hand} examples: start with prompting (few-shot) and "
                       "use it to collect and label real traffic before fine-tuning.")
    elif not enough_for_sft:
        ft_points -= 1
        cautions.append(f"{examples_on_hand:,} {unit} is below the {lo:,}–{hi:,} rule of thumb "
                        f"for {kind} tasks: expect to collect more.")

    fine_tune = ft_points >= 3
    dpo = kind == "preference" and fine_tune
    if kind == "preference" and not fine_tune:
        cautions.append("Preference tuning (DPO) needs an SFT-capable setup and enough pairs; "
                        "revisit when both are in place.")

    parts = []
    if use_rag:
        parts.append("RAG")
    if fine_tune:
        parts.append("LoRA SFT + DPO" if dpo else "LoRA SFT")
        reasons.append("LoRA rather than full fine-tuning: a fraction of a percent of the "
                       "weights train, so it fits one GPU and the adapter is megabytes.")
        if dpo:
            reasons.append("Preference data: run DPO after SFT on (prompt, chosen, rejected) "
                           "pairs; the frozen reference should be the SFT model. With PEFT: a "
                           "fresh adapter on the merged SFT model uses that model with the new "
                           "adapter disabled; continuing the SFT adapter makes TRL keep a frozen "
                           "copy of it as the reference.")
    if not parts:
        parts.append("prompting")
        if not any("prompting" in r for r in reasons):
            reasons.append("Nothing here demands fine-tuning yet: a well-written prompt with a "
                           "few examples is the cheapest thing to try and to change.")
    elif not fine_tune:
        parts.insert(0, "prompting")
    recommendation = " + ".join(parts)

    scores = {
        "prompting": max(0, 5 - ft_points),
        "rag": 5 if use_rag else (2 if knowledge_change == "yearly" else 0),
        "lora_sft": max(0, ft_points),
        "dpo": max(0, ft_points) if kind == "preference" else 0,
    }

    data_estimate = {
        "task_kind": kind, "low": lo, "high": hi, "unit": unit,
        "on_hand": examples_on_hand,
        "status": ("enough to start" if examples_on_hand >= lo else
                   f"short by about {lo - examples_on_hand:,}"),
        "label": "Rule of thumb from the lessons, not a published result: quality and "
                 "coverage matter more than count.",
    }
    return {
        "recommendation": recommendation,
        "fine_tune": fine_tune, "use_rag": use_rag, "use_dpo": dpo,
        "fine_tune_points": ft_points, "scores": scores,
        "reasons": reasons, "cautions": cautions,
        "data_estimate": data_estimate,
        "cost": costs, "assumptions": assumptions,
        "inputs": {"format_strictness": format_strictness, "requests_per_day": requests_per_day,
                   "knowledge_change": knowledge_change, "privacy": privacy, "latency": latency,
                   "examples_on_hand": examples_on_hand, "task_kind": kind},
    }


def _volume_reason(requests_per_day: int, c: dict) -> str:
    prices = (f"tuned small model USD {c['tuned_small_monthly_usd']:,.0f} a month, prompted small hosted "
              f"model USD {c['small_prompted_monthly_usd']:,.0f}, prompted frontier model "
              f"USD {c['large_prompted_monthly_usd']:,.0f}" + ("; hosted at batch prices" if c["batch_applied"] else ""))
    if c["cheapest"] == "tuned small model":
        return (f"{requests_per_day:,} requests/day: the tuned small model is the cheapest option here "
                f"({prices}), and a small model tuned for the task stays consistent at volume.")
    return (f"{requests_per_day:,} requests/day: a small model tuned for the task stays consistent at "
            f"volume, but it is not the cheapest option ({prices}).")


def strategy_markdown(result: dict) -> str:
    c, a, d = result["cost"], result["assumptions"], result["data_estimate"]
    batch = f" (batch API, -{a['batch_discount']:.0%})" if c["batch_applied"] else ""
    out = [f"### Recommendation: **{result['recommendation']}**", "", "**Why**",
           *[f"- {r}" for r in result["reasons"]]]
    if result["cautions"]:
        out += ["", "**Watch out**", *[f"- ⚠️ {x}" for x in result["cautions"]]]
    out += [
        "", "**Data needed** (" + d["label"] + ")", "",
        f"{d['task_kind']}: {d['low']:,}–{d['high']:,}{'+' if d['task_kind'] == 'domain' else ''} "
        f"{d['unit']}; you have {d['on_hand']:,}: {d['status']}.",
        "", f"**Monthly cost at {result['inputs']['requests_per_day']:,} requests/day** "
        f"({c['monthly_requests']:,} a month)", "",
        "| option | monthly USD | how |", "|---|---:|---|",
        f"| prompted frontier model | {c['large_prompted_monthly_usd']:,.2f} | "
        f"{a['input_tokens_per_request']:g} in + {a['output_tokens_per_request']:g} out tokens at "
        f"${a['input_price_per_mtok']:g} / ${a['output_price_per_mtok']:g} per M{batch} |",
        f"| prompted small hosted model | {c['small_prompted_monthly_usd']:,.2f} | the same tokens at "
        f"${a['small_input_price_per_mtok']:g} / ${a['small_output_price_per_mtok']:g} per M{batch} |",
        f"| tuned small model | {c['tuned_small_monthly_usd']:,.2f} | {c['tuned_small_gpus']} GPU x "
        f"{a['serving_hours_per_day']:g} h/day at ${a['gpu_hourly_usd']:g}/h + training "
        f"{a['training_gpu_hours']:g} h x ${a['training_gpu_hourly_usd']:g}/h x "
        f"{a['retrains_per_month']:g}/month |",
        "", f"Cheapest: **{c['cheapest']}**. Tuned small against prompted frontier: **{c['cheaper']}** cheaper"
        + (f" (x{c['ratio']})" if c["ratio"] else "") +
        (f"; break-even near {c['breakeven_requests_per_day']:,} requests/day against the frontier model"
         if c["breakeven_requests_per_day"] else "") +
        (f" and {c['breakeven_vs_small_requests_per_day']:,} against the small hosted one."
         if c["breakeven_vs_small_requests_per_day"] else "."),
        "", f"_{c['note']}_", "",
        "<details><summary>Assumptions (edit any of them)</summary>", "",
        "| assumption | value |", "|---|---:|",
        *[f"| {k} | {v:g} |" for k, v in a.items()], "", "</details>",
    ]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------ tool spec

SPECS = (
    ToolSpec(
        name="assess_use_case",
        description="Decide between prompting, RAG, supervised fine-tuning (SFT), DPO and LoRA (or a "
            "combination such as RAG + LoRA SFT) for a use case, with reasons; estimate how much "
            "data is needed (rules of thumb) and compare the monthly cost of a prompted frontier hosted "
            "model, a prompted small hosted model (at batch prices when latency is relaxed) and a "
            "fine-tuned small self-hosted one at the stated volume. All prices are assumptions with "
            "defaults returned in the result; pass your own to override them.",
        input_schema={
            "type": "object",
            "properties": {
                "format_strictness": enum(
                    list(FORMAT_STRICTNESS),
                    "How exact the output format must be: loose (free prose), moderate "
                    "(a house style or template), strict (must parse, e.g. JSON for a program)."),
                "requests_per_day": num(0, 1e9, "Expected production requests per day.", True),
                "knowledge_change": enum(
                    list(KNOWLEDGE_CHANGE),
                    "How often the facts the answers depend on change."),
                "privacy": enum(
                    list(PRIVACY),
                    "none; sensitive (PII, contracts: vendor terms matter); "
                    "on_premises (data may not leave our own infrastructure)."),
                "latency": enum(
                    list(LATENCY),
                    "relaxed (seconds are fine), interactive (about a second), "
                    "realtime (a few hundred milliseconds)."),
                "examples_on_hand": num(0, 1e9, "Labelled examples (or preference pairs) available now.", True),
                "task_kind": enum(
                    list(TASK_KINDS),
                    "Optional. style (tone/voice), format (fixed output structure, extraction), "
                    "domain (specialised knowledge/jargon), preference (which of two answers is "
                    "better), general."),
                "input_price_per_mtok": num(0, 1000, "Large (frontier) hosted model: USD per million input tokens."),
                "output_price_per_mtok": num(0, 1000, "Large (frontier) hosted model: USD per million output tokens."),
                "small_input_price_per_mtok": num(0, 1000, "Small hosted model: USD per million input tokens."),
                "small_output_price_per_mtok": num(0, 1000, "Small hosted model: USD per million output tokens."),
                "batch_discount": num(0, 0.95, "Fraction of the hosted price a batch API saves (0.5 = half "
                                      "price); applied only when latency is relaxed."),
                "input_tokens_per_request": num(1, 1_000_000, "Prompt tokens per request with the large model (incl. instructions/few-shot).", True),
                "output_tokens_per_request": num(1, 100_000, "Output tokens per request.", True),
                "gpu_hourly_usd": num(0, 1000, "USD per hour for one GPU serving the small tuned model."),
                "serving_hours_per_day": num(0, 24, "Hours per day the serving GPU is kept running."),
                "requests_per_gpu_hour": num(1, 10_000_000, "Requests one serving GPU handles per hour.", True),
                "training_gpu_hours": num(0, 100_000, "GPU hours for one fine-tuning run."),
                "training_gpu_hourly_usd": num(0, 1000, "USD per hour of the training GPU."),
                "retrains_per_month": num(0, 100, "Fine-tuning runs per month (retraining cadence)."),
            },
            "required": ["format_strictness", "requests_per_day", "knowledge_change",
                         "privacy", "latency", "examples_on_hand"],
            "additionalProperties": False,
        },
        fn=assess_use_case,
        markdown=strategy_markdown,
    ),
)
