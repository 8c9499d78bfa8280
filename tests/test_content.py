"""Content integrity: lessons, quiz banks and lesson code snippets (issue 2).

Run just these:  .venv/bin/python -m pytest -q tests/test_content.py
The structural checks take about a second; running the offline snippets adds
roughly 15-25 s (a few of them import torch, one builds a toy PEFT model).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lessons import Lesson, get_lesson, load_lessons, parse_lesson

ROOT = Path(__file__).resolve().parent.parent
QUIZ_DIR = ROOT / "quizzes" / "data"
CHECK_COPY = ROOT.parent / "shared" / "tools" / "check-copy"

LESSON_IDS = ["lesson1", "lesson2", "lesson3", "lesson4"]
QUIZ_SIZES = {"lesson1": 4, "lesson2": 4, "lesson3": 4, "lesson4": 4, "module_test": 15}

# Claims the course source gets wrong (../shared/fact-check.md). None of them
# may appear in a lesson or in anything a quiz presents as correct.
FORBIDDEN = {
    r"\bW\w*\s*\+\s*A\s*@\s*B": "the LoRA update is (alpha/r)·B·A, not W + A@B",
    r"\bA\s*@\s*B\b": "the LoRA product is B·A (B is d×r, A is r×k)",
    r"checkpoint-best": "Trainer checkpoints are checkpoint-<step>; the best is best_model_checkpoint",
    r"0\.8\+?\s*correlation": "LLM-as-judge: >80% agreement (MT-Bench), not a 0.8 correlation",
    r"September 2022": "BloombergGPT was published on 30 March 2023",
    r"10\s*[–-]\s*100\s*[x×]": "the Mistral '10-100x too high' learning-rate claim has no source",
    r"(?i)(prevents? (catastrophic )?forgetting|entirely prevents)": "LoRA reduces forgetting, it does not prevent it",
    r"(?i)eliminat\w* (memory |kv[- ]cache )?fragmentation": "PagedAttention leaves under 4% waste, it does not eliminate fragmentation",
    r"(?i)(faster loading|adapter loading overhead)": "merging removes the per-forward LoRA matmul; it is not about loading",
    r"(?i)highest[- ]quality human feedback": "the InstructGPT 1%/30% ablation does not exist",
}
# Wrong or misleading teaching an expert review found in the course itself
# (issue 12; the corrected facts are in ../shared/fact-check.md). These are our
# own old wordings, not the source's, so each carries an example of the wording
# it exists to catch: the check is proven able to fail on it.
REVIEW_FORBIDDEN = {
    r"(?i)(network|base|model) with the adapter (switched |turned )?(off|disabled)": (
        "the DPO reference is the SFT model: a frozen copy of a continued SFT adapter, "
        "or the merged SFT model with a fresh adapter off",
        "the trainer uses the same network with the adapter switched off"),
    r"(?i)adapter-disabled base": (
        "the DPO reference is not simply the adapter-disabled base",
        "Frozen reference (the adapter-disabled base with PEFT)"),
    r"(?i)fine-tun\w*\s+makes?\s+(the\s+)?(format\s+reliable|the last few percent)": (
        "valid syntax comes from constrained decoding; fine-tuning is for field accuracy, "
        "consistency, cost and latency",
        "supervised fine-tuning makes the format reliable far more cheaply"),
    r"(?i)(700|708) billion training tokens": (
        "BloombergGPT's corpus was ~708B tokens but it trained on ~569B",
        "its roughly 700 billion training tokens showed that more domain data always wins"),
    r"\bif lsh\.query\(": (
        "LSH returns candidates; confirm each with the (estimated) Jaccard similarity",
        "    if lsh.query(m):            # a similar example is already kept"),
    r"(?i)(which is what|as) (tools such as )?(llama\.cpp|ollama)[^.]{0,40}expect": (
        "llama.cpp (--lora) and Ollama (ADAPTER) load adapters directly",
        "an ordinary model again, which is what tools such as llama.cpp or Ollama expect"),
    r"(?i)low from the first step[^.]*\.\s*Check for leakage": (
        "leakage lowers validation loss, not the first training steps' loss",
        "Loss is suspiciously low from the first step. Check for leakage (validation examples"),
    r"(?i)one (less|fewer) matmul": (
        "merging removes two low-rank matmuls (x through A, then B) per adapted layer",
        "The gain is one less matmul per forward pass, not faster loading."),
    r"\b43%": (
        "cite LIMA beating Alpaca-65B and its quality-vs-quantity ablation, not the 43% figure",
        "matched or beat GPT-4 in 43% of comparisons"),
    r"claude-sonnet-4-6": (
        "lesson code uses the app's default model id",
        'MODEL = os.environ.get("TEACHER_MODEL", "claude-sonnet-4-6")'),
    # issue 23, "Wrong or misleading" 1: rank, alpha and the learning rate
    r"(?i)effective(ly)?\s+(step size|learning rate)|learning rate is effectively|step size shrinks|changes? the update size": (
        "alpha/r is the scale factor; with Adam and B = 0 the best learning rate is roughly rank-independent "
        "at fixed alpha (LoRA Without Regret, 2025), alpha = 2r moves it, rsLoRA argues for alpha/sqrt(r)",
        "It halves, from alpha/r = 2 to 1, so the update's effective step size shrinks"),
    # 4: assistant-only loss and chat templates
    r"(?i)only works when the template|check before you rely on it": (
        "TRL 1.x swaps in marked templates for the families it recognises; other templates (SmolLM2's) "
        "stop the trainer; get_training_chat_template says which",
        "That option only works when the template wraps assistant turns in `{% generation %}` markers; "
        "many templates (SmolLM2's, for one) have none, so check before you rely on it."),
    # 5: constrained decoding
    r"(?i)so every reply (is valid|parses)|reply always matches the schema|makes every reply parse": (
        "constrained decoding guarantees syntax only for replies that finish; cut-off replies still fail "
        "and schema support varies by engine",
        "constrain decoding to a JSON schema so every reply is valid."),
    # 6: llama.cpp adapters need converting to GGUF first
    r"(?i)llama\.cpp[^.]{0,60}--lora`?(?![^.]*convert)": (
        "llama.cpp's --lora takes a GGUF adapter: convert the PEFT adapter with convert_lora_to_gguf.py",
        "llama.cpp loads an adapter at run time with `--lora`, and an Ollama Modelfile can name one"),
    # 7: field accuracy on nested JSON
    r"set\(\s*\w+\.items\(\)\s*\)": (
        "nested JSON values (lists, objects) are unhashable: flatten to leaf paths as the Lab 4 tool does",
        "    p, g = set(pred.items()), set(gold.items())"),
    # 8: attention-only adapters
    r"(?i)(does not|doesn't|do not|don't) need the MLP": (
        "attention-only LoRA underperforms all-layer LoRA even at equal parameter count; it is a speed trade",
        "a light style change with little data does not need the MLP layers."),
}
# A Python-style dict literal used where JSON is meant: {'key': ...
SINGLE_QUOTED_JSON = re.compile(r"\{\s*'[^'\n]+'\s*:")


def load_quiz_file(name: str) -> dict:
    return json.loads((QUIZ_DIR / f"{name}.json").read_text(encoding="utf-8"))


def all_questions():
    for name in QUIZ_SIZES:
        for q in load_quiz_file(name)["questions"]:
            yield name, q


def snippets():
    for lesson in load_lessons():
        for i, code in enumerate(lesson.code_blocks):
            yield pytest.param(lesson.id, i, code, id=f"{lesson.id}-snippet{i}")


def needs_network(code: str) -> bool:
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    return first.startswith("# needs:")


# ---------------------------------------------------------------- lessons

def test_four_lessons_in_order_with_front_matter():
    lessons = load_lessons()
    assert [l.id for l in lessons] == LESSON_IDS
    assert [l.number for l in lessons] == [1, 2, 3, 4]
    for l in lessons:
        assert l.title and l.subtitle, l.id
        assert l.question.endswith("?"), f"{l.id}: the guiding question should be a question"


def test_get_lesson_and_unknown_id_message():
    assert get_lesson("lesson3").number == 3
    with pytest.raises(KeyError, match="lesson9.*lesson1, lesson2, lesson3, lesson4"):
        get_lesson("lesson9")


def test_parser_rejects_broken_front_matter_with_a_clear_message():
    with pytest.raises(ValueError, match="lacks subtitle, question"):
        parse_lesson("---\nid: x\nnumber: 1\ntitle: T\n---\nbody\n", "bad.md")
    with pytest.raises(ValueError, match="'number' must be an integer"):
        parse_lesson("---\nid: x\nnumber: one\ntitle: T\nsubtitle: S\nquestion: Q?\n---\n", "bad.md")
    with pytest.raises(ValueError, match="never closed"):
        parse_lesson("---\nid: x\nnumber: 1\ntitle: T\nsubtitle: S\nquestion: Q?\n---\n```python\nx = 1\n", "bad.md")


def test_parser_ignores_headings_inside_code():
    lesson = parse_lesson(
        "---\nid: x\nnumber: 1\ntitle: T\nsubtitle: S\nquestion: Q?\n---\n"
        "## Real\n```python\n## not a heading\nprint(1)\n```\n```text\n## also not\n```\n## Key takeaway\n",
        "x.md",
    )
    assert lesson.sections == ("Real", "Key takeaway")
    assert lesson.code_blocks == ("## not a heading\nprint(1)\n",)


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_lesson_has_every_kind_of_section(lesson_id):
    l = get_lesson(lesson_id)
    assert l.sections[0].lower().startswith("opening case"), l.sections
    assert l.sections[-1] == "Key takeaway"
    assert len(l.sections) >= 6, "opening, concepts, a framework or checklist, code, takeaway"
    # A Markdown table: a header row followed by a |---| separator row.
    assert re.search(r"^\|.*\|\n\|[\s:|-]+\|$", l.body, re.M), "needs a comparison table"
    assert l.code_blocks, "needs at least one python snippet"
    words = len(re.findall(r"\w+", l.body))
    prose = len(re.findall(r"\w+", re.sub(r"```.*?```", "", l.body, flags=re.S)))
    # Reading length is the prose; the snippets are run, skimmed and tested.
    # 2,850 prose words (about 12 minutes): issue 12 added chat templates, what
    # is trained, QLoRA and DPO settings; issue 23 added beyond-DPO methods,
    # sequence handling, reasoning and tool templates, trustworthy evaluation,
    # safety and privacy, and new knowledge. Longer than that is two lessons.
    assert 1200 <= prose <= 2850, f"{lesson_id} has {prose} words of prose"
    assert words <= 3700, f"{lesson_id} has {words} words with its code"


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_lesson_has_no_corrected_claims(lesson_id):
    body = get_lesson(lesson_id).body
    for pattern, why in FORBIDDEN.items():
        m = re.search(pattern, body)
        assert not m, f"{lesson_id}: {m.group(0)!r}: {why}"
    m = SINGLE_QUOTED_JSON.search(body)
    assert not m, f"{lesson_id}: {m.group(0)!r} is not JSON; training targets need double quotes"


def test_lessons_teach_the_corrected_facts():
    text = "\n".join(l.body for l in load_lessons())
    for needle in [
        "h = W0·x + (alpha / r) · B·A·x",   # LoRA formula (lesson 1)
        "starts at **exactly zero**",       # B's initialisation
        "4,096 inputs to 1,024 outputs",    # non-square Mistral k/v shapes
        "`lora_A.weight` with shape (r, in_features)",
        "use_rslora=True",
        "merge_adapter()` / `unmerge_adapter()",
        '"all-linear"',
        "**reduces** this risk but does **not prevent** it",
        "π_ref is a frozen reference model",
        "best_model_checkpoint",
        "LIMA",
        "**30 March**",
        "363 billion tokens",
        "under 4%",
        "over 80% of the time",
        "86.5%",
        "rules of thumb",
        # issue 12
        "structured outputs",                # constrained decoding for syntax
        '"ref" adapter',                     # DPO reference when continuing an SFT adapter
        "not like for like",                 # FinGPT vs BloombergGPT
        "569 billion",
        "*candidates*",                      # LSH
        "`--lora`",                          # llama.cpp loads adapters
        "`ADAPTER`",                         # so does Ollama
        "flatters the *validation* curve",   # leakage
        "Alpaca 65B",                        # LIMA's comparison
        "continuous batching",
        "NF4", "Double quantisation", "Paged optimizers",
        "generation prompt", "low training loss, broken outputs",
        "assistant_only_loss=True", "{% generation %}",
        "rewards/margins", "rewards/accuracies",
    ]:
        assert needle in text, f"lessons no longer teach: {needle}"


def _advisor_and_tool_texts() -> str:
    from labs.advisors import ADVISORS

    prompts = [a.system_prompt for a in ADVISORS.values()]
    tools = [(ROOT / "labs" / "tools" / name).read_text(encoding="utf-8") for name in ("strategy.py", "curves.py")]
    return "\n".join(prompts + tools + _lab3_reasons())


def _lab3_reasons() -> list[str]:
    """The LoRA tool's reasons as the learner reads them (its source splits them over string pieces)."""
    from labs.tools.lora_config import recommend_lora_config

    cases = [("style", 300, "sft"), ("format", 5000, "sft"), ("preference", 2000, "dpo")]
    return [" ".join(recommend_lora_config("SmolLM2-135M", n, kind, 24, method=method)["reasons"])
            for kind, n, method in cases]


