#!/usr/bin/env python3
"""What one connection and one request in flight cost shadowtap in memory (issue 5).

    python3 loadtests/memory.py [--bin PATH] [--steps 0,1000,2000,4000] [--smoke] [--json OUT]

Starts shadowtap (release build: --bin, else $SHADOWTAP_BIN, else `cargo build --release`)
with one worker, and its upstreams in this process (asyncio HTTP/1.1 servers on 127.0.0.1: a
primary and a shadow, each answering 64 B at once or holding every answer until released).
Then, for each count N in --steps, it holds N of one thing open and reads shadowtap's
resident set (VmRSS) once it is steady:

* idle connections: N client connections, each after one request, kept open (keep-alive);
  the requests go one at a time, so one upstream connection serves them all;
* idle connections + pooled upstream ones: the same, the N requests at once, so N upstream
  connections are opened and then kept in the pool (pool_max_idle raised to keep them all);
* live requests in flight: N client connections, each with a GET the primary holds;
* shadow copies in flight: N GETs answered at once by the primary, their copies held by the
  shadow (mirror.max_in_flight raised to hold them all);
* shadow copies in flight, 64 KiB POST: the same with 64 KiB bodies (mirrored by opt-in);
* shadow copies queued: the shadow holds one copy (max_in_flight = 1), the other N wait in
  the mirror queue (queue_capacity raised to hold them all);
* 64 KiB POST copies under a 64 MiB budget: as the 64 KiB series, with
  mirror.max_buffered_bytes = 64 MiB: what does not fit is dropped (`dropped_memory_budget`),
  so the resident set stops growing near the budget (no slope: the points are the figure).

Each series gets a least-squares slope in KiB per item, the cost of one more. A request in
flight includes its client connection (and its upstream one): subtract the idle connection's
slope for the request's own share. Each series runs on a fresh shadowtap, the counts rising,
so allocator reuse between series does not hide a cost. --smoke: small counts, seconds, for CI
(the figures then say little; the script must not rot). Loopback only; shadowtap is stopped
by its PID on exit. Needs `ulimit -n` above 3 × the largest count.
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGET = 64 << 20
BUDGET_KIND = "64 KiB POST copies under a 64 MiB budget"
ROOT = os.path.dirname(HERE)
BODY = b"x" * 64
POST_BODY = b'{"data":"' + b"p" * (64 * 1024 - 11) + b'"}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 64\r\n\r\n" + BODY


class Upstream:
    """An HTTP/1.1 server answering 64 B, at once or (hold) only when released."""

    def __init__(self, hold):
        self.hold = hold
        self.release = asyncio.Event()
        self.received = 0
        self.server = None
        self.port = 0

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                self.received += 1
                if self.hold:
                    await self.release.wait()
                writer.write(RESPONSE)
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()

    def stop(self):
        self.release.set()
        self.server.close()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


def request(method, path, body=b""):
    head = f"{method} {path} HTTP/1.1\r\nhost: memory.test\r\n"
    if body or method == "POST":
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def steady_rss(pid, seconds=0.6):
    """RSS once it stops moving (two equal reads 200 ms apart), at most `seconds` of waiting
    after the first read."""
    last = rss_kib(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = rss_kib(pid)
        if now == last:
            break
        last = now
    return last


async def wait_for(predicate, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def config_text(listen, admin, primary, shadow, in_flight, queue, budget):
    return f"""[[listeners]]
address = "127.0.0.1:{listen}"
max_connections = 100000
header_read_timeout = "120s"

[admin]
address = "127.0.0.1:{admin}"

[runtime]
worker_threads = 1

[mirror]
timeout = "120s"
max_in_flight = {in_flight}
queue_capacity = {queue}
max_buffered_bytes = {budget}

[upstreams.primary]
url = "http://127.0.0.1:{primary}"
response_timeout = "120s"
pool_max_idle = 100000

[upstreams.shadow]
url = "http://127.0.0.1:{shadow}"
response_timeout = "120s"
pool_max_idle = 100000

[[routes]]
name = "default"
primary = "primary"

[routes.mirror]

