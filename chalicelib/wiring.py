"""Builds the app's collaborators once per process, from config.Settings."""

from __future__ import annotations

import functools
from typing import Any

from chalicelib import models
from chalicelib.adapters.aggregates import AggregateStore
from chalicelib.adapters.archive import S3Archive
from chalicelib.adapters.devices import DeviceRepository
from chalicelib.adapters.metrics import EmfSink, Metrics, MetricsSink, PutMetricDataSink
from chalicelib.adapters.readings import ReadingStore
from chalicelib.config import Settings, settings
from chalicelib.domain.auth import Authenticator


@functools.cache
def bound_settings() -> Settings:
    """Settings, with every model bound to the stage's tables (done once)."""
    current = settings()
    models.bind(current)
    return current


@functools.cache
def devices() -> DeviceRepository:
    bound_settings()
    return DeviceRepository()


@functools.cache
def readings() -> ReadingStore:
    s = bound_settings()
    return ReadingStore(max_attempts=s.write_max_attempts, retention_days=s.retention_days)


@functools.cache
def authenticator() -> Authenticator:
    s = bound_settings()
    return Authenticator(devices().find_by_token_hash, s.admin_token_hashes, s.auth_cache_ttl_seconds)


def aws_client(service: str) -> Any:
    """A boto3 client for the stage's region and endpoint (moto in the local stack)."""
    import boto3  # in the Lambda runtime; imported lazily to keep cold starts short

    s = bound_settings()
    return boto3.client(service, region_name=s.region, endpoint_url=s.aws_endpoint_url)


@functools.cache
def archive() -> S3Archive:
    return S3Archive(aws_client("s3"), bound_settings().archive_bucket)


@functools.cache
def aggregates() -> AggregateStore:
    bound_settings()
    return AggregateStore()


@functools.cache
def metrics() -> Metrics:
    s = bound_settings()
    sink: MetricsSink | None = None
    if s.metrics_sink == "emf":
        sink = EmfSink()
    elif s.metrics_sink == "cloudwatch":
        sink = PutMetricDataSink(aws_client("cloudwatch"))
    return Metrics(s.stage, sink)


def reset() -> None:
    """Forget everything built (tests that change the environment)."""
    settings.cache_clear()
    for factory in (bound_settings, devices, readings, authenticator, archive, aggregates, metrics):
        factory.cache_clear()
