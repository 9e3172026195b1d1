#!/usr/bin/env python3
"""make bench-user: the user-space TCP path against the kernel path, side by side.

In a private namespace (made with setup-scripts/setup.sh, removed at the end) holding
two multi-queue TUN devices, runs, alternating ours and the anchor, medians of
BENCH_USER_RUNS runs of BENCH_USER_SECS seconds:

- user_web_1k_1core: webserver --net user vs webserver --net kernel (on the namespace's
  loopback), both on 1 core, driven by the same wrk (-t1 -c64, kernel TCP, inside the
  namespace) fetching the 1 KiB file: requests/s and p99;
- user_web_1m_1core: the same with the 1 MiB file: bytes/s (the kernel path uses
  sendfile);
- user_web_1k_2core: both on 2 cores (wrk -t2): requests/s, with our 2-core/1-core ratio;
- user_loadgen: loadgen --net user vs loadgen --net kernel driving the same nginx in
  the namespace: requests/s;
- user_loadgen_vs_wrk: loadgen --net user vs wrk driving that nginx: requests/s. Both
  records give each client's CPU time per request and the target's: on the kernel's
  loopback the client's receive work runs on the sending (target's) core, on the
  user-space stack on the client's own;
- user_c10k: 10,000 keep-alive connections for BENCH_USER_C10K_SECS seconds at a
  constant rate over each path: bytes per connection (the server's peak RSS over its
  idle RSS; the user path's includes the TCP stack's buffers, the kernel path's does
  not include the kernel's socket memory);
- user_syscalls: system calls per HTTP request of each server under the 1 KiB load
  (strace -c -f over a fixed number of requests).

Writes target/bench/user.json in the format of docs/ARCHITECTURE.md. Installs wrk, nginx
and strace with apt when missing. Run as root from the repository root after
`cargo build --release -p webserver -p loadgen`.
"""

import functools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchkit"))
import benchkit as bk  # noqa: E402

RUNS = int(os.environ.get("BENCH_USER_RUNS", "3"))
record = functools.partial(bk.record, runs=RUNS)
# Comma-separated bench names to run (default: all).
ONLY = [b for b in os.environ.get("BENCH_USER_ONLY", "").split(",") if b]
SECS = int(os.environ.get("BENCH_USER_SECS", "5"))
C10K_SECS = int(os.environ.get("BENCH_USER_C10K_SECS", "30"))
CONNS = 64
ROOT = os.path.abspath("www")
WEB = os.path.abspath("target/release/webserver")
LOADGEN = os.path.abspath("target/release/loadgen")
SCRIPTS = os.path.abspath("setup-scripts")
NCPU = os.cpu_count() or 1
NS = "tcpst-bench"
DEV = "tbsrv0"
CLIENT_DEV = "tbcli0"
STACK = "10.77.0.2"
KERNEL = "10.77.0.1"
CLIENT_STACK = "10.77.1.2"
CLIENT_KERNEL = "10.77.1.1"
OFFLOAD = ("checksum and TCP segmentation offload (virtio-net headers), transmit batched on "
           "io_uring, packets with 16 KiB or more of payload by writev from the send buffer")


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, **kw)


def ensure_tools():
    missing = [p for p in ("nginx", "wrk", "strace") if shutil.which(p) is None]
    if missing:
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", *missing)


def setup():
    sh(f"{SCRIPTS}/setup.sh", "--ns", NS, "--dev", DEV, "--client-dev", CLIENT_DEV,
       "--no-host-link", stdout=subprocess.DEVNULL)


def teardown():
    subprocess.run([f"{SCRIPTS}/teardown.sh", "--ns", NS], stdout=subprocess.DEVNULL)


def inside(cmd):
    """`cmd` run inside the namespace."""
    return ["ip", "netns", "exec", NS, *cmd]


