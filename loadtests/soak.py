#!/usr/bin/env python3
"""The soak of issue 25, run by loadtests/soak.sh (stdlib only; see loadtests/README.md).

  soak.py run --bin SHADOWTAP --duration SECONDS [--rate R] [--connections C] [--phase S]
              [--out RESULT.json] [--dir RUN_DIR]
      shadowtap (the real binary) in front of a primary and, through a flapping TCP relay, a
      shadow, under steady mixed load for SECONDS; the primary is restarted once, half way.
      Then the checks below; exit 1 when one fails.
  soak.py backend PORT
      the primary's and the shadow's HTTP/1.1 server (a process of its own, so the primary
      can be killed and started again)

The load: C client connections sending R requests a second in all, GETs of bodies of 2-6 KiB
and (one in three) POSTs with bodies of 1-8 KiB, each answer checked byte for byte. Every
request is mirrored (percent 100, GET and POST) and compared.

The shadow flaps, PHASE seconds per state, in this order, over and over: healthy, dead (the
relay stops listening and resets every connection), hanging (it keeps every socket but reads
and answers nothing), slow (each chunk held 300 ms), resetting (an RST after 300 bytes of each
connection's answer: mid-body).

Checks, afterwards:
  live        no failed client request outside the primary's restart window; each failure in
              it is a 502 the proxy counted (shadowtap_proxy_errors_total)
  accounting  the mirror accounting closes: the requests sampled for the shadow (every
              request of the route: percent 100) = the sum of the outcomes
  rss         RSS flat: the fitted growth over the run after warm-up within the limit (the
              slope is reported)
  fds         open file descriptors back to their start value
  gauges      mirror queue depth, in flight and buffered bytes (the memory budget) back to 0
"""
import argparse
import asyncio
import http.client
import http.server
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import harness

# ------------------------------------------------------------------ backend


def item_body(n):
    """The GET answer for /item/N: 2-6 KiB, deterministic, so the client can check it whole
    and the shadow's answer equals the primary's."""
    size = 2048 + (n % 9) * 512
    line = f"item {n} ".encode()
    return (line * (size // len(line) + 1))[:size]


def post_answer(body):
    return json.dumps({"received": len(body), "sum": sum(body) % 65521}).encode()


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, body, kind):
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        try:
            n = int(self.path.rsplit("/", 1)[-1])
        except ValueError:
            n = 0
        self._answer(item_body(n), "text/plain")

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer(post_answer(body), "application/json")

    def log_message(self, *_):
        pass


def cmd_backend(a):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Backend)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


