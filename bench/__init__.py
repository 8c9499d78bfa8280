"""Benchmarks: each compares the app against what a learner would otherwise use,
both sides in the same invocation, alternating, reporting medians.

    python -m bench            # everything; prints one table, writes docs/benchmarks.md
    BENCH_QUICK=1 python -m bench.<name>   # a tiny setting (what the smoke test runs)

Not tests: nothing here asserts a time. Each module has `run(quick: bool) -> list[Row]`.
"""
