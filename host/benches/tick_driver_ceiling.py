#!/usr/bin/env python3
"""The publish rate of ../shared/bench/tick_throughput.py with nothing consuming.

tick_throughput.py times publishing and draining together, so its figure can
never exceed the rate at which it publishes. This runs the driver's own
publish loop (its envelopes, its window of 1,000 confirms in flight, through
aio-pika) into a queue of its own with no consumer, and reports that rate and
the driver's CPU per publish: the most tick_throughput.py can show on this
machine, whatever consumes the inbox.

Usage (from the repository root; needs aio-pika and RabbitMQ):
    python3 host/benches/tick_driver_ceiling.py [-n 20000] [--driver ../shared/bench/tick_throughput.py]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time


def load_driver(path: str):
    spec = importlib.util.spec_from_file_location("tick_throughput", path)
    if spec is None or spec.loader is None:
        sys.exit(f"tick_driver_ceiling: cannot load the driver {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def measure(driver, url: str, n: int) -> tuple[float, float]:
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        name = f"tick_driver_ceiling.{os.getpid()}"
        exchange = await ch.declare_exchange(name, aio_pika.ExchangeType.TOPIC, auto_delete=True)
        queue = await ch.declare_queue(name, exclusive=True)
        await queue.bind(exchange, driver.DEFAULT_ROUTING_KEY)
        bodies = driver.build_envelopes(n)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # The driver's loop: windows of PUBLISH_WINDOW publishes awaiting confirms.
        for start in range(0, n, driver.PUBLISH_WINDOW):
            await asyncio.gather(*(
                exchange.publish(aio_pika.Message(body=b), routing_key=driver.DEFAULT_ROUTING_KEY, mandatory=True)
                for b in bodies[start:start + driver.PUBLISH_WINDOW]))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await queue.delete(if_unused=False, if_empty=False)
        return wall, cpu
    finally:
        await conn.close()


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--driver", default=os.path.join(here, "..", "..", "..", "shared", "bench", "tick_throughput.py"))
    args = p.parse_args()
    driver = load_driver(args.driver)
    wall, cpu = asyncio.run(measure(driver, args.url, args.n))
    print(f"driver publish loop, no consumer: n={args.n} {wall:.3f} s = {args.n / wall:.0f} publishes/s; "
          f"driver CPU {cpu:.2f} s = {cpu / args.n * 1e6:.0f} µs per publish")


if __name__ == "__main__":
    main()
