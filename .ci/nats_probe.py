#!/usr/bin/env python3
"""A plain NATS client for the end-to-end test, standing in for the `nats` CLI.

It uses nats-py, the NATS project's Python client, and sends plain JSON with no
headers, exactly as `nats req` does.

    nats_probe.py req SUBJECT JSON [--repeat N]   # like `nats req`; prints the last reply
    nats_probe.py fail SUBJECT JSON N CODE        # N requests, each must get error reply CODE
    nats_probe.py instances SERVICE N             # waits until N instances answer $SRV.PING
    nats_probe.py served SERVICE SUBJECT N        # per-instance requests served ($SRV.STATS);
                                                  # fails unless all N instances served some
    nats_probe.py poison                          # the requests that used to crash or fool a
                                                  # worker: each must get a JSON error reply
                                                  # with both ADR-32 headers
    nats_probe.py refused                         # fails unless the server refuses this login
    nats_probe.py tls-required                    # fails unless a plain-text CONNECT is refused

It logs in the way the `nats` CLI does: NATS_URL picks the server (default
nats://localhost:4222), NATS_NKEY names an nkey seed file, NATS_INBOX_PREFIX the
prefix its replies come back on, and NATS_CA the CA that signed the server's TLS
certificate.
"""

import asyncio
import json
import os
import ssl
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


async def fail(nc, subject, data, repeat, code):
    for _ in range(repeat):
        msg = await nc.request(subject, data.encode(), timeout=5)
        got = (msg.headers or {}).get("Nats-Service-Error-Code")
        if got != code:
            sys.exit(f"{subject}: expected error {code}, got {got}: {msg.data.decode()}")
    print(f"{repeat} error replies {code}")


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


def options():
    """Connection options from the environment, as the nats CLI reads it."""
    options = {"connect_timeout": 5, "max_reconnect_attempts": 0, "allow_reconnect": False}
    if seed := os.environ.get("NATS_NKEY"):
        options["nkeys_seed"] = seed
    if prefix := os.environ.get("NATS_INBOX_PREFIX"):
        options["inbox_prefix"] = prefix.encode()
    if ca := os.environ.get("NATS_CA"):
        options["tls"] = ssl.create_default_context(cafile=ca)
    return options


async def refused():
    errors = []

    async def error_cb(error):
        errors.append(error)

    try:
        nc = await nats.connect(URL, error_cb=error_cb, **options())
    except Exception as error:  # noqa: BLE001 - any refusal is what we want
        print(f"refused: {error!r}")
        return
    await nc.close()
    sys.exit(f"the server accepted this login ({URL})")


async def tls_required():
    """Speaks the protocol in plain text, as a client without TLS would."""
    from urllib.parse import urlsplit

    server = urlsplit(URL.split(",")[0])
    reader, writer = await asyncio.open_connection(server.hostname, server.port or 4222)
    info = json.loads((await reader.readline()).decode().removeprefix("INFO "))
    writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(), 5)).decode(errors="replace").strip()
    writer.close()
    print(f"tls_required={info.get('tls_required')}; a plain CONNECT got: {answer or 'the connection closed'}")
    # A server that took it would answer PING with PONG (or an error about the login).
    if not info.get("tls_required") or "PONG" in answer or "Authorization" in answer:
        sys.exit("the server took a plain-text connection")


async def main(argv):
    if argv == ["refused"]:
        return await refused()
    if argv == ["tls-required"]:
        return await tls_required()
    nc = await nats.connect(URL, **options())
    try:
        match argv:
            case ["req", subject, data]:
                await req(nc, subject, data)
            case ["req", subject, data, "--repeat", n]:
                await req(nc, subject, data, int(n))
            case ["fail", subject, data, n, code]:
                await fail(nc, subject, data, int(n), code)
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
