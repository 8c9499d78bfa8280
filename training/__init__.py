"""Training tab: base model, datasets, checks, the SFT/DPO engine, runs on disk, evaluation, publishing."""
