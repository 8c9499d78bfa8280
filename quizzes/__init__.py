"""Quiz banks (data/*.json), grading (grading.py) and the quiz views (ui.py)."""