def test_review_checks_can_fail_on_the_old_wording():
    for pattern, (why, old) in REVIEW_FORBIDDEN.items():
        assert re.search(pattern, old), f"{pattern} no longer catches: {old!r} ({why})"


def test_no_reviewed_error_in_lessons_quizzes_advisors_or_tools():
    texts = {l.id: l.body for l in load_lessons()}
    for name, q in all_questions():
        texts[q["id"]] = " ".join([q["prompt"]] + [o["text"] + " " + o["explain"] for o in q["options"]
                                                   if o["correct"]] + [o["explain"] for o in q["options"]])
    texts["advisors+strategy"] = _advisor_and_tool_texts()
    for where, text in texts.items():
        for pattern, (why, _) in REVIEW_FORBIDDEN.items():
            m = re.search(pattern, text)
            assert not m, f"{where}: {m.group(0)!r}: {why}"


def test_advisors_and_strategy_teach_the_reviewed_facts():
    text = _advisor_and_tool_texts()
    for needle in ["structured outputs", '"ref" adapter', "not a like-for-like", "569B",
                   "candidate pairs", "--lora", "ADAPTER", "two extra low-rank matmuls",
                   "continuous batching", "NF4", "rewards/margins", "assistant_only_loss",
                   "generation prompt", "validation loss that is too good", "Alpaca-65B"]:
        assert needle in text, f"advisor prompts / strategy tool no longer teach: {needle}"


