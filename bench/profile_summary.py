"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the samples are.

Run: ``python bench/profile_summary.py PROFILE.txt [--top 30]``. Prints the functions with
the most samples on top of the stack (self) and anywhere on it (inclusive), in percent.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter


def frames(stack: str) -> list[str]:
    # "func (path/to/module.py:123)" -> "func (module.py)": lines differ, functions do not
    return [re.sub(r"\(([^():]*/)?([^/():]+):\d+\)", r"(\2)", f.strip()) for f in stack.split(";")]


def summarise(path: str) -> tuple[int, Counter[str], Counter[str]]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            fs = frames(stack)
            total += n
            self_time[fs[-1]] += n
            for name in set(fs):
                inclusive[name] += n
    return total, self_time, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    total, self_time, inclusive = summarise(args.profile)
    print(f"{total} samples")
    for title, counter in (("self", self_time), ("inclusive", inclusive)):
        print(f"\n-- {title}")
        for name, n in counter.most_common(args.top):
            print(f"{100 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
