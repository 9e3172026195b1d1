#!/usr/bin/env python3
"""make bench-web: webserver vs nginx (driven by wrk), loadgen vs wrk, and c10k memory.

Writes target/bench/web.json in the format of ../shared/DESIGN.md. Medians of
alternating runs (ours, anchor, ours, anchor, ...). Installs nginx and wrk with apt
when missing. Run from the repository root after `cargo build --release -p webserver
-p loadgen`.
"""

import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("BENCH_WEB_RUNS", "3"))
SECS = int(os.environ.get("BENCH_WEB_SECS", "5"))
C10K_SECS = int(os.environ.get("BENCH_WEB_C10K_SECS", "30"))
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
        cmd = [WEB, "--root", ROOT, "--listen", f"127.0.0.1:{self.port}", "--cores", str(cores)]
        if cores == 1 and NCPU > 1:
            cmd = ["taskset", "-c", "0"] + cmd
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def pid(self):
        return self.p.pid

    def stop(self):
        stop_process(self.p, signal.SIGTERM)


class Nginx:
    name = "nginx"

    def __init__(self, workers):
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        conf = f"""
worker_processes {workers};
{"worker_cpu_affinity 1;" if workers == 1 and NCPU > 1 else ""}
worker_rlimit_nofile 65536;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  open_file_cache max=1024 inactive=20s;
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{self.port} reuseport; root {ROOT}; }}
}}
"""
        with open(f"{self.dir}/nginx.conf", "w") as f:
            f.write(conf)
        self.p = subprocess.Popen(["nginx", "-c", f"{self.dir}/nginx.conf", "-p", self.dir])
        wait_port(self.port)

    def stop(self):
        stop_process(self.p, signal.SIGQUIT)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_process(p, sig):
    """Asks `p` to stop with `sig`; kills it if it has not exited within 15 s."""
    p.send_signal(sig)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(port, path, threads, pin):
    cmd = ["wrk", f"-t{threads}", f"-c{CONNS}", f"-d{SECS}s", "--latency",
           f"http://127.0.0.1:{port}{path}"]
    if pin and NCPU > 1:
        cmd = ["taskset", "-c", "1"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = to_us(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_us": p99, "errors": int(errors.group(1)) if errors else 0}


def loadgen(port, path, threads, conns=CONNS, secs=SECS, rate=None, pin=True):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [LOADGEN, "-c", str(conns), "-t", str(threads), "-d", f"{secs}s",
               "--json", f.name, f"http://127.0.0.1:{port}{path}"]
        if rate:
            cmd[1:1] = ["-R", str(rate), "--timeout", "10s"]
        if pin and NCPU > 1:
            cmd = ["taskset", "-c", "1"] + cmd
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
        return json.load(open(f.name))


def record(bench, metric, better, ours, anchor, anchor_value, params):
    return {"bench": bench, "metric": metric, "better": better, "ours": ours,
            "anchor": anchor, "anchor_value": anchor_value,
            "ratio": ours / anchor_value if anchor_value else None,
            "runs": RUNS, "params": params}


def alternate(start_a, start_b, measure):
    a, b = [], []
    for _ in range(RUNS):
        for start, out in ((start_a, a), (start_b, b)):
            srv = start()
            try:
                out.append(measure(srv))
            finally:
                srv.stop()
    return a, b


def med(xs, key):
    return statistics.median(x[key] for x in xs)


def main():
    ensure_tools()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    records = []

    for bench, cores, pin in (("web_1k_1core", 1, True), ("web_1k_allcores", NCPU, False)):
        threads = 1 if pin else NCPU
        ours, ngx = alternate(lambda: Ours(cores), lambda: Nginx(cores),
                              lambda s: wrk(s.port, "/files/1k.txt", threads, pin))
        params = {"file": "www/files/1k.txt", "connections": CONNS, "server_cores": cores,
                  "driver": "wrk", "keepalive": True, "seconds": SECS}
        records.append(record(bench, "requests_per_sec", "higher", med(ours, "rps"),
                              "nginx", med(ngx, "rps"), params))
        records.append(record(bench, "p99_us", "lower", med(ours, "p99_us"),
                              "nginx", med(ngx, "p99_us"), params))
        print(json.dumps(records[-2:]), flush=True)

    size = os.path.getsize("www/files/1m.txt")
    ours, ngx = alternate(lambda: Ours(1), lambda: Nginx(1),
                          lambda s: wrk(s.port, "/files/1m.txt", 1, True))
    records.append(record("web_1m_1core", "bytes_per_s", "higher", med(ours, "rps") * size,
                          "nginx", med(ngx, "rps") * size,
                          {"file": "www/files/1m.txt", "connections": CONNS, "server_cores": 1,
                           "driver": "wrk", "seconds": SECS}))
    print(json.dumps(records[-1]), flush=True)

    lg, wk = [], []
    for _ in range(RUNS):
        srv = Nginx(1)
        try:
            lg.append(loadgen(srv.port, "/files/1k.txt", 1)["requests_per_sec"])
            wk.append(wrk(srv.port, "/files/1k.txt", 1, True)["rps"])
        finally:
            srv.stop()
    records.append(record("loadgen_vs_wrk", "requests_per_sec", "higher",
                          statistics.median(lg), "wrk", statistics.median(wk),
                          {"target": "nginx, 1 worker, 1 KiB", "connections": CONNS,
                           "threads": 1, "seconds": SECS}))
    print(json.dumps(records[-1]), flush=True)

    # c10k: 10,000 keep-alive connections held for C10K_SECS, each making requests
    # at a constant total rate; memory from the server's VmHWM minus its idle RSS.
    srv = Ours(NCPU)
    try:
        time.sleep(0.5)
        idle = proc_kb(srv.pid(), "VmRSS")
        r = loadgen(srv.port, "/files/1k.txt", NCPU, conns=10000, secs=C10K_SECS,
                    rate=20000, pin=False)
        peak = proc_kb(srv.pid(), "VmHWM")
    finally:
        srv.stop()
    failed = sum(r["errors"].values())
    rec = record("c10k", "bytes_per_connection", "lower", (peak - idle) * 1024 / 10000,
                 "none", None, {"connections": 10000, "seconds": C10K_SECS,
                                "rate": 20000, "requests": r["requests"],
                                "failed_requests": failed, "peak_rss_bytes": peak * 1024,
                                "idle_rss_bytes": idle * 1024})
    rec["runs"] = 1
    records.append(rec)
    print(json.dumps(rec), flush=True)

    os.makedirs("target/bench", exist_ok=True)
    with open("target/bench/web.json", "w") as f:
        json.dump(records, f, indent=1)
    print(f"{'bench':18} {'metric':18} {'ours':>14} {'anchor':>14} {'ratio':>7}")
    for r in records:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] else "-"
        anchor = f"{r['anchor_value']:.1f}" if r["anchor_value"] else "-"
        print(f"{r['bench']:18} {r['metric']:18} {r['ours']:14.1f} {anchor:>14} {ratio:>7}")


def proc_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found")


if __name__ == "__main__":
    sys.exit(main())