# What issue 23 asked each place to teach instead of the wrong wording that
# REVIEW_FORBIDDEN now rejects there: {where: [needles]}.
ISSUE23_TEACHES = {
    "lesson1": ["Gekhman", "Don't Stop Pretraining", "**instruct**", "**base**", "GRPO", "KTO", "ORPO",
                "SimPO", "verifiable rewards", "on-policy", "Smaug", "unfinished JSON"],
    "lesson2": ["get_training_chat_template", "SmolLM2's included", "Qwen2.5 and Qwen3", "Phi-3",
                "GPT-OSS", "`max_length`", "keeps the *start*", "padding-free", "pad token *is* the EOS token",
                "reasoning_content", "tool_calls"],
    "lesson3": ["LoRA Without Regret", "roughly independent of rank", "alpha/√r", "open",
                "same number of trainable parameters", "speed", "convert_lora_to_gguf.py", "logps/chosen",
                'loss_type=["sigmoid", "sft"]'],
    "lesson4": ["finish_reason", "Engines also differ", "flatten", "paired bootstrap", "36 rows", "seeds",
                "Qi et al.", "safety regression test", "Carlini", "licence", "Apache 2.0", "teacher's terms"],
    "strategy": ["token limit", "Gekhman", "KTO", "GRPO", "licence", "small hosted model", "batch discount"],
    "dataset": ["get_training_chat_template", "SmolLM2", "max_length", "reasoning_content", "tool_calls"],
    "lora": ["LoRA Without Regret", "roughly independent of rank", "re-check the learning rate",
             "attention-only LoRA underperforms", "convert_lora_to_gguf.py", "logps/chosen"],
    "eval": ["paired", "three seeds", "Safety regression", "finish reason"],
}