def wait_listening(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        out = subprocess.run(inside(["ss", "-Hltn", f"sport = :{port}"]), capture_output=True,
                             text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} in {NS}")


class UserServer:
    """webserver --net user on the namespace's server device."""
    name = "webserver --net user"

    def __init__(self, cores, pin=0):
        self.url = f"http://{STACK}:8080"
        cmd = [WEB, "--root", ROOT, "--net", "user", "--netns", NS, "--tun", DEV,
               "--cores", str(cores)]
        self.out = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(bk.pinned(pin if cores == 1 else None, cmd), stdout=self.out)
        end = time.time() + 10
        while True:
            self.out.seek(0)
            if "Serving" in self.out.read():
                break
            if self.p.poll() is not None or time.time() > end:
                raise RuntimeError("webserver --net user did not start")
            time.sleep(0.05)

    def pid(self):
        return self.p.pid

    def stop(self):
        bk.stop_process(self.p, signal.SIGTERM)


class KernelServer:
    """webserver --net kernel inside the namespace, on its loopback."""
    name = "webserver --net kernel"

    def __init__(self, cores, pin=0):
        self.port = 8090
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [WEB, "--root", ROOT, "--listen", f"127.0.0.1:{self.port}", "--cores", str(cores)]
        self.p = subprocess.Popen(inside(bk.pinned(pin if cores == 1 else None, cmd)),
                                  stdout=subprocess.DEVNULL)
        wait_listening(self.port)

    def pid(self):
        # `ip netns exec` execs the command: same pid.
        return self.p.pid

    def stop(self):
        bk.stop_process(self.p, signal.SIGTERM)


class Nginx:
    """nginx inside the namespace, one worker, on every address."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-user-nginx-")
        self.port = 8091
        conf = bk.nginx_conf(1, NCPU > 1, self.port, ROOT, self.dir)
        with open(f"{self.dir}/nginx.conf", "w") as f:
            f.write(conf)
        self.p = subprocess.Popen(inside(["nginx", "-c", f"{self.dir}/nginx.conf", "-p", self.dir]))
        wait_listening(self.port)

    def cpu_s(self):
        """CPU seconds its worker has used so far."""
        worker = subprocess.run(["pgrep", "-P", str(self.p.pid)], capture_output=True,
                                text=True, check=True).stdout.split()[0]
        return bk.proc_cpu_s(int(worker))

    def stop(self):
        bk.stop_process(self.p, signal.SIGQUIT)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(url, threads, pin):
    cmd = ["wrk", f"-t{threads}", f"-c{CONNS}", f"-d{SECS}s", "--latency", url]
    out = subprocess.run(inside(bk.pinned(1 if pin else None, cmd)), capture_output=True,
                         text=True, check=True).stdout
    return bk.parse_wrk(out)


def loadgen(net, url, threads=1, conns=CONNS, secs=SECS, rate=None, pin=1):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [LOADGEN, "-c", str(conns), "-t", str(threads), "-d", f"{secs}s",
               "--json", f.name]
        if rate:
            cmd += ["-R", str(rate), "--timeout", "10s"]
        if net == "user":
            cmd += ["--net", "user", "--netns", NS, "--tun", CLIENT_DEV]
            cmd = bk.pinned(pin, cmd)
        else:
            cmd = inside(bk.pinned(pin, cmd))
        subprocess.run(cmd + [url], stdout=subprocess.DEVNULL, check=False)
        return json.load(open(f.name))


def want(bench):
    return not ONLY or bench in ONLY


def c10k(server):
    """Peak RSS growth per connection while 10,000 keep-alive connections make
    requests at a constant rate; and whether every request was answered."""
    srv = server(NCPU, None)
    try:
        time.sleep(0.5)
        idle = bk.proc_kb(srv.pid(), "VmRSS")
        r = loadgen("kernel", f"{srv.url}/files/1k.txt", threads=NCPU, conns=10000,
                    secs=C10K_SECS, rate=20000, pin=None)
        peak = bk.proc_kb(srv.pid(), "VmHWM")
    finally:
        srv.stop()
    return {"bytes": (peak - idle) * 1024 / 10000, "requests": r["requests"],
            "failed": sum(r["errors"].values()), "peak": peak * 1024, "idle": idle * 1024}


def syscalls_per_request(server, requests=100_000):
    """System calls per request of `server` under a 64-connection 1 KiB load of exactly
    `requests` requests, counted by strace (which slows the server: the figure is for
    comparison between the two paths)."""
    srv = server(1, 0)
    trace = tempfile.NamedTemporaryFile(suffix=".strace")
    try:
        st = subprocess.Popen(["strace", "-f", "-c", "-o", trace.name, "-p", str(srv.pid())],
                              stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            cmd = inside(bk.pinned(1, [LOADGEN, "-c", str(CONNS), "-t", "1", "-n", str(requests),
                                    "--json", f.name, f"{srv.url}/files/1k.txt"]))
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
            done = json.load(open(f.name))["requests"]
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
        text = open(trace.name).read()
        total = re.search(r"^100\.00\s+\S+\s+\S+\s+(\d+)", text, re.M)
        calls = int(total.group(1)) if total else 0
    finally:
        srv.stop()
        trace.close()
    return calls / max(done, 1)


def main():
    if os.geteuid() != 0:
        print("bench-user needs root (it makes a network namespace and TUN devices)",
              file=sys.stderr)
        return 2
    ensure_tools()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    teardown()
    setup()
    records = []
    base = {"connections": CONNS, "driver": "wrk (kernel TCP, inside the namespace)",
            "seconds": SECS, "offload": OFFLOAD}

    def emit(*recs):
        records.extend(recs)
        print(json.dumps(list(recs)), flush=True)

    try:
        one_core = None
        if want("user_web_1k_1core") or want("user_web_1k_2core"):
            ours, kern = bk.alternate(RUNS, [lambda: UserServer(1), lambda: KernelServer(1)],
                                      lambda s: wrk(f"{s.url}/files/1k.txt", 1, True))
            one_core = bk.med(ours, "rps")
            params = dict(base, file="www/files/1k.txt", server_cores=1, keepalive=True)
            if want("user_web_1k_1core"):
                emit(record("user_web_1k_1core", "requests_per_sec", "higher", one_core,
                            "webserver --net kernel", bk.med(kern, "rps"), params),
                     record("user_web_1k_1core", "p99_us", "lower", bk.med(ours, "p99_us"),
                            "webserver --net kernel", bk.med(kern, "p99_us"), params))

        if want("user_web_1m_1core"):
            size = os.path.getsize("www/files/1m.txt")
            ours, kern = bk.alternate(RUNS, [lambda: UserServer(1), lambda: KernelServer(1)],
                                      lambda s: wrk(f"{s.url}/files/1m.txt", 1, True))
            emit(record("user_web_1m_1core", "bytes_per_s", "higher", bk.med(ours, "rps") * size,
                        "webserver --net kernel (sendfile)", bk.med(kern, "rps") * size,
                        dict(base, file="www/files/1m.txt", server_cores=1)))

        if want("user_web_1k_2core"):
            ours, kern = bk.alternate(RUNS, [lambda: UserServer(2), lambda: KernelServer(2)],
                                      lambda s: wrk(f"{s.url}/files/1k.txt", 2, False))
            two_core = bk.med(ours, "rps")
            emit(record("user_web_1k_2core", "requests_per_sec", "higher", two_core,
                        "webserver --net kernel", bk.med(kern, "rps"),
                        dict(base, file="www/files/1k.txt", server_cores=2, wrk_threads=2,
                             machine_cpus=NCPU,
                             ours_2core_over_1core=two_core / one_core if one_core else None)))

        if want("user_loadgen") or want("user_loadgen_vs_wrk"):
            # Each client drives the same nginx on its own CPU; the target's CPU time per
            # request shows what each client's network costs the target's core.
            runs = {"user": [], "kernel": [], "wrk": []}
            for _ in range(RUNS):
                srv = Nginx()
                try:
                    url = f"http://{CLIENT_KERNEL}:{srv.port}/files/1k.txt"
                    for name, out in runs.items():
                        target = srv.cpu_s()
                        if name == "wrk":
                            r, cpu = bk.with_child_cpu(lambda: wrk(url, 1, True))
                        else:
                            r, cpu = bk.with_child_cpu(lambda: loadgen(name, url))
                            r = {"rps": r["requests_per_sec"], "requests": r["requests"]}
                        n = max(r["requests"], 1)
                        out.append({"rps": r["rps"], "client_us": cpu * 1e6 / n,
                                    "target_us": (srv.cpu_s() - target) * 1e6 / n})
                finally:
                    srv.stop()
            params = dict(base, target="nginx, 1 worker, in the namespace, 1 KiB", threads=1,
                          target_cpu_us_per_request={k: bk.med(v, "target_us")
                                                     for k, v in runs.items()},
                          client_cpu_us_per_request={k: bk.med(v, "client_us")
                                                     for k, v in runs.items()})
            if want("user_loadgen"):
                emit(record("user_loadgen", "requests_per_sec", "higher",
                            bk.med(runs["user"], "rps"), "loadgen --net kernel",
                            bk.med(runs["kernel"], "rps"), dict(params, driver="loadgen")))
            if want("user_loadgen_vs_wrk"):
                emit(record("user_loadgen_vs_wrk", "requests_per_sec", "higher",
                            bk.med(runs["user"], "rps"), "wrk (kernel TCP)",
                            bk.med(runs["wrk"], "rps"),
                            dict(params, driver="loadgen --net user")))

        if want("user_c10k"):
            user = c10k(lambda cores, pin: UserServer(cores, pin))
            kern = c10k(lambda cores, pin: KernelServer(cores, pin))
            emit(record("user_c10k", "bytes_per_connection", "lower", user["bytes"],
                        "webserver --net kernel (kernel socket memory not in RSS)",
                        kern["bytes"],
                        {"connections": 10000, "seconds": C10K_SECS, "rate": 20000,
                         "requests": user["requests"], "failed_requests": user["failed"],
                         "anchor_requests": kern["requests"],
                         "anchor_failed_requests": kern["failed"],
                         "peak_rss_bytes": user["peak"], "idle_rss_bytes": user["idle"],
                         "offload": OFFLOAD}, runs=1))

        if want("user_syscalls"):
            user = syscalls_per_request(lambda cores, pin: UserServer(cores, pin))
            kern = syscalls_per_request(lambda cores, pin: KernelServer(cores, pin))
            emit(record("user_syscalls", "syscalls_per_request", "lower", user,
                        "webserver --net kernel", kern,
                        dict(base, file="www/files/1k.txt", driver="loadgen -n 100000",
                             counted_by="strace -c -f"), runs=1))
    finally:
        teardown()

    os.makedirs("target/bench", exist_ok=True)
    with open("target/bench/user.json", "w") as f:
        json.dump(records, f, indent=1)
    print(f"{'bench':20} {'metric':22} {'ours':>14} {'anchor':>14} {'ratio':>7}")
    for r in records:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] else "-"
        anchor = f"{r['anchor_value']:.1f}" if r["anchor_value"] else "-"
        print(f"{r['bench']:20} {r['metric']:22} {r['ours']:14.1f} {anchor:>14} {ratio:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
