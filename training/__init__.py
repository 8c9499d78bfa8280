"""The Training tab's code, in rooms by what they do.

    data/        the rows: loading and splitting, the data check, Lab 2's fixes, the built-in sets
    run/         one training run: its config, the engine (SFT/DPO slices), runs on disk, the tab's
                 rules, the base model, the CPU loss, the charts of a run
    evaluation/  answers from a trained run: batched generation and chat, the model cache,
                 base-vs-tuned evaluation, its design (Lab 4) and its HTML view
    gpu/         the ZeroGPU seam: each `@spaces.GPU` call and what crosses its fork
    hub/         leaving the app: publish, model card, recipe export, Hugging Face Jobs and its
                 job script, bounded Hub calls
    workflow/    where the labs and the course meet a run: hand-offs from the labs, the certificate
    views/       the Gradio builders and their thin handlers

Imports only go down this list: a room may import the rooms above it, `core/` and the lab
calculators in `labs/tools/` (shared with the labs). Two exceptions: `data.loading` bounds
Hub dataset downloads with `hub.timeouts`, and `gpu.calls` loads the ZeroGPU stand-in
(`devtools.zerogpu`) when FTLAB_ZEROGPU_STANDIN=1. Only `views/` imports gradio; `tests/test_structure.py`
checks both rules on the imports themselves.
"""