def test_issue23_corrections_are_taught_where_the_errors_were():
    from labs.advisors import ADVISORS

    texts = {l.id: l.body for l in load_lessons()}
    texts.update({a.id: a.system_prompt for a in ADVISORS.values()})
    for where, needles in ISSUE23_TEACHES.items():
        for needle in needles:
            assert needle in texts[where], f"{where} no longer teaches: {needle}"


def _quiz_question(qid: str) -> dict:
    return next(q for _, q in all_questions() if q["id"] == qid)


def test_issue23_quiz_items_teach_the_corrections():
    key = {q["id"]: next(o for o in q["options"] if o["correct"]) for _, q in all_questions()}
    # l3q2's key is defensible: the scale factor halves, the learning rate is an open question.
    assert "halves" in key["l3q2"]["text"] and "sweep" in key["l3q2"]["text"]
    assert "LoRA Without Regret" in key["l3q2"]["explain"] and "rsLoRA" in key["l3q2"]["explain"]
    # mt15: constrained decoding, with the cut-off reply and schema support spelled out.
    assert "cut at the limit" in key["mt15"]["explain"] and "schema features" in key["mt15"]["explain"]
    # The items the issue asked for, each present somewhere in the banks.
    prompts = " ".join(q["prompt"] for _, q in all_questions())
    keyed = " ".join(o["text"] + " " + o["explain"] for o in key.values())
    assert "Which tokens does the loss cover" in prompts            # which tokens carry loss
    assert "generation prompt" in key["mt05"]["text"]                # reading a chat template
    assert "NF4" in _quiz_question("l3q1")["prompt"]                 # QLoRA / NF4 memory
    assert "logps/chosen" in _quiz_question("mt03")["prompt"]        # reading a DPO log
    assert "paired bootstrap" in _quiz_question("mt13")["prompt"]    # intervals (a transfer item)
    assert "Gekhman" in keyed and "Truncation cut the end" in keyed


