"""What each workbench form shows before the learner types anything.

A form must work as shown: pressing Run on it untouched gives a result, not an
error (issue 16: optional number fields showed 0, and gradio's range check
refused the 0 before the tool ran). So every field starts at a value the tool
accepts:

- a field the tool gives a default shows that default (read from the tool
  function's signature, or ``strategy.DEFAULT_ASSUMPTIONS`` for the cost
  figures), so the form and the tool never disagree;
- a required field shows a worked example from ``EXAMPLES`` below;
- an optional field whose default is "none / work it out" stays empty, and
  the workbench builds it so that empty really means empty (see labs/ui.py).

    >>> initial_values("critique_jsonl")["near_duplicate_threshold"]
    0.8
"""
from __future__ import annotations

import inspect

from labs.tools import registry, strategy

# A small dataset with the problems the critic is there to find: an exact
# duplicate (lines 1 and 3), an empty answer (line 4), JSON that does not
# parse in an answer that should be JSON (line 5).
_CRITIC_SAMPLE = "\n".join([
    '{"messages": [{"role": "user", "content": "Extract the drug and dose: Take 2 tablets of ibuprofen 200 mg."}, '
    '{"role": "assistant", "content": "{\\"drug\\": \\"ibuprofen\\", \\"dose_mg\\": 200, \\"count\\": 2}"}]}',
    '{"messages": [{"role": "user", "content": "Extract the drug and dose: One capsule of amoxicillin 500 mg."}, '
    '{"role": "assistant", "content": "{\\"drug\\": \\"amoxicillin\\", \\"dose_mg\\": 500, \\"count\\": 1}"}]}',
    '{"messages": [{"role": "user", "content": "Extract the drug and dose: Take 2 tablets of ibuprofen 200 mg."}, '
    '{"role": "assistant", "content": "{\\"drug\\": \\"ibuprofen\\", \\"dose_mg\\": 200, \\"count\\": 2}"}]}',
    '{"messages": [{"role": "user", "content": "Extract the drug and dose: Half a tablet of aspirin 300 mg."}, '
    '{"role": "assistant", "content": ""}]}',
    '{"messages": [{"role": "user", "content": "Extract the drug and dose: Metformin 850 mg twice daily."}, '
    '{"role": "assistant", "content": "{\\"drug\\": \\"metformin\\", \\"dose_mg\\": 850"}]}',
])

# A run that overfits after step 300: train loss keeps falling, eval turns up.
_CURVE_SAMPLE = ("step,train_loss,eval_loss\n100,2.10,2.15\n200,1.62,1.74\n300,1.21,1.52\n"
                 "400,0.86,1.58\n500,0.55,1.73\n600,0.31,1.95")

_TASK = "Turn a pharmacy label into JSON with the drug name, dose in mg and tablet count."

EXAMPLES: dict[str, dict] = {
    "assess_use_case": {"requests_per_day": 20_000, "examples_on_hand": 1_500,
                        "format_strictness": "strict", "knowledge_change": "static"},
    "critique_jsonl": {"text": _CRITIC_SAMPLE},
    "recommend_lora_config": {"model": "SmolLM2-135M", "dataset_size": 2_000, "task_kind": "format",
                              "gpu_memory_gb": 24},
    "count_lora_params": {"model": "SmolLM2-135M", "lora_r": 8, "lora_target_modules": "qv"},
    "diagnose_training_curve": {"log_text": _CURVE_SAMPLE},
    "score_predictions": {
        "predictions": '{"drug": "ibuprofen", "dose_mg": 200}\n{"drug": "amoxicilin", "dose_mg": 500}\nnot json',
        "references": '{"drug": "ibuprofen", "dose_mg": 200}\n{"drug": "amoxicillin", "dose_mg": 500}\n'
                      '{"drug": "aspirin", "dose_mg": 300}',
    },
    "judge_rubric": {"task_description": _TASK},
    "adversarial_cases": {"task_description": _TASK, "input_fields": ["label_text"]},
    "monitoring_plan": {"task_description": _TASK},
}


def tool_defaults(name: str) -> dict:
    """The tool's own defaults for its optional inputs (None where the tool works it out)."""
    spec = registry.TOOLS[name]
    params = inspect.signature(spec.fn).parameters
    defaults = {p: params[p].default for p in spec.input_schema.get("properties", {})
                if p in params and params[p].default is not inspect.Parameter.empty}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) and name == "assess_use_case":
        defaults.update(strategy.DEFAULT_ASSUMPTIONS)  # its cost figures arrive as **overrides
    return defaults


def initial_values(name: str) -> dict:
    """What a workbench form shows first: the tool's defaults, then the worked example."""
    return {**tool_defaults(name), **EXAMPLES.get(name, {})}
