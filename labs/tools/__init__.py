"""Deterministic calculators the lab advisors call (and the workbench panels run).

Plain Python only: no file or network access, and no torch/transformers at
import time, so the app starts without them. See ``registry`` for the
Anthropic tool definitions and ``run_tool``.
"""