def free_port():
    """A port nothing listens on now: bound once to learn it, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {limit} s")


# ------------------------------------------------------------------ the flapping relay

STATES = ("healthy", "dead", "hanging", "slow", "resetting")
SLOW_DELAY = 0.3      # seconds each chunk is held while slow
RESET_AFTER = 300     # answer bytes per connection before the RST while resetting


def rst(writer):
    """Closes a connection with an RST (SO_LINGER 0, no FIN first)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class FlappingRelay:
    """A TCP relay before the shadow (the Python twin of tests/support/faults.rs) whose state
    changes every `phase` seconds through STATES; a thread of its own runs its event loop."""

    def __init__(self, listen_port, upstream_port, phase):
        self.listen_port, self.upstream_port, self.phase = listen_port, upstream_port, phase
        self.state = "healthy"
        self.changes = []            # (monotonic time, state)
        self.connections = set()     # client-side writers of open connections
        self._flowing = None         # asyncio.Event: set unless hanging
        self._server = None
        self._calm = self._closed = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._ready = threading.Event()

    def start(self):
        self._thread.start()
        self._ready.wait(10)

    def calm(self):
        """Healthy for good: the flapping ends; the relay goes on relaying."""
        self._loop.call_soon_threadsafe(self._calm.set)

    def close(self):
        """Stops relaying: every connection and the listener closed, the loop ended."""
        self._loop.call_soon_threadsafe(self._closed.set)
        self._thread.join(10)

    async def _listen(self):
        if self._server is None:
            self._server = await asyncio.start_server(
                self._relay, "127.0.0.1", self.listen_port, reuse_address=True)

    async def _set(self, state):
        self.state = state
        self.changes.append((time.monotonic(), state))
        if state == "dead":
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
            for writer in list(self.connections):
                rst(writer)
        else:
            await self._listen()
        if state == "hanging":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _main(self):
        self._flowing = asyncio.Event()
        self._calm, self._closed = asyncio.Event(), asyncio.Event()
        await self._set("healthy")
        self._ready.set()
        i = 0
        while not self._calm.is_set():
            try:
                await asyncio.wait_for(self._calm.wait(), self.phase)
            except asyncio.TimeoutError:
                i += 1
                await self._set(STATES[i % len(STATES)])
        await self._set("healthy")
        await self._closed.wait()
        self._server.close()
        for writer in list(self.connections):
            writer.transport.abort()
        await asyncio.sleep(0.1)

    async def _relay(self, client_reader, client_writer):
        self.connections.add(client_writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self.connections.discard(client_writer)
            client_writer.transport.abort()
            return
        answer = asyncio.ensure_future(self._pump(up_reader, client_writer, answer=True))
        request = asyncio.ensure_future(self._pump(client_reader, up_writer, answer=False))
        try:
            await asyncio.wait({answer, request}, return_when=asyncio.ALL_COMPLETED)
        finally:
            self.connections.discard(client_writer)
            for w in (client_writer, up_writer):
                w.transport.abort()

    async def _pump(self, reader, writer, answer):
        passed, counted_under = 0, self.state
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(16384)
                if not data:
                    writer.write_eof()
                    return
                await self._flowing.wait()
                state = self.state
                if state != counted_under:
                    passed, counted_under = 0, state
                if state == "slow":
                    await asyncio.sleep(SLOW_DELAY)
                elif state == "resetting" and answer and passed + len(data) > RESET_AFTER:
                    writer.write(data[:RESET_AFTER - passed])
                    await writer.drain()
                    rst(writer)
                    return
                elif state == "dead":
                    rst(writer)
                    return
                writer.write(data)
                await writer.drain()
                passed += len(data)
        except Exception:  # noqa: BLE001 (a broken connection, whichever way it broke)
            writer.transport.abort()


# ------------------------------------------------------------------ load


class Load:
    """C threads, each with its own keep-alive connection, R requests a second in all; every
    answer checked. Failures are kept with their times; successes only counted."""

    def __init__(self, port, rate, connections, seed=25):
        self.port, self.rate, self.connections = port, rate, connections
        self.sent = self.ok = self.gets = self.posts = 0
        self.failures = []   # (start, end, status or None, what)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, seed + i), daemon=True)
                         for i in range(connections)]

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def _run(self, index, seed):
        rng = random.Random(seed)
        interval = self.connections / self.rate
        conn = self._connect()
        next_at = time.monotonic() + index * interval / self.connections
        while not self._stop.is_set():
            now = time.monotonic()
            if next_at > now:
                time.sleep(next_at - now)
            # Behind (a slow answer): carry on from now rather than burst to catch up.
            next_at = max(next_at, now) + interval
            n = rng.randrange(1_000_000)
            post = rng.random() < 1 / 3
            if post:
                body = rng.randbytes(1024 + (n % 8) * 1024)
                method, path, expected = "POST", f"/submit/{n}", post_answer(body)
            else:
                body, method, path, expected = None, "GET", f"/item/{n}", item_body(n)
            start = time.monotonic()
            status, what = None, None
            try:
                conn.request(method, path, body=body,
                             headers={"content-type": "application/octet-stream"} if post else {})
                reply = conn.getresponse()
                data = reply.read()
                status = reply.status
                if status != 200:
                    what = f"status {status}"
                elif data != expected:
                    what = f"a changed body ({len(data)} bytes, {len(expected)} expected)"
                if reply.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = self._connect()
            except (OSError, http.client.HTTPException) as error:
                what = f"{type(error).__name__}: {error}"
                conn.close()
                conn = self._connect()
            end = time.monotonic()
            with self._lock:
                self.sent += 1
                if post:
                    self.posts += 1
                else:
                    self.gets += 1
                if what is None:
                    self.ok += 1
                else:
                    self.failures.append((start, end, status, f"{method} {path}: {what}"))
        conn.close()


