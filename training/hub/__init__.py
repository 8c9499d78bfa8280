"""Leaving the app: what goes to the Hugging Face Hub or to other hardware.

- `publish`: the adapter (and optionally a merged model) pushed in one commit.
- `model_card`: the card written for a run; `recipe`: the TRL config, data and scripts that
  reproduce a run elsewhere; `ftlab_job`: the self-contained uv script a Job runs.
- `gguf_export`: the merged model as GGUF files (f16, q8_0) with an Ollama Modelfile, for
  llama.cpp and Ollama; pushed next to the adapter on request.
- `jobs`: Hugging Face Jobs (hardware, estimate, launch, poll, cancel, the finished job as a run).
- `timeouts`: a bound on every Hub request and a deadline on whole pushes.

May import: `core`, `training.data`, `training.run`.
"""
