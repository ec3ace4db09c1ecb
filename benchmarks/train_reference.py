"""Train hwprune's reference models over several seeds: test accuracy and seconds.

Run:  python benchmarks/train_reference.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from hwprune.prune import models
from hwprune.prune.data import digits
from hwprune.prune.trainer import train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for name, spec in models.MODELS.items():
        for seed in range(args.seeds):
            data = digits(seed)
            model = models.build(name, seed)
            start = time.perf_counter()
            train(model, data, spec.recipe, seed=seed)
            rows.append({"model": name, "seed": seed, "seconds": time.perf_counter() - start,
                         "test_accuracy": model.accuracy(data.x_test, data.y_test)})
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(df.groupby("model")[["seconds", "test_accuracy"]].agg(["median", "min", "max"]).round(4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
