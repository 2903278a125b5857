#!/usr/bin/env python3
"""Measures what tracing (and, with --metrics, metrics) costs the create path, as
README "Overhead" reports it: rounds of `scripts/bench-loopback.sh default raw
create` at saturation, one run per configuration in each round, the order
reversed every other round (ABBA), so that the machine's drifting speed falls on
both sides alike. Traces go to `scripts/otlp-sink.py`, started here on its own
port; it is stopped at the end and prints the spans it got.

    scripts/bench-overhead.py                        # 10 rounds: off, traced
    scripts/bench-overhead.py --rounds 4 --metrics   # off, metrics, traced
    BENCH_WORKERS=/tmp/other-build scripts/bench-overhead.py

Each run prints its creates/s (and raw request-reply's, measured in the same run)
and the CPU each process of the stack used; the summary gives each configuration's
creates/s against off: pooled (all its creates over all of off's, in the same
rounds) and the median and range of the rounds' own ratios, and the workers' CPU
over nats-server's, the steadier figure while the machine's speed swings. Needs
what bench-loopback.sh needs (a nats-server, a release build).
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(worker_env, args):
    """One bench-loopback.sh run: its creates/s, raw req/s and CPU (ms) by process."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env["BENCH_WORKER_ENV"] = worker_env
    command = ["scripts/bench-loopback.sh", "default", "raw", "create", "--clients", str(args.clients)]
    command += ["--duration", args.duration]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"bench-loopback.sh failed:\n{out.stdout}\n{out.stderr}")
    rates = dict(re.findall(r"^(raw|create)\s+\S+\s+(\d+)", out.stdout, re.M))
    errors = re.search(r"^create\s+(?:\S+\s+){7}(\d+)", out.stdout, re.M)
    if errors and errors.group(1) != "0":
        sys.exit(f"creates failed:\n{out.stdout}")
    cpu = {name: int(ms) for name, ms in re.findall(r"^cpu (\S+): (\d+) ms", out.stdout, re.M)}
    # The workers' logs at shutdown: the spans their exporters dropped, if any.
    dropped = sum(int(count) for count in re.findall(r"dropped_span_count=(\d+)", out.stderr))
    return int(rates["create"]), int(rates["raw"]), cpu, dropped


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--metrics", action="store_true", help="measure metrics on as well")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", default="10s")
    args = parser.parse_args()

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "otlp-sink.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    configurations = {"off": ""}
    if args.metrics:
        configurations["metrics"] = "METRICS_ADDR=127.0.0.1:0"
    configurations["traced"] = f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port}"
    runs = {name: [] for name in configurations}
    drops = dict.fromkeys(configurations, 0)
    try:
        for round_ in range(1, args.rounds + 1):
            order = list(configurations) if round_ % 2 else list(reversed(configurations))
            for name in order:
                create, raw, cpu, dropped = run(configurations[name], args)
                runs[name].append((create, cpu))
                drops[name] += dropped
                cpus = " ".join(f"{process} {ms} ms" for process, ms in cpu.items())
                print(f"round {round_} {name:8} creates/s {create:6}  raw {raw:6}  cpu: {cpus}", flush=True)
    finally:
        sink.send_signal(signal.SIGTERM)
        spans, _ = sink.communicate(timeout=600)

    print(f"\n{args.rounds} rounds, {args.clients} clients, {args.duration} a run")
    off = [create for create, _ in runs["off"]]
    for name, results in runs.items():
        creates = [create for create, _ in results]
        workers = [
            (cpu.get("vessel-worker", 0) + cpu.get("consignment-worker", 0)) / cpu["nats-server"] for _, cpu in results
        ]
        line = f"{name:8} creates/s mean {statistics.mean(creates):8.0f}"
        if name != "off":
            ratios = [create / base for create, base in zip(creates, off)]
            line += (
                f"  vs off: pooled {sum(creates) / sum(off):.3f}, median {statistics.median(ratios):.3f}"
                f" ({min(ratios):.2f}-{max(ratios):.2f})"
            )
        line += f"  workers' CPU / nats-server's {statistics.mean(workers):.3f}"
        if name == "traced":
            line += f"  spans dropped {drops[name]}"
        print(line)
    print(f"\nspans received (scripts/otlp-sink.py):\n{spans}", end="")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"took {time.monotonic() - started:.0f} s")
