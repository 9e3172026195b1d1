"""The Python side of benchkit, shared by the bench scripts (bench_web.py,
bench_user.py): the result record of docs/ARCHITECTURE.md, alternating runs and their
medians, wrk's output, nginx's configuration, and placing, stopping, sizing and timing
processes.

A script imports it with `sys.path.insert(0, <repository>/benchkit)`.
"""

import os
import re
import resource
import signal
import statistics
import subprocess


def record(bench, metric, better, ours, anchor, anchor_value, params, runs):
    """One measured figure, ours against one anchor (the fields of benchkit::Record)."""
    return {"bench": bench, "metric": metric, "better": better, "ours": ours,
            "anchor": anchor, "anchor_value": anchor_value,
            "ratio": ours / anchor_value if anchor_value else None,
            "runs": runs, "params": params}


def pinned(cpu, cmd):
    """`cmd` run on CPU `cpu` (under taskset), or as it is when `cpu` is None or the
    machine has a single CPU."""
    if cpu is None or (os.cpu_count() or 1) == 1:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def alternate(runs, starts, measure):
    """`runs` rounds of: for each of `starts` in turn, start it, measure it, stop it.
    Returns one list of measurements per start, so that drift in the machine hits every
    side alike."""
    outs = [[] for _ in starts]
    for _ in range(runs):
        for start, out in zip(starts, outs):
            srv = start()
            try:
                out.append(measure(srv))
            finally:
                srv.stop()
    return outs


def med(xs, key):
    """The median of field `key` over the measurements `xs`."""
    return statistics.median(x[key] for x in xs)


def to_us(text):
    """A wrk duration such as `1.25ms` in microseconds."""
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def parse_wrk(out):
    """Requests/s, requests, p99 (from `--latency`), non-2xx/3xx responses and socket
    errors of one wrk run's output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = to_us(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": requests, "p99_us": p99, "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None}


def nginx_conf(workers, pin, listen, root, run_dir):
    """nginx's configuration for the benches: `workers` worker processes (if `pin`,
    each on a CPU of its own, the first on the first CPU nginx may use), sendfile,
    keep-alive without limit, no access log, serving `root` on `listen`, with its pid
    and error log in `run_dir`."""
    return f"""
worker_processes {workers};
{"worker_cpu_affinity auto;" if pin else ""}
worker_rlimit_nofile 65536;
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log;
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
  server {{ listen {listen} reuseport; root {root}; }}
}}
"""


def stop_process(p, sig=signal.SIGTERM):
    """Asks `p` to stop with `sig`; kills it if it has not exited within 15 s."""
    p.send_signal(sig)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def with_child_cpu(run):
    """`run()`'s result and the CPU seconds (user + system) of the child processes it
    waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def proc_cpu_s(pid):
    """CPU seconds (user + system) process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_kb(pid, field):
    """A `kB` field of /proc/<pid>/status, such as VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found")