def test_lesson4_field_f1_flattens_nested_json_like_the_lab4_tool():
    """Issue 23: the snippet crashed on nested JSON (set(pred.items()) on a list).
    Its flatten must give the Lab 4 tool's paths, and its demo must score a SOAP row."""
    from core.scoring import flatten as lab4_flatten  # the scorer Lab 4 uses

    code = next(c for c in get_lesson("lesson4").code_blocks if "def field_f1" in c)
    assert '"subjective": {' in code and '"plan": [' in code, "the demo should use a nested SOAP row"
    namespace: dict = {}
    exec(compile(code.split("def evaluate(")[0], "lesson4-field-f1", "exec"), namespace)
    # The first row of the built-in clinical_soap test split, as the app trains on it.
    note = {"subjective": {"complaint": "sore throat", "duration_days": 4, "symptoms": ["fever"],
                           "history": ["atrial fibrillation"]},
            "objective": {"temp_c": 39.0, "heart_rate": 87, "bp": "138/78", "spo2": 99,
                          "exam": ["palatal petechiae"]},
            "assessment": "streptococcal pharyngitis",
            "plan": ["ibuprofen 600 mg by mouth every 8 hours as needed for 7 days", "rest and fluids",
                     "follow-up on 2025-08-15"]}
    assert namespace["flatten"](note) == lab4_flatten(note)
    assert namespace["field_f1"](note, note) == 1.0


def test_lesson3_memory_budget_matches_the_lab3_tool():
    """The worked Mistral-7B budget in lesson 3 is what the Lab 3 tool computes."""
    from labs.tools.lora_config import MODULES, count_lora_params, estimate_memory, resolve_arch

    _, arch = resolve_arch("Mistral-7B")
    lora = count_lora_params(arch, 16, "all-linear")["trainable_params"]
    kw = dict(batch=1, seq=1024, targets=MODULES, r=16, lora_dropout=0.05)
    off = estimate_memory(arch, lora, quantization="none", activation_checkpointing=False, **kw)
    on = estimate_memory(arch, lora, quantization="none", activation_checkpointing=True, **kw)
    nf4 = estimate_memory(arch, lora, quantization="4bit", activation_checkpointing=True, **kw)
    body = get_lesson("lesson3").body
    for figure in [f"{off['weights']} GiB bf16", f"{nf4['weights']:.1f} GiB NF4",
                   f"{off['lora_and_optimizer']} GiB for 42M", f"{off['activations']:.1f} GiB |",
                   f"| {on['activations']:.1f} GiB |", f"about {round(off['total'])} GiB",
                   f"about {round(on['total'])} GiB", f"under {math.ceil(nf4['total'])} GiB"]:
        assert figure in body, f"lesson 3's memory table no longer matches the tool: {figure}"


def test_lesson2_teacher_code_uses_the_app_model_and_strips_fences():
    from labs.chat import DEFAULT_MODEL

    code = next(c for c in get_lesson("lesson2").code_blocks if "anthropic" in c)
    assert f'"{DEFAULT_MODEL}"' in code and "strip_fences(text)" in code


# ---------------------------------------------------------------- quizzes

@pytest.mark.parametrize("name,size", QUIZ_SIZES.items())
def test_quiz_shape(name, size):
    quiz = load_quiz_file(name)
    assert quiz["id"] == name and quiz["title"].strip()
    assert len(quiz["questions"]) == size
    for q in quiz["questions"]:
        assert q["prompt"].strip(), q["id"]
        assert len(q["options"]) == 4, q["id"]
        assert sum(o["correct"] is True for o in q["options"]) == 1, q["id"]
        assert all(isinstance(o["correct"], bool) for o in q["options"]), q["id"]
        texts = [o["text"].strip() for o in q["options"]]
        assert all(texts) and len(set(texts)) == 4, f"{q['id']}: option texts must be distinct (answers are keyed by text)"
        for o in q["options"]:
            assert len(o["explain"].strip()) >= 20, f"{q['id']}: every option needs a real explanation"
        if name != "module_test":
            assert q["lesson"] == name, q["id"]


