"""Layer 2, knowledge: the problem profile, the optimizer registry, the rules and the recommender.

Pure Python: nothing here imports torch or optuna, so ``advisor recommend`` starts fast.
"""
