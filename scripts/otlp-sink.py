"""An OTLP/HTTP trace receiver for measuring the cost of tracing: it answers each
export at once and keeps the bodies, and only when it is stopped (SIGTERM or
Ctrl-C) decodes them and prints how many spans of each name it got, so that
decoding takes no CPU from the run being measured. Decoding needs PyPI's
opentelemetry-proto; without it, the count of exports and bytes is printed.

    python3 scripts/otlp-sink.py [PORT]        # default 4318; then
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 scripts/bench-loopback.sh ...

It reads with an asyncio protocol, the chunks the socket gives kept as they are
and joined only at the end: a stream reader's buffer copied each body two or three
times, nearly 3 µs of CPU per create at 4,000 creates/s against about 1 µs this
way (README, "Overhead"), on the cores the measured stack runs on.
"""

import asyncio
import collections
import signal
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
bodies = []  # each a list of chunks
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class Export(asyncio.Protocol):
    """One connection: requests, one after another, each a head and a body of Content-Length bytes."""

    def connection_made(self, transport):
        self.transport = transport
        self.head = b""
        self.body = None  # the chunks of the body being read
        self.left = 0

    def data_received(self, data):
        while data:
            if self.body is None:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                data = self.head[end + 4 :]
                self.left = 0
                for line in self.head[:end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        self.left = int(value)
                self.head = b""
                self.body = []
            taken = data[: self.left] if len(data) > self.left else data
            if taken:
                self.body.append(taken)
            self.left -= len(taken)
            data = data[len(taken) :]
            if self.left == 0:
                bodies.append(self.body)
                self.body = None
                self.transport.write(OK)


def report():
    print(f"{len(bodies)} exports, {sum(len(c) for body in bodies for c in body)} bytes", flush=True)
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:
        return
    names = collections.Counter()
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(b"".join(body))
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names.update(span.name for span in scope.spans)
    for name, count in names.most_common():
        print(f"{count:>9} {name}", flush=True)


async def main():
    server = await asyncio.get_running_loop().create_server(Export, "127.0.0.1", PORT)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    report()


asyncio.run(main())