def test_question_ids_are_unique_and_follow_the_scheme():
    ids = [q["id"] for _, q in all_questions()]
    assert len(ids) == len(set(ids)), "duplicate question ids"
    for n in range(1, 5):
        assert [q["id"] for q in load_quiz_file(f"lesson{n}")["questions"]] == [f"l{n}q{i}" for i in range(1, 5)]
    assert [q["id"] for q in load_quiz_file("module_test")["questions"]] == [f"mt{i:02d}" for i in range(1, 16)]


def test_module_test_covers_every_lesson():
    lessons = [q["lesson"] for q in load_quiz_file("module_test")["questions"]]
    assert set(lessons) == set(LESSON_IDS), "every question must name a real lesson to revisit"
    for lid in LESSON_IDS:
        assert lessons.count(lid) >= 3, f"{lid} has only {lessons.count(lid)} module-test questions"


def test_correct_answer_is_not_always_in_the_same_slot():
    positions = {[o["correct"] for o in q["options"]].index(True) for _, q in all_questions()}
    assert len(positions) >= 3


# A learner who knows nothing can still score well if the right answer is the
# one that is visibly longest and most carefully qualified: test writers tend to
# hedge and detail the answer they know is true and leave distractors short.
# Before the rewrite that gave the answer away in 29 of 31 questions; now it
# happens in about a fifth, at or below the 1-in-4 rate of a random position.
# 40% leaves room for new or edited questions while still failing if the banks
# drift back towards "pick the longest option".
MAX_LONGEST_CORRECT_SHARE = 0.40


def test_correct_option_is_not_usually_the_longest():
    questions = list(all_questions())
    tells = []
    for _, q in questions:
        lengths = [len(o["text"].strip()) for o in q["options"]]
        right = len(next(o for o in q["options"] if o["correct"])["text"].strip())
        if right == max(lengths) and lengths.count(right) == 1:
            tells.append(q["id"])
    share = len(tells) / len(questions)
    assert share <= MAX_LONGEST_CORRECT_SHARE, (
        f"the correct option is the longest in {len(tells)} of {len(questions)} questions "
        f"({share:.0%}): {', '.join(tells)}; lengthen the distractors or tighten the answer")


def test_quizzes_never_mark_a_corrected_claim_as_right():
    for name, q in all_questions():
        right = next(o for o in q["options"] if o["correct"])
        shown_as_true = " ".join([right["text"], right["explain"]] + [o["explain"] for o in q["options"]])
        for pattern, why in FORBIDDEN.items():
            m = re.search(pattern, shown_as_true)
            assert not m, f"{q['id']}: {m.group(0)!r}: {why}"
        for o in q["options"]:
            assert not SINGLE_QUOTED_JSON.search(o["text"] + o["explain"]), q["id"]


# ------------------------------------------- module test vs lesson quizzes (issue 23)
#
# The module test must ask new things: no question that repeats a lesson-quiz
# question, and no lesson-quiz text that hands over a module-test answer. Both
# checks are heuristics, so each is proven on the bank before issue 23
# (BANK_BEFORE_ISSUE23), where mt02 ≈ l1q4, mt03 ≈ l3q3, mt13 ≈ l4q2, l3q3's key
# named mt11's answer and l1q3's explanation gave mt04's.

BANK_BEFORE_ISSUE23 = "e421ac0"
_STOPWORDS = frozenset("""a an the of to in on and or is are was were be been it its this that for with as by
    at from into than then so do does did you your their they what which when why how who not no can could would
    should will may might has have had only each every all any more most less some such one two there here after
    before about over under out up down same other own just also very if but because while we our us them i""".split())
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.<>()'-]*[a-z0-9>)]|[a-z0-9]")
# Same-question threshold on the TF-IDF cosine of prompt + option texts. Before
# issue 23 the repeats scored 0.23-0.25 (mt02/l1q4, mt13/l4q2, mt04/l1q3,
# mt12/l3q2); after it no pair exceeds 0.17.
SAME_QUESTION = 0.2


def _tokens(text: str) -> list[str]:
    return [re.sub(r"'s$", "", w) for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS]


def _is_identifier(word: str) -> bool:
    """A code name or a name with digits (best_model_checkpoint, text-davinci-003): one is enough to give an answer away."""
    return bool(re.search(r"[_.<(]", word.strip(".()"))) or bool(re.search(r"\d", word) and re.search(r"[a-z]", word))


