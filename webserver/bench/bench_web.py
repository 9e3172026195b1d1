#!/usr/bin/env python3
"""make bench-web: webserver vs nginx (driven by wrk), loadgen vs wrk, and c10k memory.

loadgen and wrk are compared by their CPU time per request driving the same nginx,
beside floor_client.c: a client that does nothing but send, receive and wait, whose
time per request is what the kernel charges any client (the floor).

Besides the saturated runs, both servers are driven at fixed rates (25, 50 and 75% of
nginx's saturated requests/s, from the saturated runs of the same configuration) by
loadgen's constant-rate mode, whose latency is measured from each request's intended
send time (coordinated-omission corrected); these record p99 and p99.9, beside those
of floor_server.c at the same rates: a server that answers each request with one send
and does nothing else, whose latency is what the machine itself adds (the floor).

Writes target/bench/web.json in the format of docs/ARCHITECTURE.md. Medians of
alternating runs (ours, anchor, ours, anchor, ...). Installs nginx and wrk with apt
when missing. Run from the repository root after `cargo build --release -p webserver
-p loadgen`.
"""

import functools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchkit"))
import benchkit as bk  # noqa: E402

RUNS = int(os.environ.get("BENCH_WEB_RUNS", "3"))
record = functools.partial(bk.record, runs=RUNS)
SECS = int(os.environ.get("BENCH_WEB_SECS", "5"))
C10K_SECS = int(os.environ.get("BENCH_WEB_C10K_SECS", "30"))
RATE_SECS = int(os.environ.get("BENCH_WEB_RATE_SECS", "5"))
# Runs of each server at each fixed rate: a 5-second run's p99.9 is set by the one or
# two longest stalls of the machine in it (every server's, the floor server's too), so
# these take more runs than the saturated ones.
RATE_RUNS = int(os.environ.get("BENCH_WEB_RATE_RUNS", "5"))
# Rounds of the client comparison (loadgen, wrk, the floor client): CPU time per
# request moves by up to 10% from one fresh nginx to the next, more than the other
# figures do.
CLIENT_RUNS = int(os.environ.get("BENCH_WEB_CLIENT_RUNS", "5"))
RATE_PERCENTS = (25, 50, 75)  # of nginx's saturated requests/s
CONNS = 64
ROOT = os.path.abspath("www")
WEB = os.path.abspath("target/release/webserver")
LOADGEN = os.path.abspath("target/release/loadgen")
NCPU = os.cpu_count() or 1


