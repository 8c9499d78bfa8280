"""The rows a run trains on: everything about a dataset before training starts.

- `loading`: built-in sets, uploads and Hub datasets parsed (`core.chat_rows`) and split into
  train/validation/test, with each row's file line carried through the split; fingerprints.
- `checks`: step 2's data check (template, lengths, leakage across splits) and the rows in the
  shapes the trainers read (`prompt_completion_row`, `preference_row`).
- `tokens`: any row's tokens as the trainer's batch holds them (trained, special, cut off), as
  escaped HTML for step 2.
- `fixes`: Lab 2's "Apply the critic's mechanical fixes" and what may be sent as it is.
- `sources`: where a run's data comes from (the tab's radio sends a key: built-in, upload, Hub),
  loading one into the tab's dataset state, and its status line.
- `datasets/`: the built-in sets (JSONL files and the script that wrote them).

May import: `core`, `labs.tools` (the dataset critic), and `hub.timeouts` (bounded downloads).
No torch at import time.
"""
