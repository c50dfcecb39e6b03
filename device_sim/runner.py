"""One simulator run: provision, run the fleet, verify, build the report."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console

from device_sim.config import SimConfig
from device_sim.display import LiveProgress
from device_sim.fleet import Device, RunControl, make_devices, provision_fleet, run_devices, run_seed
from device_sim.profiles import assign_types
from device_sim.report import Stats, build_report, merge_wamp_stats, wamp_section
from device_sim.transport import Api, RetryPolicy
from device_sim.verify import DeviceExpectation, verify_with_rechecks

if TYPE_CHECKING:
    from device_sim.fleet import DeviceIdentity
    from device_sim.profiles import DeviceType
    from device_sim.wamp import WampDevice


async def run_simulation(
    cfg: SimConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    console: Console | None = None,
    install_signal_handlers: bool = False,
) -> dict[str, Any]:
    """Run the whole simulation and return the JSON report (see README.md).

    Raises fleet.ProvisionError when devices cannot be provisioned.
    """
    console = console or Console(stderr=True)
    n = cfg.fleet_size()
    types = assign_types(cfg.profile, n)
    stats = Stats()
    async with _api(cfg, transport) as api:
        identities, _reused = await provision_fleet(api, cfg, types)
        started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        start = time.monotonic()
        end = start + cfg.duration if cfg.count is None else None
        control = RunControl(start, end)
        devices, wamp_devices = _fleet_devices(cfg, identities, types, api, stats, control)

        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            _install_sigint(loop, control)
        done = asyncio.Event()
        progress_task = _start_progress(cfg, stats, console, n, devices, done) if cfg.progress else None
        try:
            await run_devices(devices)
            sent_at = time.monotonic()
            if wamp_devices and cfg.linger > 0 and not control.stopped:
                await control.sleep_or_stop(cfg.linger)  # still online, answering calls
        finally:
            if wamp_devices:
                await asyncio.gather(*(d.link.close() for d in wamp_devices))
            done.set()
            if progress_task is not None:
                await progress_task
            if install_signal_handlers:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signal.SIGINT)
        duration = sent_at - start  # --linger excluded

        verify_dict = await _verify(api, cfg, devices) if cfg.verify else None

    return build_report(
        stats,
        devices=n,
        fmt=cfg.fmt,
        duration_s=duration,
        profile=cfg.profile.name,
        seed=cfg.seed,
        url=cfg.url,
        started_at=started_at,
        verify=verify_dict,
        transport=cfg.transport,
        ingest_url=cfg.ingest_url or cfg.url,
        ws_url=cfg.ws_url if cfg.transport == "wamp" else None,
        wamp=wamp_section(merge_wamp_stats(d.wamp for d in wamp_devices)) if cfg.transport == "wamp" else None,
    )


def _api(cfg: SimConfig, transport: httpx.AsyncBaseTransport | None) -> Api:
    """The run's HTTP client: its timeout, concurrency and retry policy, retries jittered from the run's seed."""
    return Api(
        cfg.url,
        ingest_url=cfg.ingest_url,
        timeout=cfg.timeout,
        concurrency=cfg.concurrency,
        policy=RetryPolicy(max_retries=cfg.max_retries, base=cfg.retry_base, cap=cfg.retry_cap),
        rng=random.Random(run_seed(cfg.seed)),
        transport=transport,
    )


def _fleet_devices(
    cfg: SimConfig,
    identities: Sequence[DeviceIdentity],
    types: Sequence[DeviceType],
    api: Api,
    stats: Stats,
    control: RunControl,
) -> tuple[Sequence[Device], list[WampDevice]]:
    """The simulated devices (and, over WAMP, the same devices with their links started)."""
    if cfg.transport != "wamp":
        return make_devices(identities, types, cfg, api, stats, control), []
    from device_sim.wamp import make_wamp_devices  # autobahn only when it is used

    wamp_devices = make_wamp_devices(identities, types, cfg, api, stats, control)
    for device in wamp_devices:
        device.link.start()
    return wamp_devices, wamp_devices


def _start_progress(
    cfg: SimConfig, stats: Stats, console: Console, n: int, devices: Sequence[Device], done: asyncio.Event
) -> asyncio.Task[None]:
    """The live progress display of `n` devices, running until `done`."""
    view = LiveProgress(
        stats,
        console,
        devices=n,
        duration=cfg.duration if cfg.count is None else None,
        total_records=cfg.count * n if cfg.count is not None else None,
        buffered=lambda: sum(d.buffered for d in devices),
    )
    return asyncio.create_task(view.run(done))


async def _verify(api: Api, cfg: SimConfig, devices: Sequence[Device]) -> dict[str, Any]:
    """Read the telemetry back: every acked reading of every device must be stored."""
    expectations = [
        DeviceExpectation(
            d.identity.id,
            d.acked,
            d.uncertain,
            d.first_ts,
            (d.last_ts or d.first_ts) + 1,
        )
        for d in devices
        if d.first_ts is not None
    ]
    result = await verify_with_rechecks(api, cfg.admin_token, expectations, cfg.verify_rechecks)
    return result.as_dict()


def _install_sigint(loop: asyncio.AbstractEventLoop, control: RunControl) -> None:
    """First Ctrl-C: stop producing, flush and drain, still report. Second: abort."""

    def on_sigint() -> None:
        if control.stopped:
            raise KeyboardInterrupt
        control.stop()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
