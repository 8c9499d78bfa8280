"""Where the course meets a run.

- `handoffs`: a lab's result applied to the Training tab (the appliers that `labs.handoff.KINDS`
  names, and Lab 2's fix), and the run read back by Lab 3 (diagnosis, the brief for the advisor).
- `certificate`: the completion certificate (module test passed and a run evaluated).

May import: `core`, `quizzes.grading`, `labs`, `training.data`, `training.run`,
`training.evaluation`.
"""
