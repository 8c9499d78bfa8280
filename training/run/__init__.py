"""One training run, from its settings to its adapter on disk.

- `config`: `RunConfig`, the one table of a run's settings, their checks and the mapping to TRL.
- `rules`: the Training tab's rules without Gradio (one active run, which run may train or resume,
  step 2's data check with the critic and the plan).
- `status`: what the learner reads about a run (status and progress lines, curves, the runs list).
- `engine`: plans, starts and trains a run in slices (SFT and DPO through TRL) with resumable
  checkpoints; `fast_loss`: the CPU training step's answer-only loss.
- `runs`: a run's directory, `run.json`, its log and status.
- `base_model`: the base models offered, the embedded offline model, the Hub probe.
- `device`: which path GPU work takes (ZeroGPU, a dedicated GPU, the CPU) and the GPU as read.
- `charts`: the loss (with gradient norm), learning-rate, per-field and token-length charts (SVG for
  the tab, PNG for the card).

May import: `core`, `training.data`, `labs.tools` (the dataset critic in step 2). Torch,
transformers and TRL only inside functions (`device` reads `spaces`' own flag, never imports it).
"""