def _overlap(a: str, b: str) -> float:
    x, y = set(_tokens(a)), set(_tokens(b))
    return len(x & y) / max(1, min(len(x), len(y)))


def repeated_questions(module: list[dict], lessons: list[dict]) -> set[tuple[str, str]]:
    """(module id, lesson id) pairs that ask the same question: close in wording
    over prompt and options (TF-IDF cosine), or offering an option the other also offers."""
    questions = module + lessons
    bags = {q["id"]: _tokens(" ".join([q["prompt"]] + [o["text"] for o in q["options"]])) for q in questions}
    df: dict[str, int] = {}
    for bag in bags.values():
        for w in set(bag):
            df[w] = df.get(w, 0) + 1
    vectors = {}
    for qid, bag in bags.items():
        vec: dict[str, float] = {}
        for w in bag:
            vec[w] = vec.get(w, 0.0) + math.log(len(questions) / df[w])
        vectors[qid] = vec

    def cosine(a: dict, b: dict) -> float:
        dot = sum(v * b.get(w, 0.0) for w, v in a.items())
        return dot / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))

    found = set()
    for m in module:
        for l in lessons:
            shared_option = any(_overlap(x["text"], y["text"]) >= 0.5 for x in m["options"] for y in l["options"])
            if shared_option or cosine(vectors[m["id"]], vectors[l["id"]]) >= SAME_QUESTION:
                found.add((m["id"], l["id"]))
    return found


def give_aways(module: list[dict], lessons: list[dict]) -> set[tuple[str, str]]:
    """(module id, lesson id) where a lesson-quiz prompt, option or explanation holds
    what singles out a module-test answer: the words of its keyed option that are in
    neither its prompt nor its other options. One such code name, or 60% of such words."""
    found = set()
    for m in module:
        key = next(o for o in m["options"] if o["correct"])
        elsewhere = set(_tokens(m["prompt"])).union(*(_tokens(o["text"]) for o in m["options"] if not o["correct"]))
        telling = {w for w in _tokens(key["text"]) if w not in elsewhere}
        names = {w for w in telling if _is_identifier(w)}
        words = telling - names
        for l in lessons:
            for text in [l["prompt"]] + [o["text"] for o in l["options"]] + [o["explain"] for o in l["options"]]:
                seen = set(_tokens(text))
                if names & seen or (len(words) >= 2 and len(words & seen) >= 0.6 * len(words)):
                    found.add((m["id"], l["id"]))
    return found


def _banks(read=load_quiz_file) -> tuple[list[dict], list[dict]]:
    return (read("module_test")["questions"],
            [q for lid in LESSON_IDS for q in read(lid)["questions"]])


def test_module_test_repeats_no_lesson_quiz_question():
    assert repeated_questions(*_banks()) == set(), "a module-test question repeats a lesson-quiz one"


def test_no_lesson_quiz_item_gives_away_a_module_test_answer():
    assert give_aways(*_banks()) == set(), "a lesson-quiz text states a module-test answer"


def test_the_repeat_checks_catch_the_bank_before_issue23():
    def read(name):
        proc = subprocess.run(["git", "show", f"{BANK_BEFORE_ISSUE23}:quizzes/data/{name}.json"], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"the bank before issue 23 ({BANK_BEFORE_ISSUE23}) is not in this checkout's history")
        return json.loads(proc.stdout)

    before = _banks(read)
    assert {("mt02", "l1q4"), ("mt03", "l3q3"), ("mt13", "l4q2")} <= repeated_questions(*before)
    assert {("mt11", "l3q3"), ("mt04", "l1q3")} <= give_aways(*before)


# ---------------------------------------------------------------- snippets

@pytest.mark.parametrize("lesson_id,index,code", list(snippets()))
def test_snippet_compiles(lesson_id, index, code):
    compile(code, f"{lesson_id}-snippet{index}", "exec")


def test_every_lesson_has_an_offline_snippet_and_lesson1_demonstrates_lora():
    for l in load_lessons():
        assert any(not needs_network(c) for c in l.code_blocks), f"{l.id} has nothing a learner can run offline"
    lora = get_lesson("lesson1").code_blocks[0]
    assert "torch.zeros(d, r)" in lora and "(alpha / r)" in lora


OFFLINE = [(p.values[0], p.values[1]) for p in snippets() if not needs_network(p.values[2])]


