#!/usr/bin/env python3
"""A plain NATS client for the end-to-end test, standing in for the `nats` CLI.

It uses nats-py, the NATS project's Python client, and sends plain JSON with no
headers, exactly as `nats req` does.

    nats_probe.py req SUBJECT JSON [--repeat N]   # like `nats req`; prints the last reply
    nats_probe.py instances SERVICE N             # waits until N instances answer $SRV.PING
    nats_probe.py served SERVICE SUBJECT N        # per-instance requests served ($SRV.STATS);
                                                  # fails unless all N instances served some
    nats_probe.py poison                          # the requests that used to crash or fool a
                                                  # worker: each must get a JSON error reply
                                                  # with both ADR-32 headers
NATS_URL picks the server (default nats://localhost:4222).
"""

import asyncio
import json
import os
import sys
import time

import nats

URL = os.environ.get("NATS_URL", "nats://localhost:4222")


async def gather(nc, subject, count, timeout=2.0):
    """Publishes to SUBJECT and collects up to COUNT replies within TIMEOUT."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, b"", reply=inbox)
    replies = []
    deadline = time.monotonic() + timeout
    while len(replies) < count and (left := deadline - time.monotonic()) > 0:
        try:
            replies.append(json.loads((await sub.next_msg(timeout=left)).data))
        except nats.errors.TimeoutError:
            break
    await sub.unsubscribe()
    return replies


async def req(nc, subject, data, repeat=1):
    for _ in range(repeat):
        msg = await nc.request(subject, data.encode(), timeout=5)
        if msg.headers and "Nats-Service-Error-Code" in msg.headers:
            sys.exit(f"{subject}: error reply {msg.data.decode()}")
    print(msg.data.decode())


async def instances(nc, service, count, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pongs = await gather(nc, f"$SRV.PING.{service}", count)
        if len(pongs) >= count:
            print(f"{service}: {len(pongs)} instances: {', '.join(sorted(p['id'] for p in pongs))}")
            return
        await asyncio.sleep(0.5)
    sys.exit(f"{service}: fewer than {count} instances answered within {timeout}s")


async def served(nc, service, subject, count):
    stats = await gather(nc, f"$SRV.STATS.{service}", count)
    counts = {}
    for instance in stats:
        endpoint = next(e for e in instance["endpoints"] if e["subject"] == subject)
        counts[instance["id"]] = endpoint["num_requests"]
    for instance, n in sorted(counts.items()):
        print(f"{service} instance {instance}: {n} {subject} requests served")
    if len(counts) != count or not all(counts.values()):
        sys.exit(f"expected {count} instances to have served {subject}, got {counts}")


# Requests that crashed a worker (an error quoting a newline, sent as a header) or
# were answered as if valid (trailing bytes, two documents, arrays): (subject, body).
POISON = [
    ("vessel.find_available", b'{"capacity":3,"max_weight":55000,"a\\nb":NaN}'),
    ("vessel.find_available", b'{"capacity":3,"max_weight":55000,"a\r\n\x00b":1}'),
    ("vessel.find_available", b'{"capacity": 3, "max_weight": 55000} xyz'),
    ("vessel.find_available", b'{"capacity":3,"max_weight":1}{"capacity":3,"max_weight":1}'),
    ("vessel.find_available", b"[3,55000]"),
    ("vessel.find_available", b'{"capacity":3,"\xff\xfe":1}'),
    ("vessel.create", b'{"id":"dup\\nid","name":"x","capacity":1,"max_weight":1}'),
    ("vessel.create", b'{"id":"dup\\nid","name":"x","capacity":1,"max_weight":1}'),
    ("consignment.create", b'{"description":"d","weight":1,"containers":[],"a\\nb":NaN}'),
    ("consignment.create", b"{\"deep\":" + b"[" * 5000 + b"]" * 5000 + b"}"),
]


async def poison(nc):
    for subject, data in POISON:
        msg = await nc.request(subject, data, timeout=5)
        headers = msg.headers or {}
        body = json.loads(msg.data)
        code = headers.get("Nats-Service-Error-Code")
        if code is None or "Nats-Service-Error" not in headers or str(body["error"]["code"]) != code:
            sys.exit(f"{subject} {data[:60]!r}: expected a JSON error reply, got {headers} {msg.data[:200]!r}")
        print(f"{subject} {data[:60]!r}: {code} {body['error']['message'][:80]!r}")


async def main(argv):
    nc = await nats.connect(URL, connect_timeout=5, max_reconnect_attempts=0)
    try:
        match argv:
            case ["req", subject, data]:
                await req(nc, subject, data)
            case ["req", subject, data, "--repeat", n]:
                await req(nc, subject, data, int(n))
            case ["instances", service, n]:
                await instances(nc, service, int(n))
            case ["poison"]:
                await poison(nc)
            case ["served", service, subject, n]:
                await served(nc, service, subject, int(n))
            case _:
                sys.exit(__doc__)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
