"""An OTLP/HTTP trace receiver for measuring the cost of tracing: it answers each
export at once and keeps the bodies, and only when it is stopped (SIGTERM or
Ctrl-C) decodes them and prints how many spans of each name it got, so that
decoding takes no CPU from the run being measured. Decoding needs PyPI's
opentelemetry-proto; without it, the count of exports and bytes is printed.

    python3 scripts/otlp-sink.py [PORT]        # default 4318; then
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 scripts/bench-loopback.sh ...
"""

import asyncio
import collections
import signal
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
bodies = []
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            bodies.append(await reader.readexactly(length))
            writer.write(OK)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def report():
    print(f"{len(bodies)} exports, {sum(map(len, bodies))} bytes", flush=True)
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:
        return
    names = collections.Counter()
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names.update(span.name for span in scope.spans)
    for name, count in names.most_common():
        print(f"{count:>9} {name}", flush=True)


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", PORT)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    report()


asyncio.run(main())