@pytest.fixture(scope="module")
def snippet_runs(tmp_path_factory):
    """Run every offline snippet once (they are the slow part of this file)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", PYTHONWARNINGS="ignore")
    runs = {}
    for lesson_id, index in OFFLINE:
        workdir = tmp_path_factory.mktemp(f"{lesson_id}-{index}")
        script = workdir / "snippet.py"
        script.write_text(get_lesson(lesson_id).code_blocks[index], encoding="utf-8")
        # A fresh interpreter per snippet, in an empty directory: a snippet must
        # import everything it uses and must not lean on the project's files.
        runs[lesson_id, index] = subprocess.run(
            [sys.executable, str(script)], cwd=workdir, env=env,
            capture_output=True, text=True, timeout=120)
    return runs


@pytest.mark.parametrize("lesson_id,index", OFFLINE, ids=[f"{l}-snippet{i}" for l, i in OFFLINE])
def test_offline_snippet_runs(snippet_runs, lesson_id, index):
    proc = snippet_runs[lesson_id, index]
    assert proc.returncode == 0, f"{lesson_id} snippet {index} failed:\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), "a teaching snippet should print what it shows"


def test_offline_snippets_print_what_the_lessons_claim(snippet_runs):
    """The lessons' comments state results; check the key ones really happen."""
    def out(lesson_id, index):
        return snippet_runs[lesson_id, index].stdout

    assert "output shape: (3, 1024)" in out("lesson1", 0)
    assert "same as base at step 0: True" in out("lesson1", 0)
    assert "0.693" in out("lesson1", 1)
    assert "advantages: [0.78, -0.26, -1.31, 0.78]" in out("lesson1", 2)   # GRPO's group-relative scores
    assert "answer is not valid JSON" in out("lesson2", 0)
    assert "<|im_start|>assistant" in out("lesson2", 1)          # the generation prompt
    assert """completion: '{"drug": "metformin", "dose": "500 mg"}<|im_end|>""" in out("lesson2", 1)
    # issue 23: SmolLM2-style ChatML has no marked TRL template; Qwen2.5 gets one
    assert "assistant_only_loss: TRL has no marked version of this template" in out("lesson2", 1)
    assert "Qwen2.5 gets a marked copy: True" in out("lesson2", 1)
    seq = out("lesson2", 2)
    assert "kept:   note: cough fever answer: { flu rest\n" in seq      # the closing brace and EOS are gone
    assert "transformers labels at EOS: -100" in seq and "TRL labels at EOS:          1" in seq
    templates = out("lesson2", 3)
    assert "turn 1 reasoning rendered: False" in templates and "turn 2 reasoning rendered: True" in templates
    assert '<tool_call>\n{"name": "lookup_drug", "arguments": {"name": "ibuprofen"}}' in templates
    assert "kept: [0, 2, 3]" in out("lesson2", 5)
    peft_demo = out("lesson3", 1)
    for line in ["lora_A  (8, 64)", "lora_B  (16, 8)", "equals base at step 0: True",
                 "merged matches adapter: True", "adapter off equals base: True",
                 "LlamaForCausalLM | same outputs: True"]:
        assert line in peft_demo, line
    assert out("lesson3", 2).strip() == "checkpoint-400 0.91"
    assert "'field_f1': 0.583" in out("lesson4", 0)              # 6 of 8 nested SOAP fields, issue 23
    assert out("lesson4", 1).split() == ["A", "inconsistent"]
    assert "95% interval, 36 rows:  (-0.028, 0.306)" in out("lesson4", 2)
    assert "95% interval, 360 rows: (0.083, 0.194)" in out("lesson4", 2)


def test_the_claim_checks_catch_the_source_errors():
    """Guard against checks that can never fail: run them on the course source,
    which contains the uncorrected claims."""
    seeds = sorted((ROOT.parent / "shared" / "seeds").glob("*.txt"))
    if not seeds:
        pytest.skip("the course source is absent, so the checks cannot be exercised")
    source = "\n".join(s.read_text(encoding="utf-8") for s in seeds)
    missed = [pattern for pattern in FORBIDDEN if not re.search(pattern, source)]
    assert not missed, f"these checks no longer match the claims they exist for: {missed}"
    assert SINGLE_QUOTED_JSON.search(source)


# ---------------------------------------------------------------- originality

def test_no_passage_copied_from_the_course_source():
    if not CHECK_COPY.exists():
        pytest.skip(f"{CHECK_COPY} is absent, so copying cannot be checked here")
    proc = subprocess.run([sys.executable, str(CHECK_COPY), str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "\n0 copied passage" in "\n" + proc.stdout, proc.stdout
