"""`/metrics` in Prometheus text: counts from the database (so every process, and every
restart, agrees on them) and run latency as this process measured it."""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hitl.checkpoints.ledger import Ledger
from hitl.checkpoints.stores import RunQueue
from hitl.server.workers import RunStats

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _FromDatabase(Collector):
    def __init__(self, ledger: Ledger, queue: RunQueue) -> None:
        self._ledger, self._queue = ledger, queue

    def collect(self) -> Iterator[Metric]:
        stats = self._ledger.stats()
        pending = GaugeMetricFamily(
            "hitl_pending_approvals",
            "Tool calls waiting for a person, by status (pending, outcome_unknown).",
            labels=["status"],
        )
        for status in ("pending", "outcome_unknown"):
            pending.add_metric([status], stats["status"].get(status, 0))
        yield pending
        decisions = CounterMetricFamily(
            "hitl_decisions", "Decisions recorded, by type.", labels=["type"]
        )
        for kind in ("approve", "edit", "reject", "respond"):
            decisions.add_metric([kind], stats["decisions"].get(kind, 0))
        yield decisions
        tools = CounterMetricFamily(
            "hitl_tool_runs", "Approved tool calls by outcome.", labels=["outcome"]
        )
        for outcome in ("succeeded", "failed", "outcome_unknown", "running"):
            tools.add_metric([outcome], stats["tool_runs"].get(outcome, 0))
        yield tools
        runs = GaugeMetricFamily("hitl_runs", "Runs in the queue, by status.", labels=["status"])
        counts = self._queue.counts()
        for status in ("queued", "running", "done", "failed"):
            runs.add_metric([status], counts.get(status, 0))
        yield runs


class Metrics:
    """The service's metrics registry."""

    def __init__(self, ledger: Ledger, queue: RunQueue, stats: RunStats) -> None:
        self._registry = CollectorRegistry()
        self._registry.register(_FromDatabase(ledger, queue))
        self._latency = Histogram(
            "hitl_run_latency_seconds",
            "Seconds from accepting a run to its end, for the runs this process did.",
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self._stats = stats

    def render(self) -> str:
        for seconds in self._stats.drain():
            self._latency.observe(seconds)
        return generate_latest(self._registry).decode()