# ------------------------------------------------------------------ process samples


class Sampler:
    """RSS (KiB) and open fds of shadowtap every `every` seconds, from /proc."""

    def __init__(self, pid, every, names):
        self.pid, self.every, self.samples = pid, every, []   # (t, rss_kib, fds)
        self.names = names   # port -> what listens there
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def one(self):
        return time.monotonic(), harness.rss_kib(self.pid), len(os.listdir(f"/proc/{self.pid}/fd"))

    def fd_kinds(self):
        """Open fds by kind (socket, pipe, anon_inode:[eventpoll], a file...): what a leak is."""
        kinds = {}
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                kind = "socket " + self.sockets.get(target[8:-1], "(not TCP)")
            else:
                kind = target.split(":[")[0] if target.startswith("pipe:") else target
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    @property
    def sockets(self):
        """TCP sockets by inode: `local->remote STATE`, with the soak's ports named."""
        states = {"01": "ESTABLISHED", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "0A": "LISTEN",
                  "04": "FIN_WAIT1", "05": "FIN_WAIT2", "09": "LAST_ACK", "0B": "CLOSING", "02": "SYN_SENT"}
        out = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                port = lambda hexaddr: self.names.get(int(hexaddr.rsplit(":", 1)[1], 16), "other")
                out[f[9]] = f"{port(f[1])}->{port(f[2])} {states.get(f[3], f[3])}"
        return out

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append(self.one())

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def slope(points):
    """Least-squares slope of (x, y) points; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


# ------------------------------------------------------------------ metrics


def metrics(admin_port):
    """Every sample of /metrics as (name, labels, value)."""
    out = []
    for line in harness.fetch(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).splitlines():
        m = harness.PROM_LINE.match(line)
        if m and not line.startswith("#"):
            out.append((m.group(1), dict(harness.PROM_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def total(samples, name, **labels):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items()))


def outcomes(samples):
    return {o: int(total(samples, "shadowtap_mirror_requests_total", route="default", shadow="shadow", outcome=o))
            for o in harness.OUTCOMES}


def gauges(samples):
    return {
        "queue_depth": total(samples, "shadowtap_mirror_queue_depth", shadow="shadow"),
        "in_flight": total(samples, "shadowtap_mirror_in_flight", shadow="shadow"),
        "buffered_bytes": total(samples, "shadowtap_mirror_buffered_bytes"),
    }


def settle(admin_port, limit):
    """Waits (at most `limit` s) until the gauges are 0 and the outcomes have not moved over
    two scrapes 0.5 s apart; returns the last scrape."""
    deadline, last = time.monotonic() + limit, None
    while True:
        now = metrics(admin_port)
        idle = all(v == 0 for v in gauges(now).values())
        if idle and last is not None and outcomes(now) == outcomes(last):
            return now
        last = now if idle else None
        if time.monotonic() > deadline:
            return now
        time.sleep(0.5)


# ------------------------------------------------------------------ run

CONFIG = """\
# The soak's shadowtap (written by loadtests/soak.py): every request mirrored to the shadow
# behind the flapping relay, and compared. Idle pooled connections close after 2 s, so the
# open descriptors can come back to their start value once the load stops.
[[listeners]]
address = "127.0.0.1:{listen}"

[admin]
address = "127.0.0.1:{admin}"

[mirror]
timeout = "2s"

[upstreams.primary]
url = "http://127.0.0.1:{primary}"
connect_timeout = "1s"
response_timeout = "5s"
pool_idle_timeout = "2s"

[upstreams.shadow]
url = "http://127.0.0.1:{relay}"
connect_timeout = "1s"
response_timeout = "2s"
pool_idle_timeout = "2s"

[[routes]]
name = "default"
primary = "primary"

[routes.mirror]

