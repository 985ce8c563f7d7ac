"""Custom metrics store and its Prometheus exposition (COUNTER adds, GAUGE sets, TIMER ms → histogram)."""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

from .errors import BAD_METRIC, SeldonMicroserviceException

COUNTER, GAUGE, TIMER = "COUNTER", "GAUGE", "TIMER"
FEEDBACK_KEY = "seldon_api_model_feedback"
FEEDBACK_REWARD_KEY = "seldon_api_model_feedback_reward"

# Seldon's bucket bounds: 50 log-spaced from 1 ms to 30 s, then +Inf (TIMER values are ms).
# seldon-core's BINS start at 0, but it exposes BINS[1:]: a time under 1 ms counts in le=0.001.
BUCKETS: tuple[float, ...] = tuple(float(b) for b in np.logspace(-3, np.log10(30), 50))

PREDICT, FEEDBACK, INPUT_TRANSFORM, OUTPUT_TRANSFORM = "predict", "feedback", "inputtransform", "outputtransform"
ROUTER, AGGREGATE, HEALTH = "router", "aggregate", "health"


def validate_metrics(metrics: Any) -> bool:
    """True when `metrics` is a list of `{key: str, type: COUNTER|GAUGE|TIMER, value: number}`."""
    if not isinstance(metrics, (list, tuple)):
        return False
    for m in metrics:
        if not isinstance(m, dict) or not {"key", "type", "value"} <= m.keys():
            return False
        if m["type"] not in (COUNTER, GAUGE, TIMER) or not isinstance(m["key"], str):
            return False
        if isinstance(m["value"], bool) or not isinstance(m["value"], (int, float, np.number)):
            return False
        if "tags" in m and not isinstance(m["tags"], dict):
            return False
    return True


def checked_metrics(metrics: Any) -> list[dict]:
    if not validate_metrics(metrics):
        raise SeldonMicroserviceException(
            f"Bad metric created during request: {metrics}", reason=BAD_METRIC
        )
    return [
        {**m, "value": float(m["value"]) if isinstance(m["value"], np.number) else m["value"]}
        for m in metrics
    ]


@dataclass
class _Hist:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0


LabelKey = tuple[tuple[str, str], ...]


class SeldonMetrics:
    """Thread-safe store of custom metrics, exposed by `collect()` in Prometheus form."""

    def __init__(self, default_labels: dict[str, str], snapshot_dir: str | None = None) -> None:
        self._labels = dict(default_labels)
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, LabelKey], float] = {}
        self._gauges: dict[tuple[str, LabelKey], float] = {}
        self._hists: dict[tuple[str, LabelKey], _Hist] = {}
        # with several workers: this process's store, rewritten after each update, for the
        # master's /prometheus (`MergedMetrics`); the role of PROMETHEUS_MULTIPROC_DIR
        self._snapshot = None if snapshot_dir is None else os.path.join(snapshot_dir, f"{os.getpid()}.json")

    def _key(self, metric: dict, method: str) -> tuple[str, LabelKey]:
        # as seldon-core: a user tag never overrides Seldon's own labels
        tags = {str(k): str(v) for k, v in (metric.get("tags") or {}).items()}
        labels = {**tags, **self._labels, "method": method}
        return metric["key"], tuple(sorted(labels.items()))

    def update(self, metrics: Iterable[dict], method: str) -> None:
        with self._lock:
            for m in metrics:
                key = self._key(m, method)
                value = float(m["value"])
                if m["type"] == COUNTER:
                    self._counters[key] = self._counters.get(key, 0.0) + value
                elif m["type"] == GAUGE:
                    self._gauges[key] = value
                else:
                    hist = self._hists.setdefault(key, _Hist())
                    seconds = value / 1000.0
                    idx = next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
                    hist.counts[idx] += 1
                    hist.total += seconds
            if self._snapshot is not None:
                self._write_snapshot(self._snapshot)

    def _write_snapshot(self, path: str) -> None:
        """Writes the store as JSON, atomically (a reader never sees half a file)."""
        data = {
            "counters": [[n, list(map(list, lab)), v] for (n, lab), v in self._counters.items()],
            "gauges": [[n, list(map(list, lab)), v] for (n, lab), v in self._gauges.items()],
            "hists": [[n, list(map(list, lab)), h.counts, h.total] for (n, lab), h in self._hists.items()],
        }
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def merge_snapshot(self, data: dict) -> None:
        """Adds one worker's snapshot: counters and histograms add up, gauges take its value.
        Series never collide across workers in practice (`worker_id` is a label)."""
        with self._lock:
            for name, labels, value in data.get("counters", []):
                key = (name, tuple(tuple(p) for p in labels))
                self._counters[key] = self._counters.get(key, 0.0) + value
            for name, labels, value in data.get("gauges", []):
                self._gauges[(name, tuple(tuple(p) for p in labels))] = value
            for name, labels, counts, total in data.get("hists", []):
                hist = self._hists.setdefault((name, tuple(tuple(p) for p in labels)), _Hist())
                hist.counts = [a + b for a, b in zip(hist.counts, counts)]
                hist.total += total

    def update_reward(self, reward: float) -> None:
        self.update(
            [
                {"type": COUNTER, "key": FEEDBACK_KEY, "value": 1},
                {"type": COUNTER, "key": FEEDBACK_REWARD_KEY, "value": reward},
            ],
            FEEDBACK,
        )

    def collect(self) -> Iterable[Any]:
        with self._lock:
            counters = dict(self._counters)
            gauges = dict(self._gauges)
            hists = {k: _Hist(list(v.counts), v.total) for k, v in self._hists.items()}
        for name, items in _group(counters).items():
            fam = CounterMetricFamily(name, name, labels=None)
            for labels, value in items:
                fam.samples.append(_sample(name + "_total", labels, value))
            yield fam
        for name, items in _group(gauges).items():
            fam = GaugeMetricFamily(name, name)
            for labels, value in items:
                fam.samples.append(_sample(name, labels, value))
            yield fam
        for name, items in _group(hists).items():
            fam = HistogramMetricFamily(name, name)
            for labels, hist in items:
                running = 0
                for bound, count in zip(list(BUCKETS) + [math.inf], hist.counts):
                    running += count
                    le = "+Inf" if bound == math.inf else repr(float(bound))
                    fam.samples.append(_sample(name + "_bucket", {**labels, "le": le}, running))
                fam.samples.append(_sample(name + "_count", labels, running))
                fam.samples.append(_sample(name + "_sum", labels, hist.total))
            yield fam

    def registry(self) -> CollectorRegistry:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(self)
        return reg


def _group(store: dict) -> dict[str, list[tuple[dict, Any]]]:
    out: dict[str, list[tuple[dict, Any]]] = {}
    for (name, labels), value in sorted(store.items(), key=lambda kv: kv[0]):
        out.setdefault(name, []).append((dict(labels), value))
    return out


def _sample(name: str, labels: dict, value: float) -> Sample:
    return Sample(name, labels, value, None, None)


class MergedMetrics:
    """Collector of the master process: every worker's snapshot in `directory`, merged."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Any]:
        store = SeldonMetrics({})
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.directory, name)) as f:
                    store.merge_snapshot(json.load(f))
            except (OSError, ValueError):
                continue  # a worker's file vanished or is not ours: skip it, never fail the scrape
        yield from store.collect()
