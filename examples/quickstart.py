"""Quickstart: ask the rules, then tune by training (about 25 seconds on 2 CPU cores).

python examples/quickstart.py
"""

from __future__ import annotations

import advisor

# 1. What do the rules say for the classic MNIST MLP?
profile = advisor.Profile(params="118k", samples="55k", convexity="nonconvex", budget="10m")
rec = advisor.recommend(profile)
for c in rec.candidates[:3]:
    print(
        f"{c.optimizer:<9} score {c.score:+.2f}  lr {c.search_space['lr'].low:g}..{c.search_space['lr'].high:g}"
    )
    print(f"          {c.reasons[0].text}")

# 2. Measure: tune the top candidates on the embedded MNIST digits, report on the test set.
result = advisor.tune("mnist-5k", budget="20s", seeds=3, finalists=2, device="cpu")
best, base = result.recommendation, result.baseline
print(f"\nrecommended: {best.torch}  ({best.schedule} schedule)")
print(f"test accuracy {best.test_accuracy.mean:.2%} vs default Adam {base.test_accuracy.mean:.2%}")
