"""Log2 histograms, like bcc's ``print_log2_hist``: bucket i holds values in [2^i, 2^(i+1)),
bucket 0 also holds 0. Pure.

    h = Log2Histogram(); h.add(63); h.add(70)
    print("\\n".join(h.lines("µs")))
"""

from __future__ import annotations

from dataclasses import dataclass, field

BAR_WIDTH = 40


def bucket(value: int) -> int:
    """The log2 bucket of a non-negative value: 0 and 1 -> 0, 2..3 -> 1, 4..7 -> 2, ..."""
    return max(0, int(value).bit_length() - 1)


def bucket_range(index: int) -> tuple[int, int]:
    """Lowest and highest value of bucket `index` (inclusive)."""
    return (0 if index == 0 else 1 << index), (1 << (index + 1)) - 1


@dataclass
class Log2Histogram:
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0

    def add(self, value: int, n: int = 1) -> None:
        b = bucket(value)
        self.counts[b] = self.counts.get(b, 0) + n
        self.total += n

    def lines(self, unit: str) -> list[str]:
        """bcc's layout, from the lowest to the highest non-empty bucket."""
        if not self.counts:
            return []
        low, high = min(self.counts), max(self.counts)
        peak = max(self.counts.values())
        out = [f"{unit:>20} : count     distribution"]
        for i in range(low, high + 1):
            lo, hi = bucket_range(i)
            count = self.counts.get(i, 0)
            bar = "*" * (count * BAR_WIDTH // peak) if peak else ""
            out.append(f"{lo:>10} -> {hi:<10}: {count:<9} |{bar:<{BAR_WIDTH}}|")
        return out