[[routes.mirror.shadows]]
upstream = "shadow"
percent = {100 if shadow else 0}
methods = "all"
"""


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Shadowtap:
    """shadowtap on a config of its own; stopped by its PID."""

    def __init__(self, binary, workdir, primary, shadow, in_flight, queue, budget):
        self.port = free_port()
        path = os.path.join(workdir, f"shadowtap-{self.port}.toml")
        with open(path, "w") as f:
            f.write(
                config_text(self.port, free_port(), primary, shadow, in_flight, queue, budget)
            )
        self.log = open(path + ".log", "w")
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [binary, "run", "--config", path], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )

    async def ready(self):
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"shadowtap exited: see {self.log.name}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("shadowtap did not listen")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def open_clients(port, n, opened):
    """Opens connections up to `n` in all (appended to `opened`), 200 at a time."""
    while len(opened) < n:
        batch = min(200, n - len(opened))
        opened += await asyncio.gather(
            *[asyncio.open_connection("127.0.0.1", port) for _ in range(batch)]
        )


async def series(binary, workdir, kind, steps):
    """RSS (KiB) of a fresh shadowtap holding each count of `kind` in `steps`."""
    hold_primary = kind == "live in flight"
    idle = kind.startswith("idle connections")
    mirrored = not idle and not hold_primary
    # The primary holds answers only after the warm-up request.
    primary, shadow = Upstream(False), Upstream(True)
    await primary.start()
    await shadow.start()
    top = max(steps)
    # The warm-up request's copy is held at the shadow too: it takes one slot.
    in_flight = 1 if kind == "shadow queued" else top + 1
    # Out of the way (16 GiB) except in the series about it: the others measure what each
    # held copy costs, not the budget's cap.
    budget = BUDGET if kind == BUDGET_KIND else 16 << 30
    proxy = Shadowtap(
        binary,
        workdir,
        primary.port,
        shadow.port if mirrored else 0,
        in_flight,
        max(top, 1) + 16,
        budget,
    )
    clients = []
    points = []
    try:
        await proxy.ready()
        # One request through before the first reading, so start-up allocations are made.
        warm = await asyncio.open_connection("127.0.0.1", proxy.port)
        warm[1].write(request("GET", "/warm-up"))
        await read_response(warm[0])
        warm[1].close()
        if mirrored:
            await wait_for(lambda: shadow.received >= 1, "the warm-up copy")
        primary.hold = hold_primary
        base_primary, base_copies = primary.received, shadow.received
        answered = 0
        for n in steps:
            if idle or hold_primary:
                before = len(clients)
                await open_clients(proxy.port, n, clients)
                if kind == "idle connections":
                    for reader, writer in clients[before:]:
                        writer.write(request("GET", "/item/1"))
                        await read_response(reader)
                else:
                    for reader, writer in clients[before:]:
                        writer.write(request("GET", "/item/1"))
                if kind == "idle connections + pooled upstream ones":
                    await asyncio.gather(*[read_response(r) for r, _ in clients[before:]])
                elif hold_primary:
                    await wait_for(
                        lambda: primary.received - base_primary >= n, f"{n} requests held"
                    )
            else:
                await open_clients(proxy.port, 64, clients)
                body = POST_BODY if "64 KiB POST" in kind else b""
                await send(clients, n - answered, "POST" if body else "GET", body)
                answered = n
                # Queued copies stay in the queue behind the warm-up copy's slot.
                if kind == BUDGET_KIND:
                    # Copies past the budget were dropped: wait until no more arrive.
                    await steady(lambda: shadow.received)
                else:
                    want = 0 if kind == "shadow queued" else n
                    await wait_for(
                        lambda: shadow.received - base_copies >= want,
                        f"{want} copies at the shadow",
                    )
            points.append((n, await steady_rss(proxy.proc.pid)))
        return points
    finally:
        primary.release.set()
        shadow.release.set()
        for _, writer in clients:
            writer.close()
        proxy.stop()
        primary.stop()
        shadow.stop()


async def send(clients, todo, method, body):
    """Sends `todo` GETs (or POSTs) spread over the client connections, one at a time on
    each; the primary answers them at once, their copies stay at the shadow or in the queue."""
    per = [todo // len(clients) + (i < todo % len(clients)) for i in range(len(clients))]

    async def one(conn, count):
        reader, writer = conn
        for _ in range(count):
            writer.write(request(method, "/item/1", body))
            status = await read_response(reader)
            if status != 200:
                raise RuntimeError(f"status {status} from shadowtap")

    await asyncio.gather(*[one(c, k) for c, k in zip(clients, per) if k])


async def steady(count, quiet=0.3):
    """Waits until `count()` has not changed for `quiet` seconds."""
    last = count()
    while True:
        await asyncio.sleep(quiet)
        now = count()
        if now == last:
            return
        last = now


def slope(points):
    """Least-squares KiB per item."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


KINDS = [
    "idle connections",
    "idle connections + pooled upstream ones",
    "live in flight",
    "shadow in flight",
    "shadow in flight, 64 KiB POST",
    "shadow queued",
    BUDGET_KIND,
]


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.environ.get("SHADOWTAP_BIN"))
    parser.add_argument("--steps", default="0,1000,2000,4000")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    steps = [int(s) for s in ("0,20,40" if args.smoke else args.steps).split(",")]
    if steps != sorted(steps) or steps[0] < 0:
        sys.exit("--steps: rising counts, from 0 up")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 3 * max(steps) + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        if min(need, hard) < need:
            sys.exit(f"ulimit -n is {hard}; {need} needed for {max(steps)}")
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary = os.path.join(target, "release", "shadowtap")
    results = {}
    with tempfile.TemporaryDirectory(prefix="shadowtap-memory.") as workdir:
        for kind in KINDS:
            points = await series(binary, workdir, kind, steps)
            results[kind] = {"points": points, "kib_per_item": slope(points)}
    print(f"shadowtap resident set (VmRSS, MiB) holding N of each; slope: KiB per one more")
    header = "| held | " + " | ".join(f"N = {n}" for n in steps) + " | KiB each |"
    print(header)
    print("|" + "---|" * (len(steps) + 2))
    for kind, r in results.items():
        cells = " | ".join(f"{kib / 1024:.1f}" for _, kib in r["points"])
        each = "–" if kind == BUDGET_KIND else f"{r['kib_per_item']:.1f}"
        print(f"| {kind} | {cells} | {each} |")
    idle = results["idle connections"]["kib_per_item"]
    pooled = results["idle connections + pooled upstream ones"]["kib_per_item"]
    live = results["live in flight"]["kib_per_item"]
    print(f"a pooled upstream connection: {pooled - idle:.1f} KiB")
    print(f"a live request's own share (in flight minus an idle connection): {live - idle:.1f} KiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps, "binary": binary, "results": results}, f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
