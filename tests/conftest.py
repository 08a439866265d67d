"""Shared fixtures. The embedded model is loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TEXTGRAD_LIKE_DISK_CACHE", "0")  # tests never touch the user's disk cache


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Every test starts from default settings and an empty in-memory cache."""
    from textgrad_like.lm.cache import configure_cache
    from textgrad_like.settings import settings

    settings.reset()
    configure_cache(enable_disk_cache=False)
    yield
    settings.reset()


@pytest.fixture(scope="session")
def embedded_lm():
    """The real embedded SmolLM2-135M model, loaded once for the whole session."""
    from textgrad_like.lm import LM

    return LM("local/embedded", temperature=0.0, max_tokens=64)


@pytest.fixture()
def exporter():
    """An in-memory OpenTelemetry exporter with textgrad_like's tracing on for the test."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from textgrad_like.tracing import disable_tracing, enable_tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(tracer_provider=provider)
    yield exporter
    disable_tracing()
    provider.shutdown()
