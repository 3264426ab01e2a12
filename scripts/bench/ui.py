"""The measuring half of scripts/bench/ui (see its header for what and why)."""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

SLIPWAY, ROUNDS = sys.argv[1], int(sys.argv[2])
RUNS, LOG_LINES = 10_000, 100_000

PIPELINE = """jobs:
  build:
    steps: [echo built > index.html]
    artifacts: [index.html]
  test:
    needs: [build]
    steps: [echo tested]
  package:
    needs: [test]
    steps: [echo packaged]
environments:
  dev:
    branch: main
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
"""


def sh(*args, cwd=None, env=None, stdin=None):
    out = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ui bench: {' '.join(args)} failed:\n{out.stderr}{out.stdout}")
    return out.stdout


class Server:
    def __init__(self, data):
        self.data = data
        self.proc = subprocess.Popen(
            [SLIPWAY, "server", "--listen", "127.0.0.1:0", "--data-dir", data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        for line in self.proc.stdout:
            if line.startswith("listening on "):
                self.url = line.split()[-1]
                break
        with open(os.path.join(data, "admin.token")) as f:
            self.env = {**os.environ, "SLIPWAY_URL": self.url, "SLIPWAY_TOKEN": f.read().strip()}

    def cli(self, *args, stdin=None):
        return sh(SLIPWAY, *args, env=self.env, stdin=stdin)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def seed(db):
    """10 000 finished runs of three jobs, and a 100 000-line log on the newest."""
    con = sqlite3.connect(db)
    cur = con.cursor()
    project, next_number = cur.execute("SELECT id, next_run FROM projects WHERE name = 'bench'").fetchone()
    now = int(time.time() * 1000)
    runs = []
    for i in range(RUNS):
        number = next_number + i
        at = now - (RUNS - i) * 60_000
        state = "failed" if i % 17 == 0 else "succeeded"
        runs.append((project, number, f"{number:040x}", "main", state, at, at + 45_000, 1))
    cur.executemany(
        "INSERT INTO runs (project_id, number, commit_sha, branch, state, created_at, finished_at, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    ids = cur.execute("SELECT id, created_at, state FROM runs WHERE project_id = ? AND number >= ? ORDER BY number", (project, next_number)).fetchall()
    jobs = []
    for run_id, at, state in ids:
        for k, (name, needs) in enumerate([("build", "[]"), ("test", '["build"]'), ("package", '["test"]')]):
            job_state = state if k == 2 else "succeeded"
            jobs.append((run_id, name, job_state, needs, at + k * 15_000, at + k * 15_000 + 500, at + (k + 1) * 15_000))
    cur.executemany(
        "INSERT INTO jobs (run_id, name, state, needs, queued_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        jobs,
    )
    cur.execute("UPDATE projects SET next_run = ? WHERE id = ?", (next_number + RUNS, project))
    newest_job = cur.execute("SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.project_id = ? AND j.name = 'build' ORDER BY r.number DESC LIMIT 1", (project,)).fetchone()[0]
    chunks = []
    for seq in range(LOG_LINES // 1000):
        text = "\n".join(f"\x1b[32mline {seq * 1000 + n}\x1b[0m compiling module {n}" for n in range(1000))
        chunks.append((newest_job, seq, seq * 1000, 1000, text))
    cur.executemany("INSERT INTO log_chunks (job_id, seq, first_line, lines, text) VALUES (?, ?, ?, ?, ?)", chunks)
    con.commit()
    con.close()
    return next_number + RUNS - 1, newest_job


def timed(url, cookie, rounds):
    times = []
    for _ in range(rounds):
        out = sh("curl", "-s", "-o", "/dev/null", "-b", cookie, "-w", "%{http_code} %{time_total}", url)
        code, total = out.split()
        if code != "200":
            sys.exit(f"ui bench: {url} answered {code}")
        times.append(float(total) * 1000)
    first = times[0]
    times.sort()
    p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, first


def main():
    tmp = tempfile.mkdtemp(prefix="slipway-bench-ui-")
    server = None
    try:
        bare, work, data = (os.path.join(tmp, d) for d in ("remote.git", "work", "data"))
        sh("git", "init", "-q", "--bare", "-b", "main", bare)
        os.makedirs(work)
        with open(os.path.join(work, ".slipway.yml"), "w") as f:
            f.write(PIPELINE)
        sh("git", "init", "-q", "-b", "main", cwd=work)
        sh("git", "add", "-A", cwd=work)
        sh("git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-qm", "pipeline", cwd=work)
        sh("git", "push", "-q", bare, "main", cwd=work)
        server = Server(data)
        server.cli("project", "add", "bench", "--git", bare)
        server.cli("user", "add", "ann", "--role", "admin", "--email", "ann@example.com", stdin="bench password")
        print("\n== one real run, released and deployed to dev")
        server.cli("trigger", "bench", "--branch", "main", "--wait")
        deadline = time.time() + 60
        while time.time() < deadline:
            status = json.loads(server.cli("status", "bench", "--json"))
            if status["environments"] and status["environments"][0].get("live"):
                break
            time.sleep(0.1)
        server.stop()
        print(f"== seeding {RUNS} runs and a {LOG_LINES}-line log")
        newest, big_job = seed(os.path.join(data, "slipway.db"))
        server = Server(data)
        cookie = os.path.join(tmp, "cookies")
        sh("curl", "-s", "-o", "/dev/null", "-c", cookie, "-d", "name=ann&password=bench password&next=/ui", f"{server.url}/ui/login")
        pages = [
            ("dashboard", "/ui"),
            ("project", "/ui/projects/bench"),
            ("run", f"/ui/projects/bench/runs/{newest}"),
            ("log page", f"/ui/jobs/{big_job}/log?from=50000"),
            ("environment", "/ui/projects/bench/environments/dev"),
            ("release", "/ui/projects/bench/releases/1"),
            ("registry", "/ui/registry"),
            ("metrics", "/ui/projects/bench/metrics"),
        ]
        base50, base95, _ = timed(f"{server.url}/healthz", cookie, ROUNDS)
        print(f"\n== server time over {ROUNDS} requests each (curl total, loopback)")
        print(f"{'page':<12} {'p50':>9} {'p95':>9} {'first':>9} {'p95 / healthz':>14}")
        print(f"{'healthz':<12} {base50:>7.2f}ms {base95:>7.2f}ms {'':>9} {'(baseline)':>14}")
        worst = 0.0
        for name, path in pages:
            p50, p95, first = timed(f"{server.url}{path}", cookie, ROUNDS)
            worst = max(worst, p95)
            print(f"{name:<12} {p50:>7.2f}ms {p95:>7.2f}ms {first:>7.2f}ms {p95 / base95:>13.1f}x")
        print(f"target: every page p95 <= 100 ms: {'PASS' if worst <= 100 else 'MISSED'} (worst {worst:.1f} ms)")
        print("(`first` is the first request: metrics are computed then and reused until a job or deployment ends)")
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


main()
