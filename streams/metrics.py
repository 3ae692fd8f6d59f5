"""In-process counters for the worker, exposed in Prometheus text format by the web views."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Upper bounds (seconds) of the processing-latency histogram buckets.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, float("inf"))


@dataclass
class Metrics:
    events_in: Counter[str] = field(default_factory=Counter)
    events_out: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    latency_buckets: dict[str, list[int]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)  # seconds: a Counter counts ints

    def received(self, topic: str) -> None:
        self.events_in[topic] += 1

    def sent(self, topic: str) -> None:
        self.events_out[topic] += 1

    def dead_letter(self, topic: str, error_type: str) -> None:
        self.dead_letters[(topic, error_type)] += 1

    def processed(self, agent: str, seconds: float, duplicate: bool) -> None:
        if duplicate:
            self.duplicates[agent] += 1
        buckets = self.latency_buckets.setdefault(agent, [0] * len(BUCKETS))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
                break
        self.latency_sum[agent] = self.latency_sum.get(agent, 0.0) + seconds

    def prometheus(self, gauges: dict[str, dict[str, float]] | None = None) -> str:
        lines = ["# TYPE inventory_events_in_total counter"]
        lines += [f'inventory_events_in_total{{topic="{t}"}} {n}' for t, n in sorted(self.events_in.items())]
        lines.append("# TYPE inventory_events_out_total counter")
        lines += [f'inventory_events_out_total{{topic="{t}"}} {n}' for t, n in sorted(self.events_out.items())]
        lines.append("# TYPE inventory_dead_letters_total counter")
        lines += [
            f'inventory_dead_letters_total{{topic="{t}",error_type="{e}"}} {n}'
            for (t, e), n in sorted(self.dead_letters.items())
        ]
        lines.append("# TYPE inventory_duplicates_total counter")
        lines += [f'inventory_duplicates_total{{agent="{a}"}} {n}' for a, n in sorted(self.duplicates.items())]
        lines.append("# TYPE inventory_processing_seconds histogram")
        for agent, counts in sorted(self.latency_buckets.items()):
            running = 0
            for bound, count in zip(BUCKETS, counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'inventory_processing_seconds_bucket{{agent="{agent}",le="{le}"}} {running}')
            lines.append(f'inventory_processing_seconds_sum{{agent="{agent}"}} {self.latency_sum[agent]}')
            lines.append(f'inventory_processing_seconds_count{{agent="{agent}"}} {running}')
        for name, series in sorted((gauges or {}).items()):
            lines.append(f"# TYPE {name} gauge")
            lines += [f"{name}{{{label}}} {value}" for label, value in sorted(series.items())]
        return "\n".join(lines) + "\n"
