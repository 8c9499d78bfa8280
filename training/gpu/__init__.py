"""The ZeroGPU seam: every piece of GPU work as one `@spaces.GPU` call.

- `calls`: a training slice, an evaluation and the tuned-model chat, each a generator wrapped
  in `spaces.GPU` with a duration sized from its own work; only plain values are yielded,
  since on ZeroGPU they cross a fork by pickling.

May import: `core`, `training.data`, `training.run`, `training.evaluation`.
"""
