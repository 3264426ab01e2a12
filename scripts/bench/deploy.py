"""The measuring half of scripts/bench/deploy (see its header for what and why)."""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

SLIPWAY, ROUNDS = sys.argv[1], int(sys.argv[2])
ROOT = os.getcwd()
EXAMPLE = os.path.join(ROOT, "examples", "hello-service")
BINARY = "target/x86_64-unknown-linux-gnu/release/hello-service"
SHARED_TARGET = os.path.join(tempfile.gettempdir(), "slipway-bench-hello-target")
ENVIRONMENTS = ["local", "docker"]

PIPELINE = f"""jobs:
  build:
    env:
      CARGO_TARGET_DIR: {SHARED_TARGET}
      RUSTFLAGS: -C target-feature=+crt-static
    steps:
      - cargo build --release --locked --target x86_64-unknown-linux-gnu
      - mkdir -p $(dirname {BINARY}) && cp $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/hello-service {BINARY}
    artifacts: [{BINARY}]
  image:
    needs: [build]
    image_build:
      context: .
      dockerfile: Dockerfile
      tags: ["bench-hello:{{{{ run.number }}}}"]
      push: ci/bench
environments:
  local:
    branch: main
    target: {{ local: {{ command: ./{BINARY} }} }}
    health: {{ http: /healthz }}
  docker:
    branch: main
    target: {{ docker: {{ image: bench, port: 8080 }} }}
    health: {{ http: /healthz }}
"""


def sh(*args, cwd=None, env=None, check=True):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"deploy bench: {' '.join(args)} failed:\n{out.stderr}{out.stdout}")
    return out.stdout