[[routes.mirror.shadows]]
upstream = "shadow"
percent = 100
methods = ["GET", "POST"]
"""

RESTART_DOWN = 2.0    # seconds the primary stays down
RESTART_GRACE = 1.0   # after it is back, failures still count as the restart's


def start_backend(port, log):
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "backend", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_port(port)
    return proc


def cmd_run(a):
    os.makedirs(a.dir, exist_ok=True)
    ports = {k: free_port() for k in ("primary", "shadow", "relay", "listen", "admin")}
    procs, relay = [], None
    log = open(os.path.join(a.dir, "backends.log"), "ab")
    try:
        primary = start_backend(ports["primary"], log)
        procs.append(primary)
        procs.append(start_backend(ports["shadow"], log))
        relay = FlappingRelay(ports["relay"], ports["shadow"], a.phase)
        relay.start()
        config = os.path.join(a.dir, "soak.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(**ports))
        proxy_log = open(os.path.join(a.dir, "shadowtap.log"), "ab")
        proxy = subprocess.Popen([a.bin, "run", "--config", config], stdout=proxy_log, stderr=subprocess.STDOUT,
                                 env={**os.environ, "RUST_LOG": "warn"})
        procs.append(proxy)
        wait_port(ports["admin"])
        sampler = Sampler(proxy.pid, a.sample_every, {p: k for k, p in ports.items()})
        start_sample, start_fds = sampler.one(), sampler.fd_kinds()
        errors_before = total(metrics(ports["admin"]), "shadowtap_proxy_errors_total")
        print(f"soak: {a.duration:.0f} s, {a.rate} req/s over {a.connections} connections, shadow states "
              f"{'/'.join(STATES)} every {a.phase:.0f} s; shadowtap pid {proxy.pid}, "
              f"RSS {start_sample[1]} KiB, {start_sample[2]} fds", flush=True)

        load = Load(ports["listen"], a.rate, a.connections)
        t0 = time.monotonic()
        sampler.start()
        load.start()
        time.sleep(a.duration / 2)
        # The primary restarts once, half way.
        window_start = time.monotonic()
        primary.send_signal(signal.SIGTERM)
        primary.wait(10)
        time.sleep(RESTART_DOWN)
        primary = start_backend(ports["primary"], log)
        procs.append(primary)
        window_end = time.monotonic() + RESTART_GRACE
        print(f"soak: primary restarted at {window_start - t0:.1f} s, back after "
              f"{window_end - RESTART_GRACE - window_start:.1f} s", flush=True)
        time.sleep(max(0.0, t0 + a.duration - time.monotonic()))
        load.stop()
        relay.calm()
        after_load = time.monotonic()
        final = settle(ports["admin"], 60)
        # Idle pooled connections close after pool_idle_timeout (2 s): wait for the fds.
        fds_deadline = time.monotonic() + 15
        while sampler.one()[2] > start_sample[2] and time.monotonic() < fds_deadline:
            time.sleep(0.5)
        sampler.stop()
        end_sample, end_fds = sampler.one(), sampler.fd_kinds()
        final = settle(ports["admin"], 10)
        result = report(a, load, relay, sampler, (start_sample, start_fds), (end_sample, end_fds), final, errors_before,
                        (window_start, window_end), t0, after_load)
    finally:
        if relay is not None:
            relay.close()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if all(c["ok"] for c in result["checks"].values()) else 1


def report(a, load, relay, sampler, start, end, final, errors_before, window, t0, after_load):
    w0, w1 = window
    (start, start_fds), (end, end_fds) = start, end
    in_window = [f for f in load.failures if f[1] >= w0 and f[0] <= w1]
    outside = [f for f in load.failures if not (f[1] >= w0 and f[0] <= w1)]
    not_502 = [f for f in in_window if f[2] != 502]
    counted = total(final, "shadowtap_proxy_errors_total") - errors_before
    routed = total(final, "shadowtap_requests_total", route="default")
    outs = outcomes(final)
    sampled = sum(outs.values())
    g = gauges(final)
    # RSS after a warm-up of a tenth of the run (allocator arenas, pools filling).
    warm = t0 + 0.1 * (after_load - t0)
    points = [(t - t0, rss) for t, rss, _ in sampler.samples if warm <= t <= after_load]
    rss_slope = slope(points) * 60   # KiB per minute
    growth = rss_slope * (points[-1][0] - points[0][0]) / 60 if len(points) >= 2 else 0.0
    rss_limit = max(a.rss_limit_mib * 1024, 0.1 * start[1])
    peak = max((rss for _, rss, _ in sampler.samples), default=start[1])
    checks = {
        "live": {
            "ok": not outside and not not_502 and len(in_window) == counted,
            "says": f"{load.sent} requests ({load.gets} GET, {load.posts} POST), {load.ok} whole; "
                    f"{len(outside)} failed outside the restart window, {len(in_window)} in it "
                    f"({len(not_502)} not a 502), {counted:.0f} counted by the proxy",
        },
        "accounting": {
            "ok": sampled == routed == load.sent,
            "says": f"sampled {routed:.0f} (requests of the route; the client sent {load.sent}) "
                    f"= sum of outcomes {sampled}: {json.dumps({k: v for k, v in outs.items() if v})}",
        },
        "rss": {
            "ok": growth <= rss_limit,
            "says": f"start {start[1]} KiB, peak {peak} KiB, end {end[1]} KiB; slope after warm-up "
                    f"{rss_slope:+.1f} KiB/min, fitted growth {growth:+.0f} KiB (limit {rss_limit:.0f})",
        },
        "fds": {
            "ok": end[2] <= start[2],
            "says": f"start {start[2]}, end {end[2]}" + (
                "" if end[2] <= start[2] else f" (start {json.dumps(start_fds)}, end {json.dumps(end_fds)})"),
        },
        "gauges": {
            "ok": all(v == 0 for v in g.values()),
            "says": ", ".join(f"{k} {v:.0f}" for k, v in g.items()),
        },
    }
    compared = {r: int(total(final, "shadowtap_comparisons_total", result=r))
                for r in ("match", "diverged", "noise_only", "unjudged")}
    print("soak: shadow states seen: " + " ".join(
        f"{t - t0:.0f}s:{s}" for t, s in relay.changes if t0 <= t <= after_load))
    print(f"soak: comparisons {json.dumps(compared)}; circuit-breaker skips {outs['skipped_circuit_open']}")
    for f in (outside + not_502)[:10]:
        print(f"soak:   failure at {f[0] - t0:.2f}-{f[1] - t0:.2f} s: {f[3]}")
    for name, c in checks.items():
        print(f"soak: {'PASS' if c['ok'] else 'FAIL'} {name:<10} {c['says']}")
    return {
        "duration_s": a.duration, "rate": a.rate, "connections": a.connections, "phase_s": a.phase,
        "restart_window_s": [w0 - t0, w1 - t0], "sent": load.sent, "ok": load.ok,
        "failures": [{"start_s": f[0] - t0, "end_s": f[1] - t0, "status": f[2], "what": f[3]}
                     for f in load.failures[:1000]],
        "outcomes": outs, "comparisons": compared, "gauges": g,
        "rss_kib": {"start": start[1], "peak": peak, "end": end[1], "slope_kib_per_min": rss_slope},
        "fds": {"start": start[2], "end": end[2]},
        "samples": [[round(t - t0, 1), rss, fds] for t, rss, fds in sampler.samples],
        "checks": checks,
    }


def duration(text):
    """`90`, `90s`, `10m`, `1h` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bin", required=True)
    r.add_argument("--duration", type=duration, required=True)
    r.add_argument("--rate", type=int, default=200)
    r.add_argument("--connections", type=int, default=8)
    r.add_argument("--phase", type=duration, default=30.0)
    r.add_argument("--sample-every", type=float, default=1.0)
    r.add_argument("--rss-limit-mib", type=float, default=16.0)
    r.add_argument("--dir", default="/tmp/shadowtap-soak")
    r.add_argument("--out")
    b = sub.add_parser("backend")
    b.add_argument("port", type=int)
    a = ap.parse_args()
    if a.cmd == "backend":
        return cmd_backend(a)
    return cmd_run(a)


if __name__ == "__main__":
    sys.exit(main())
