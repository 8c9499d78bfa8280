"""Built-in training sets (JSONL written by generate.py) and their generator."""
