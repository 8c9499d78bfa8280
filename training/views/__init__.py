"""The Training tab's Gradio builders and their thin handlers: they build, wire and translate.

- `tab`: the tab's steps (data, check, train, after) and their handlers.
- `handoff_ui`: the labs' apply buttons wired to the tab; `publish_ui`: publish and export
  (`gguf_ui`: its llama.cpp / Ollama export);
  `jobs_ui`: the Hugging Face Jobs panel; `compare_ui`: "Compare runs"; `tokens_ui`: any row's
  trained tokens in step 2.

Logic that does not need Gradio lives in the other rooms. May import everything in `training`.
"""
