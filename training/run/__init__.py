"""One training run, from its settings to its adapter on disk.

- `config`: `RunConfig`, the one table of a run's settings, their checks and the mapping to TRL.
- `rules`: the Training tab's rules without Gradio (one active run, which run may train or resume).
- `engine`: plans, starts and trains a run in slices (SFT and DPO through TRL) with resumable
  checkpoints; `fast_loss`: the CPU training step's answer-only loss.
- `runs`: a run's directory, `run.json`, its log and status.
- `base_model`: the base models offered, the embedded offline model, the Hub probe.
- `charts`: the loss, learning-rate and per-field charts (SVG for the tab, PNG for the card).

May import: `core`, `training.data`. Torch, transformers and TRL only inside functions
(`device` reads `spaces`' own flag, never imports it).
"""
