"""Answers from a trained run: generation, chat and the base-vs-tuned evaluation.

- `inference`: batched greedy generation and the streaming chat with the tuned model.
- `decoding`: the evaluation's greedy batches (finished rows leave, a preallocated KV cache,
  the two sides at once on a CPU).
- `model_cache`: the bounded, idle-released cache of loaded tuned models (process-wide).
- `evaluate`: evaluation with paired bootstrap intervals, written to the run's metrics.json.
- `base_answers`: the base model's answers kept for the next evaluation of the same questions.
- `design`: the evaluation design (Lab 4's metrics and cases, the built-in default cases).
- `view`: the side-by-side and adversarial tables as escaped HTML.
- `compare`: two to four of a learner's runs side by side (curves, settings, metrics on shared
  test rows with paired intervals).
- `report`: step 4's text: progress and summary lines, the design a click runs, the count slider.

May import: `core` (its `scoring` is the one scorer, shared with Lab 4), `training.data`, `training.run`.
"""
