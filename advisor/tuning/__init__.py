"""Layer 6, tuning: Optuna studies on the trainers, the finalist stage, results and reports."""
