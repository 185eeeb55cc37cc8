"""Scrape a registry through prometheus_client's text exposition and parser."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} from the registry's text exposition."""
    text = generate_latest(registry).decode()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def series(samples: dict[tuple[str, frozenset[tuple[str, str]]], float],
           name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples named `name`, by label set."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def family_names(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {f.name for f in text_string_to_metric_families(text)}