def ensure_tools():
    missing = [p for p in ("nginx", "wrk") if shutil.which(p) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Ours:
    name = "webserver"

    def __init__(self, cores):
        self.port = free_port()
        cmd = bk.pinned(0 if cores == 1 else None,
                        [WEB, "--root", ROOT, "--listen", f"127.0.0.1:{self.port}",
                         "--cores", str(cores)])
        # Its report (a few lines, printed on SIGTERM) goes to a file, not a pipe that
        # nothing reads while it runs.
        self.out = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(cmd, stdout=self.out)
        wait_port(self.port)
        self.split = None

    def pid(self):
        return self.p.pid

    def stop(self):
        bk.stop_process(self.p, signal.SIGTERM)
        # How the kernel spread the connections over the cores' SO_REUSEPORT
        # listeners, recorded beside each run's p99.
        self.out.seek(0)
        for line in self.out:
            if line.startswith("connections per core: "):
                self.split = [int(n) for n in line.split(": ")[1].split(", ")]
        self.out.close()


class Nginx:
    name = "nginx"

    def __init__(self, workers):
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        # Workers pinned as the web server pins its cores (`--pin-cores auto`): with
        # a client sharing the CPUs, two unpinned workers sometimes end up on one
        # CPU, and each then waits out the other's time slices.
        conf = bk.nginx_conf(workers, NCPU > 1, f"127.0.0.1:{self.port}",
                             ROOT, self.dir)
        with open(f"{self.dir}/nginx.conf", "w") as f:
            f.write(conf)
        self.p = subprocess.Popen(["nginx", "-c", f"{self.dir}/nginx.conf", "-p", self.dir])
        wait_port(self.port)

    def stop(self):
        bk.stop_process(self.p, signal.SIGQUIT)
        shutil.rmtree(self.dir, ignore_errors=True)


class FloorServer:
    """floor_server.c (built by `build_floor`) serving www/files/1k.txt on `threads`
    threads, placed on the CPUs as the web server is."""
    name = "floor server"

    def __init__(self, binary, threads):
        self.port = free_port()
        cmd = [binary, str(self.port), os.path.join(ROOT, "files", "1k.txt"), str(threads)]
        self.p = subprocess.Popen(bk.pinned(0 if threads == 1 else None, cmd))
        wait_port(self.port)

    def stop(self):
        bk.stop_process(self.p, signal.SIGTERM)


def wrk(port, path, threads, pin):
    cmd = ["wrk", f"-t{threads}", f"-c{CONNS}", f"-d{SECS}s", "--latency",
           f"http://127.0.0.1:{port}{path}"]
    cmd = bk.pinned(1 if pin else None, cmd)
    return bk.parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def loadgen(port, path, threads, conns=CONNS, secs=SECS, rate=None, pin=True):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [LOADGEN, "-c", str(conns), "-t", str(threads), "-d", f"{secs}s",
               "--json", f.name, f"http://127.0.0.1:{port}{path}"]
        if rate:
            cmd[1:1] = ["-R", str(rate), "--timeout", "10s"]
        cmd = bk.pinned(1 if pin else None, cmd)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
        return json.load(open(f.name))


def build_floor(name):
    """Compiles `name`.c (beside this script) into target/bench; its path."""
    out = os.path.abspath(f"target/bench/{name}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.c")
    subprocess.run(["cc", "-O2", "-pthread", "-o", out, src], check=True)
    return out


def floor_client(binary, port, path):
    """One floor-client run like `wrk` above (same connections, seconds, CPU)."""
    cmd = bk.pinned(1, [binary, str(port), path, str(CONNS), str(SECS)])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    requests, secs = int(out[0]), float(out[3].rstrip("s"))
    return {"requests": requests, "rps": requests / secs}


def fixed_rate(port, path, threads, rate, pin):
    """One constant-rate loadgen run of RATE_SECS at `rate` requests/s: p99 and p99.9
    latency in microseconds (from intended send times), achieved requests/s, errors."""
    r = loadgen(port, path, threads, secs=RATE_SECS, rate=rate, pin=pin)
    if r["requests"] == 0:
        raise RuntimeError(f"no response at {rate} requests/s on port {port}: {r['errors']}")
    lat = r["latency_us"]
    return {"p99_us": lat["p99"], "p999_us": lat["p999"], "rps": r["requests_per_sec"],
            "errors": sum(r["errors"].values())}


def main():
    ensure_tools()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    records = []

    # (label, server cores, driver pinned to CPU 1 and the 1-core servers to CPU 0)
    settings = (("1core", 1, True), ("allcores", NCPU, False))
    capacity = {}  # label -> nginx's median saturated requests/s on the 1 KiB file
    for label, cores, pin in settings:
        bench = f"web_1k_{label}"
        threads = 1 if pin else NCPU
        servers = []

        def start_ours():
            servers.append(Ours(cores))
            return servers[-1]

        ours, ngx = bk.alternate(RUNS, [start_ours, lambda: Nginx(cores)],
                                 lambda s: wrk(s.port, "/files/1k.txt", threads, pin))
        params = {"file": "www/files/1k.txt", "connections": CONNS, "server_cores": cores,
                  "driver": "wrk", "keepalive": True, "seconds": SECS}
        if cores > 1:
            # Run by run: how the connections were split, and the p99 that came of it.
            params["ours_connections_per_core"] = [s.split for s in servers]
            params["ours_p99_us_per_run"] = [r["p99_us"] for r in ours]
        records.append(record(bench, "requests_per_sec", "higher", bk.med(ours, "rps"),
                              "nginx", bk.med(ngx, "rps"), params))
        records.append(record(bench, "p99_us", "lower", bk.med(ours, "p99_us"),
                              "nginx", bk.med(ngx, "p99_us"), params))
        capacity[label] = bk.med(ngx, "rps")
        print(json.dumps(records[-2:]), flush=True)

    # Fixed-rate latency: at saturation the two servers do different amounts of work,
    # so both are also driven at the same constant rates, fractions of nginx's capacity
    # just measured in the same configuration, by loadgen -R with the same connections,
    # threads and pinning as wrk above; latency counts from each request's intended
    # send time, so a stall is charged to every request it delays. The floor server
    # runs beside them at the same rates: it answers each request with one send and
    # does nothing else, so its latency is what the machine adds by itself (waking
    # idle CPUs, loopback's softirq work, the client), which no server goes below.
    floor_server = build_floor("floor_server")
    for label, cores, pin in settings:
        threads = 1 if pin else NCPU
        if capacity[label] <= 0:
            raise RuntimeError(f"no nginx capacity measured for web_1k_{label}")
        for pct in RATE_PERCENTS:
            bench = f"web_1k_rate_{pct}_{label}"
            rate = max(1, round(capacity[label] * pct / 100))
            ours, ngx, flo = bk.alternate(
                RATE_RUNS, [lambda: Ours(cores), lambda: Nginx(cores),
                       lambda: FloorServer(floor_server, cores)],
                lambda s: fixed_rate(s.port, "/files/1k.txt", threads, rate, pin))
            for name, runs in (("webserver", ours), ("nginx", ngx), ("floor server", flo)):
                for r in runs:
                    if r["errors"] or r["rps"] < 0.95 * rate:
                        print(f"warning: {bench} {name}: {r['rps']:.0f} of {rate} "
                              f"requests/s, {r['errors']} errors", file=sys.stderr)
            params = {"file": "www/files/1k.txt", "connections": CONNS, "server_cores": cores,
                      "driver": "loadgen -R", "driver_threads": threads, "keepalive": True,
                      "seconds": RATE_SECS, "rate": rate, "percent_of_capacity": pct,
                      "capacity_rps": capacity[label],
                      "capacity_from": f"web_1k_{label} nginx requests_per_sec (wrk)",
                      "achieved_rps_ours": bk.med(ours, "rps"),
                      "achieved_rps_anchor": bk.med(ngx, "rps"),
                      "failed_requests_ours": sum(r["errors"] for r in ours),
                      "failed_requests_anchor": sum(r["errors"] for r in ngx),
                      "floor_server": "webserver/bench/floor_server.c",
                      "floor_server_p99_us": bk.med(flo, "p99_us"),
                      "floor_server_p999_us": bk.med(flo, "p999_us")}
            for metric in ("p99_us", "p999_us"):
                records.append(bk.record(bench, metric, "lower", bk.med(ours, metric),
                                         "nginx", bk.med(ngx, metric), params,
                                         runs=RATE_RUNS))
            print(json.dumps(records[-2:]), flush=True)

    size = os.path.getsize("www/files/1m.txt")
    ours, ngx = bk.alternate(RUNS, [lambda: Ours(1), lambda: Nginx(1)],
                             lambda s: wrk(s.port, "/files/1m.txt", 1, True))
    params = {"file": "www/files/1m.txt", "connections": CONNS, "server_cores": 1,
              "driver": "wrk", "seconds": SECS}
    records.append(record("web_1m_1core", "bytes_per_s", "higher", bk.med(ours, "rps") * size,
                          "nginx", bk.med(ngx, "rps") * size, params))
    # The client is what saturates here; p99 shows whether every connection is served
    # at the same pace (a few slow connections make a long tail at the same throughput).
    records.append(record("web_1m_1core", "p99_us", "lower", bk.med(ours, "p99_us"),
                          "nginx", bk.med(ngx, "p99_us"), params))
    print(json.dumps(records[-2:]), flush=True)

    # Both clients drive the same one-worker nginx, each pinned to the other CPU. The
    # target is what saturates, so requests/s compares little but the target; the
    # client's CPU time per request (user + system, loopback's softirq work for what
    # it sends included) is what tells the two clients apart. The floor client runs
    # beside them: the least any epoll client pays per request, which shows how much
    # of each client's time is its own.
    # Each round starts a fresh nginx and rotates which client goes first, so that
    # none always meets the target cold.
    floor = build_floor("floor_client")
    clients = [
        (lambda port: loadgen(port, "/files/1k.txt", 1), "requests_per_sec", []),
        (lambda port: wrk(port, "/files/1k.txt", 1, True), "rps", []),
        (lambda port: floor_client(floor, port, "/files/1k.txt"), "rps", []),
    ]
    for i in range(CLIENT_RUNS):
        srv = Nginx(1)
        try:
            for run, rps, out in clients[i % 3:] + clients[:i % 3]:
                r, cpu = bk.with_child_cpu(lambda: run(srv.port))
                out.append({"rps": r[rps], "cpu_us": cpu * 1e6 / r["requests"]})
        finally:
            srv.stop()
    lg, wk, fl = (out for _, _, out in clients)
    # Rounds differ by up to 10% alike for all three clients (each meets a fresh
    # nginx); the ratio within each round shows the spread of the comparison itself.
    params = {"target": "nginx, 1 worker, 1 KiB", "connections": CONNS, "threads": 1,
              "seconds": SECS,
              "wrk_over_loadgen_cpu_per_round": [w["cpu_us"] / l["cpu_us"]
                                                 for l, w in zip(lg, wk)]}
    client_record = functools.partial(bk.record, runs=CLIENT_RUNS)
    records.append(client_record("loadgen_vs_wrk", "requests_per_sec", "higher",
                                 bk.med(lg, "rps"), "wrk", bk.med(wk, "rps"), params))
    records.append(client_record("loadgen_vs_wrk", "client_cpu_us_per_request", "lower",
                                 bk.med(lg, "cpu_us"), "wrk", bk.med(wk, "cpu_us"), params))
    records.append(client_record(
        "loadgen_vs_floor", "client_cpu_us_per_request", "lower",
        bk.med(lg, "cpu_us"), "floor client", bk.med(fl, "cpu_us"),
        dict(params, floor_client="webserver/bench/floor_client.c",
             floor_requests_per_sec=bk.med(fl, "rps"),
             wrk_over_floor=bk.med(wk, "cpu_us") / bk.med(fl, "cpu_us"))))
    print(json.dumps(records[-3:]), flush=True)

    # c10k: 10,000 keep-alive connections held for C10K_SECS, each making requests
    # at a constant total rate; memory from the server's VmHWM minus its idle RSS.
    srv = Ours(NCPU)
    try:
        time.sleep(0.5)
        idle = bk.proc_kb(srv.pid(), "VmRSS")
        r = loadgen(srv.port, "/files/1k.txt", NCPU, conns=10000, secs=C10K_SECS,
                    rate=20000, pin=False)
        peak = bk.proc_kb(srv.pid(), "VmHWM")
    finally:
        srv.stop()
    failed = sum(r["errors"].values())
    rec = record("c10k", "bytes_per_connection", "lower", (peak - idle) * 1024 / 10000,
                 "none", None, {"connections": 10000, "seconds": C10K_SECS,
                                "rate": 20000, "requests": r["requests"],
                                "failed_requests": failed, "peak_rss_bytes": peak * 1024,
                                "idle_rss_bytes": idle * 1024}, runs=1)
    records.append(rec)
    print(json.dumps(rec), flush=True)

    os.makedirs("target/bench", exist_ok=True)
    with open("target/bench/web.json", "w") as f:
        json.dump(records, f, indent=1)
    print(f"{'bench':24} {'metric':18} {'ours':>14} {'anchor':>14} {'ratio':>7} better "
          f"{'floor server':>12}")
    for r in records:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] else "-"
        anchor = f"{r['anchor_value']:.1f}" if r["anchor_value"] else "-"
        floor = r["params"].get(f"floor_server_{r['metric']}")
        floor = f"{floor:12.1f}" if floor is not None else ""
        print(f"{r['bench']:24} {r['metric']:18} {r['ours']:14.1f} {anchor:>14} {ratio:>7} "
              f"{r['better']:6} {floor}")


if __name__ == "__main__":
    sys.exit(main())
