"""Working-day arithmetic: the time to count the working days of a one-year span.

.venv/bin/python bench/workdays_bench.py [--repeat 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from services.workdays import CHINA, official


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1000)
    args = parser.parse_args()
    calendar = official()
    start = dt.datetime(2026, 1, 1, 10, tzinfo=CHINA)
    end = dt.datetime(2027, 1, 1, 10, tzinfo=CHINA)
    timings = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        days = calendar.workdays_between(start, end)
        timings.append(time.perf_counter() - began)
    timings.sort()
    print(f"working days 2026-01-01 → 2027-01-01   {days}")
    print(
        f"workdays_between, one-year span        p50 {1000 * statistics.median(timings):.3f} ms"
        f", p99 {1000 * timings[int(0.99 * len(timings))]:.3f} ms   (target < 10 ms)"
    )


if __name__ == "__main__":
    main()
