#!/usr/bin/env python3
"""Lets a Docker client that speaks a newer Engine API than the daemon talk to it.

testcontainers-rs pins the API version it speaks (1.53 for testcontainers 0.28) and
does not negotiate; Debian 12's dockerd 20.10 serves at most API 1.41 and refuses
newer clients outright. This proxy listens on a unix socket and forwards every
request to the real daemon with the version in its path lowered to the daemon's.
Real users' engines are new enough and never need it; .ci/run starts it only when
the daemon is older than the client.

    docker-api-shim.py LISTEN_SOCKET [UPSTREAM_SOCKET]

Each request is sent upstream with `Connection: close`, so one connection carries
one exchange and the bytes can be piped through untouched, streams included.
"""

import asyncio
import json
import os
import re
import sys

VERSIONED_PATH = re.compile(rb"^/v(\d+)\.(\d+)(/.*)$")


async def daemon_api_version(upstream):
    reader, writer = await asyncio.open_unix_connection(upstream)
    writer.write(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    major, minor = json.loads(response.split(b"\r\n\r\n", 1)[1])["ApiVersion"].split(".")
    return int(major), int(minor)


async def pipe(reader, writer):
    try:
        while chunk := await reader.read(64 * 1024):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


def rewrite(head, max_version):
    request_line, *headers = head.rstrip(b"\r\n").split(b"\r\n")
    method, path, protocol = request_line.split(b" ", 2)
    match = VERSIONED_PATH.match(path)
    if match and (int(match[1]), int(match[2])) > max_version:
        path = b"/v%d.%d" % max_version + match[3]
    upgrade = any(h.lower().startswith(b"connection:") and b"upgrade" in h.lower() for h in headers)
    if not upgrade:
        headers = [h for h in headers if not h.lower().startswith(b"connection:")]
        headers.append(b"Connection: close")
    return b"\r\n".join([b" ".join([method, path, protocol]), *headers]) + b"\r\n\r\n"


async def serve(listen, upstream):
    max_version = await daemon_api_version(upstream)

    async def handle(client_reader, client_writer):
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
            daemon_reader, daemon_writer = await asyncio.open_unix_connection(upstream)
            daemon_writer.write(rewrite(head, max_version))
            upload = asyncio.ensure_future(pipe(client_reader, daemon_writer))
            await pipe(daemon_reader, client_writer)
            upload.cancel()
            daemon_writer.close()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            client_writer.close()

    if os.path.exists(listen):
        os.unlink(listen)
    server = await asyncio.start_unix_server(handle, path=listen)
    print(f"docker-api-shim: {listen} -> {upstream} (API <= {max_version[0]}.{max_version[1]})", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    upstream = sys.argv[2] if len(sys.argv) == 3 else "/var/run/docker.sock"
    asyncio.run(serve(sys.argv[1], upstream))