class Server:
    def __init__(self, data):
        self.proc = subprocess.Popen(
            [SLIPWAY, "server", "--listen", "127.0.0.1:0", "--data-dir", data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        for line in self.proc.stdout:
            if line.startswith("listening on "):
                self.url = line.split()[-1]
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        with open(os.path.join(data, "admin.token")) as f:
            self.token = f.read().strip()
        self.env = {**os.environ, "SLIPWAY_URL": self.url, "SLIPWAY_TOKEN": self.token}

    def cli(self, *args):
        return sh(SLIPWAY, *args, env=self.env)

    def api(self, path):
        out = sh("curl", "-sf", "-H", f"Authorization: Bearer {self.token}", f"{self.url}/api/v1{path}")
        return json.loads(out)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Load:
    """Keep-alive clients hammering one URL, recording (start, end, version or error)."""

    def __init__(self, url, clients=2):
        self.url = urllib.parse.urlparse(url)
        self.records = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def client(self):
        conn = None
        while self.running:
            start = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read().decode()
                result = body.strip().rsplit(" ", 1)[-1] if resp.status == 200 else f"HTTP {resp.status}"
            except Exception as e:  # every failure counts: it is what the bench looks for
                result = f"error {type(e).__name__}: {e}"
                conn = None
            with self.lock:
                self.records.append((start, time.monotonic(), result))

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join()
        return self.records


def serving(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode().strip().rsplit(" ", 1)[-1]
    except Exception:
        return None



def wait_for(what, check, limit=600):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.005)
    sys.exit(f"deploy bench: gave up waiting for {what}")


def commit(work, n):
    with open(os.path.join(work, "ROUND"), "w") as f:
        f.write(f"{n}\n")
    sh("git", "add", "-A", cwd=work)
    sh("git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-qm", f"round {n}", cwd=work)
    sh("git", "push", "-q", "origin", "main", cwd=work)


def job_seconds(server, run_number):
    run = wait_for(f"run {run_number} to end", lambda: (lambda r: r if r["run"]["state"] not in ("queued", "running") else None)(server.api(f"/projects/bench/runs/{run_number}")))
    if run["run"]["state"] != "succeeded":
        sys.exit(f"deploy bench: run {run_number} {run['run']['state']}: {run['run'].get('reason')}")
    return sum((j["finished_at"] - j["started_at"]) / 1000 for j in run["jobs"] if j["started_at"])


def rollback_time(records, t_cmd, old):
    """From the command until the first request after which every request gets `old`."""
    later = sorted(r for r in records if r[0] >= t_cmd)
    last_new = max((r[0] for r in later if r[2] != old), default=t_cmd)
    settled = [r[1] for r in later if r[0] >= last_new and r[2] == old]
    return (min(settled) - t_cmd) if settled else float("inf")


def raw_start(kind, data, image):
    """The baseline: start the old version by hand and poll until it answers."""
    port = 18000 + os.getpid() % 1000
    t0 = time.monotonic()
    if kind == "local":
        release_dirs = sorted(os.listdir(os.path.join(data, "releases")), key=int)
        proc = subprocess.Popen([f"./{BINARY}"], cwd=os.path.join(data, "releases", release_dirs[0]),
                                env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("the raw local start", lambda: serving(f"http://127.0.0.1:{port}/healthz"), 30)
        took = time.monotonic() - t0
        proc.terminate()
        proc.wait()
        return took
    name = f"bench-raw-{os.getpid()}"
    sh("docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", image)
    wait_for("the raw docker start", lambda: serving(f"http://127.0.0.1:{port}/healthz"), 30)
    took = time.monotonic() - t0
    sh("docker", "rm", "-f", name)
    return took


def main():
    tmp = tempfile.mkdtemp(prefix="slipway-bench-deploy-")
    server = None
    try:
        bare, work, data = (os.path.join(tmp, d) for d in ("remote.git", "work", "data"))
        sh("git", "init", "-q", "--bare", "-b", "main", bare)
        shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("target", ".slipway.yml"))
        with open(os.path.join(work, ".slipway.yml"), "w") as f:
            f.write(PIPELINE)
        sh("git", "init", "-q", "-b", "main", cwd=work)
        sh("git", "remote", "add", "origin", bare, cwd=work)
        commit(work, 0)
        server = Server(data)
        server.cli("repo", "add", "ci")
        server.cli("project", "add", "bench", "--git", bare)
        print("\n== warm-up: the first release (builds the example once)")
        server.cli("trigger", "bench", "--branch", "main", "--wait")
        urls = {}
        for env in ENVIRONMENTS:
            urls[env] = wait_for(f"{env} to serve release 1", lambda: next(
                (e["url"] for e in server.api("/projects/bench/status")["environments"]
                 if e["environment"] == env and e["live"] and serving(e["url"]) == "1"), None))
        rows = {env: {"overhead": [], "rollback": [], "failed": 0, "requests": 0} for env in ENVIRONMENTS}
        run = 1
        for n in range(1, ROUNDS + 1):
            print(f"\n== round {n} of {ROUNDS}")
            old = str(run)
            loads = {env: Load(urls[env]) for env in ENVIRONMENTS}
            time.sleep(0.3)
            commit(work, n)
            t0 = time.monotonic()
            server.cli("trigger", "bench", "--branch", "main")
            run += 1
            new = str(run)
            seen = {}
            while len(seen) < len(ENVIRONMENTS):
                for env in ENVIRONMENTS:
                    if env not in seen and serving(urls[env]) == new:
                        seen[env] = time.monotonic() - t0
                time.sleep(0.005)
                if time.monotonic() - t0 > 600:
                    sys.exit("deploy bench: the new release never served")
            steps = job_seconds(server, run)
            time.sleep(0.5)
            for env in ENVIRONMENTS:
                t_cmd = time.monotonic()
                server.cli("rollback", "-p", "bench", env)
                wait_for(f"{env} back on {old}", lambda: serving(urls[env]) == old, 60)
                time.sleep(0.5)
                records = loads[env].stop()
                rows[env]["rollback"].append(rollback_time(records, t_cmd, old))
                rows[env]["overhead"].append(seen[env] - steps)
                failed = [r for r in records if not r[2].isdigit()]
                rows[env]["failed"] += len(failed)
                rows[env]["requests"] += len(records)
                for r in failed[:5]:
                    print(f"   {env}: failed request: {r[2]}")
                print(f"   {env}: deploy {seen[env]:.2f} s (jobs {steps:.2f} s), rollback {rows[env]['rollback'][-1]:.3f} s, "
                      f"{len(records)} requests, {len(failed)} failed")
            # Put the newest release back, so the next round deploys over it.
            for env in ENVIRONMENTS:
                server.cli("deploy", "-p", "bench", env, new)
            for env in ENVIRONMENTS:
                wait_for(f"{env} back on {new}", lambda: serving(urls[env]) == new, 60)
        status = server.api("/projects/bench/status")
        image_ref = next(e["live"]["images"][0] for e in status["environments"] if e["environment"] == "docker")
        raw = {"local": raw_start("local", data, None), "docker": raw_start("docker", data, image_ref["reference"])}
        print("\n== results (medians)")
        print(f"{'target':<8} {'failed/requests':>16} {'rollback':>10} {'raw start':>10} {'ratio':>7} {'overhead':>10}")
        ok = True
        for env in ENVIRONMENTS:
            r = rows[env]
            rb, ov = statistics.median(r["rollback"]), statistics.median(r["overhead"])
            print(f"{env:<8} {r['failed']:>7}/{r['requests']:<8} {rb:>9.3f}s {raw[env]:>9.3f}s {rb / raw[env]:>6.2f}x {ov:>9.2f}s")
            ok &= r["failed"] == 0 and rb <= 1.0 and ov <= 2.0
        print("targets: 0 failed requests, rollback <= 1 s, overhead <= 2 s:", "PASS" if ok else "MISSED")
    finally:
        if server:
            server.stop()
        subprocess.run("docker ps -aq --filter label=slipway.project=bench | xargs -r docker rm -f >/dev/null",
                       shell=True)
        shutil.rmtree(tmp, ignore_errors=True)


main()
