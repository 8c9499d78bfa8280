"""The ZeroGPU seam: every piece of GPU work as one `@spaces.GPU` call.

- `calls`: a training slice, an evaluation and the tuned-model chat, each a generator wrapped
  in `spaces.GPU` with a duration sized from its own work; only plain values are yielded,
  since on ZeroGPU they cross a fork by pickling. `train_until_done` turns a refused or killed
  call into a paused, resumable run.
- `zerogpu`: the daily quota, what a run asks of it, and `spaces`' refusals and killed calls
  read into the learner's words (no torch, no gradio).

May import: `core`, `training.data`, `training.run`, `training.evaluation`; `devtools.zerogpu`
only when FTLAB_ZEROGPU_STANDIN=1 (tests: the real `spaces` against a fake scheduler).
"""
