#!/usr/bin/env python3
"""Does what an operator does with the deploy files, and checks what they would see.

On a Linux machine with root (CI runs it from .ci/run; run it by hand the same way):

 1. a Docker engine: the one running, or Debian's docker.io started here and stopped at
    the end by its PID (its log in target/docker-check/dockerd.log);
 2. the image, built from the repository's Dockerfile, unchanged, by the README's command;
    base images that cannot be pulled (no registry reachable) are built here as stand-ins
    under the same names, and said to be;
 3. a container of it: /health answers from the host, its health check turns healthy, it
    runs as the unprivileged user, its volume is writable and a pour survives a restart;
 4. docker-stack.yml deployed the README's way (its commands, run as written): the server
    and three taps run, pours from every tap arrive, and a forced rolling update of the
    server loses no acknowledged pour while the taps carry on; then the same for
    docker-stack.postgres.yml (two servers), where pours posted through either server
    also reach subscribers of both;
 5. everything it made torn down (stacks, swarm, volumes, secrets, the engine it started)
    whatever failed; the exit status is non-zero, naming the failing step, if anything
    fell short.

Each step prints its duration. Where this kernel lacks IPVS (a swarm service's virtual IP
and the routing mesh need it), the stacks are deployed with a small override (DNS round
robin, host-mode ports) and the output says so; the stack files themselves are never
changed.
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "docker-check"
STACK = "altair"
PORT = 8338


class Failed(Exception):
    """A check fell short; the message says what was seen."""


def say(text):
    print(text, flush=True)


def run(*args, check=True, input=None, timeout=600, quiet=False, env=None):
    """Runs a command; returns its stdout. Its output is shown when it fails."""
    if not quiet:
        say("$ " + " ".join(str(a) for a in args))
    done = subprocess.run(
        [str(a) for a in args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and done.returncode != 0:
        raise Failed(
            f"{' '.join(str(a) for a in args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def ok(*args):
    return subprocess.run([str(a) for a in args], capture_output=True).returncode == 0


def until(what, test, timeout, every=1.0):
    """Waits until `test()` returns something true, and returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = test()
            if result:
                return result
        except (Failed, OSError, urllib.error.URLError, ValueError) as e:
            last = e
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout} s" + (f" (last: {last})" if last else ""))
        time.sleep(every)


def http(method, url, body=None, token=None, timeout=10):
    """(status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, None


def pour_ids(base, token=None):
    """Every stored pour's (id, tapId), walked with the `after` cursor."""
    ids, after = [], 0
    while True:
        status, page = http("GET", f"{base}/api/beers?after={after}&page_size=1000", token=token)
        if status != 200:
            raise Failed(f"GET /api/beers: {status} {page}")
        ids += [(p["id"], p["tapId"]) for p in page["beers"]]
        if len(page["beers"]) < 1000:
            return ids
        after = page["beers"][-1]["id"]


class Subscriber:
    """A WebSocket subscriber on /sockets/beers, in the standard library only."""

    def __init__(self, host, port, token):
        self.sock = socket.create_connection((host, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        query = f"?token={token}" if token else ""
        self.sock.sendall(
            (
                f"GET /sockets/beers{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failed("the WebSocket handshake was cut off")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n")[0]:
            raise Failed(f"the WebSocket handshake failed: {status.decode(errors='replace')}")
        self.buffer = rest

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failed("the subscriber's connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self):
        """The next text frame, parsed (pings are answered, other frames skipped)."""
        while True:
            b1, b2 = self._read(2)
            length = b2 & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            opcode = b1 & 0x0F
            if opcode == 1:
                return json.loads(payload)
            if opcode == 8:
                raise Failed("the server closed the subscription")
            if opcode == 9:  # ping: a masked pong
                mask = os.urandom(4)
                body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + body)

    def pours_until(self, wanted, timeout):
        """Reads frames until every pour id in `wanted` was heard; returns those heard."""
        heard = set()
        deadline = time.monotonic() + timeout
        while not wanted <= heard:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                frame = self.frame()
            except socket.timeout:
                raise Failed(f"heard {sorted(heard)}, not {sorted(wanted - heard)}, within {timeout} s")
            if frame.get("event") == "pour":
                heard.add(frame["beer"]["id"])
        return heard

    def close(self):
        self.sock.close()


# ---- the engine ----


def engine(cleanup):
    if ok("docker", "info"):
        say("a Docker engine is running: using it")
        return
    if not shutil.which("dockerd"):
        run("apt-get", "update", "-qq", timeout=300)
        run("apt-get", "install", "-y", "-qq", "docker.io", "containerd", "runc", timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    log = open(WORK / "dockerd.log", "w")
    daemon = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
    say(f"dockerd started, PID {daemon.pid}, its log in {WORK / 'dockerd.log'}")

    def stop():
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        say(f"dockerd (PID {daemon.pid}) stopped")

    cleanup.callback(stop)
    until("the Docker engine to answer", lambda: ok("docker", "info"), 60)


# ---- base images ----


def mirror():
    """The Debian mirror apt uses here (its sources that name the bookworm suite)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
               *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for source in sources:
        if not source.is_file():
            continue
        text = source.read_text()
        for found in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            return found.group(1)
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
    return "http://deb.debian.org/debian"


def standin_debian(name):
    rootfs = WORK / "rootfs"
    if not shutil.which("debootstrap"):
        run("apt-get", "install", "-y", "-qq", "debootstrap", timeout=300,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    shutil.rmtree(rootfs, ignore_errors=True)
    run("debootstrap", "--variant=minbase", "bookworm", rootfs, mirror(), timeout=900, quiet=False)
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        ["docker", "import", "--change", 'CMD ["bash"]', "-", name], stdin=tar.stdout, capture_output=True, text=True
    )
    tar.wait()
    if imported.returncode != 0:
        raise Failed(f"docker import: {imported.stderr}")
    shutil.rmtree(rootfs, ignore_errors=True)


def standin_context(name, dockerfile, extra=None):
    """A build context of its own for a stand-in image: the host's extra CA certificates
    (containers reach the archives through this machine's proxy) and `extra` files."""
    context = WORK / f"context-{name.replace(':', '-').replace('/', '-')}"
    shutil.rmtree(context, ignore_errors=True)
    (context / "ca").mkdir(parents=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, context / "ca")
    for target, source in (extra or {}).items():
        run("cp", "-a", source, context / target, quiet=True)
    (context / "Dockerfile").write_text(textwrap.dedent(dockerfile))
    return context


def standin_rust(name, base):
    sysroot = Path(run("rustc", "--print", "sysroot", quiet=True).strip())
    context = standin_context(
        name,
        f"""\
        FROM {base}
        COPY ca/ /usr/local/share/ca-certificates/
        RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates \\
         && update-ca-certificates && rm -rf /var/lib/apt/lists/*
        COPY toolchain /usr/local/rust
        ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:$PATH CARGO_HOME=/usr/local/cargo
        """,
        {"toolchain": sysroot},
    )
    # Documentation is most of a toolchain's size, and no build reads it.
    shutil.rmtree(context / "toolchain" / "share" / "doc", ignore_errors=True)
    run("docker", "build", "-t", name, context, timeout=1200)
    shutil.rmtree(context, ignore_errors=True)


ENTRYPOINT = r"""#!/bin/sh
# As the official image starts: POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD(_FILE); the
# cluster in PGDATA, created on first start; listening on every address, by password.
set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
export PATH="$bin:$PATH" PGDATA="${PGDATA:-/var/lib/postgresql/data}"
password="${POSTGRES_PASSWORD:-}"
[ -n "${POSTGRES_PASSWORD_FILE:-}" ] && password="$(cat "$POSTGRES_PASSWORD_FILE")"
user="${POSTGRES_USER:-postgres}"
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s' "$password" > /tmp/pwfile
  chown postgres /tmp/pwfile
  as_postgres initdb -D "$PGDATA" --username="$user" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256
  rm -f /tmp/pwfile
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    as_postgres createdb -U "$user" "$db"
  fi
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*'
"""


POSTGRES_RECIPE = """\
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql ca-certificates \\
 && update-ca-certificates && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/lib/postgresql/*/bin/pg_isready /usr/local/bin/pg_isready
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod +x /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
"""


def standin_postgres(name, base):
    context = standin_context(name, f"FROM {base}\n" + POSTGRES_RECIPE)
    (context / "docker-entrypoint.sh").write_text(ENTRYPOINT)
    run("docker", "build", "-t", name, context, timeout=1200)
    shutil.rmtree(context, ignore_errors=True)


def base_images():
    """The images the Dockerfile and the PostgreSQL stack start from: present, pulled, or
    stand-ins built here (kept, like the real ones would be, for the next run)."""
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    rust, debian = froms[0], froms[-1]
    postgres = re.search(r"\$\{ALTAIR_POSTGRES_IMAGE:-([^}]+)\}", (ROOT / "docker-stack.postgres.yml").read_text()).group(1)
    standins = []
    # A stand-in is labelled with its recipe's hash: rebuilt when the recipe changes.
    recipes = {
        debian: ("debootstrap --variant=minbase bookworm", standin_debian),
        rust: (run("rustc", "--version", quiet=True) + "gcc libc6-dev", lambda n: standin_rust(n, debian)),
        postgres: (POSTGRES_RECIPE + ENTRYPOINT, lambda n: standin_postgres(n, debian)),
    }
    for name, (recipe, build) in recipes.items():
        want = hashlib.sha256(recipe.encode()).hexdigest()[:16]
        if ok("docker", "image", "inspect", name):
            label = run("docker", "image", "inspect", "--format", "{{index .Config.Labels \"altair.standin\"}}", name, quiet=True).strip()
            if label in ("", "<no value>"):
                say(f"{name}: present")
                continue
            if label == want:
                say(f"{name}: present (a stand-in built by an earlier run)")
                standins.append(name)
                continue
            say(f"{name}: a stand-in from an older recipe; building it again")
        pulled = subprocess.run(["docker", "pull", name], capture_output=True, text=True, timeout=120)
        if pulled.returncode == 0:
            say(f"{name}: pulled")
            continue
        say(f"{name}: cannot be pulled ({pulled.stderr.strip().splitlines()[-1] if pulled.stderr.strip() else 'no registry'}); building a stand-in")
        started = time.monotonic()
        build(name)
        # Marked, so that a later run says it is a stand-in too.
        run("docker", "build", "-t", name, "--label", f"altair.standin={want}", "-", input=f"FROM {name}\n", quiet=True)
        say(f"{name}: STAND-IN built in {time.monotonic() - started:.0f} s")
        standins.append(name)
    return standins


# ---- steps ----


def readme_block(marker):
    """The shell block the README marks with <!-- docker-check: marker -->, its lines."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- docker-check: {re.escape(marker)} -->\s*```sh\n(.*?)```", text, re.S)
    if not found:
        raise Failed(f"README.md has no block marked 'docker-check: {marker}'")
    return found.group(1)


def run_readme(marker, substitute=None):
    """Runs a README block with bash, as an operator would paste it; returns its output."""
    script = readme_block(marker)
    for old, new in (substitute or {}).items():
        if old not in script:
            raise Failed(f"the README block '{marker}' has no line '{old}'")
        script = script.replace(old, new)
    say(textwrap.indent(script.rstrip(), "  | "))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=WORK / "operator",
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise Failed(f"the README's '{marker}' commands failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def build_image():
    # The operator's folder, as new: the README's commands append to tokens.toml.
    shutil.rmtree(WORK / "operator", ignore_errors=True)
    (WORK / "operator").mkdir(parents=True)
    run_readme("build", {"docker build -t altair:latest .": f"docker build -t altair:latest {ROOT}"})


def container(cleanup):
    name, volume = "altair-check", "altair-check-data"
    run("docker", "rm", "-f", name, check=False, quiet=True)
    run("docker", "volume", "rm", "-f", volume, check=False, quiet=True)
    cleanup.callback(lambda: run("docker", "volume", "rm", "-f", volume, check=False, quiet=True))
    cleanup.callback(lambda: run("docker", "rm", "-f", name, check=False, quiet=True))
    run("docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8338", "-v", f"{volume}:/var/lib/altair", "altair:latest")

    def base():
        port = run("docker", "port", name, "8338/tcp", quiet=True).split(":")[-1].strip()
        return f"http://127.0.0.1:{port}"

    until("/health from the host", lambda: http("GET", base() + "/health")[0] == 200, 60)
    say("/health answers 200 from the host")
    health = until(
        "the container's health check to turn healthy",
        lambda: run("docker", "inspect", "--format", "{{.State.Health.Status}}", name, quiet=True).strip() == "healthy",
        90,
    )
    say(f"health check: healthy ({health})")
    uid = re.search(r"^Uid:\s+(\d+)", run("docker", "exec", name, "cat", "/proc/1/status", quiet=True), re.M).group(1)
    if uid != "10001":
        raise Failed(f"the server runs as uid {uid}, not the unprivileged 10001")
    say("runs as uid 10001")
    status, body = http("POST", base() + "/api/beers", {"tapId": 1, "volume": 500})
    if status != 201:
        raise Failed(f"a pour on the volume: {status} {body}")
    stored = body["beer"]
    say(f"pour {stored['id']} stored in the volume")
    run("docker", "restart", name)
    until("/health after the restart", lambda: http("GET", base() + "/health")[0] == 200, 60)
    status, body = http("GET", f"{base()}/api/beers/{stored['id']}")
    if status != 200 or body["beer"] != stored:
        raise Failed(f"after a restart, pour {stored['id']} is {status} {body}, not {stored}")
    say(f"pour {stored['id']} survived the restart")


IPVS = Path("/proc/sys/net/ipv4/vs").exists()

NO_IPVS = {
    "docker-stack.yml": """\
        # No IPVS on this kernel: DNS round robin instead of a virtual IP, and the port
        # published on the host instead of through the routing mesh.
        version: "3.8"
        services:
          server:
            deploy:
              endpoint_mode: dnsrr
            ports:
              - target: 8338
                published: 8338
                mode: host
        """,
    "docker-stack.postgres.yml": """\
        # No IPVS on this kernel: DNS round robin instead of virtual IPs; each server on a
        # host port of its own (two cannot share one without the routing mesh). Merged,
        # the routing mesh's port is then dropped: a merge appends ports, it cannot remove.
        version: "3.8"
        services:
          db:
            deploy:
              endpoint_mode: dnsrr
          server:
            deploy:
              endpoint_mode: dnsrr
            ports:
              - target: 8338
                mode: host
        """,
}


# The routing mesh's port, as `docker stack config` writes it.
INGRESS_PORT = """\
      - mode: ingress
        target: 8338
        published: 8338
        protocol: tcp
"""


def deploy(stack_file, marker):
    """Deploys a stack with the README's commands (and the no-IPVS override where it must)."""
    line = f"docker stack deploy -c {stack_file} {STACK}"
    command = f"docker stack deploy -c {ROOT / stack_file} {STACK}"
    if not IPVS:
        override = WORK / f"no-ipvs-{stack_file}"
        override.write_text(textwrap.dedent(NO_IPVS[stack_file]))
        merged = run("docker", "stack", "config", "-c", ROOT / stack_file, "-c", override, quiet=True)
        if INGRESS_PORT in merged:
            merged = merged.replace(INGRESS_PORT, "", 1)
        if "mode: ingress" in merged:
            raise Failed(f"the merged {stack_file} still publishes through the routing mesh:\n{merged}")
        deployed = WORK / f"deployed-{stack_file}"
        deployed.write_text(merged)
        run("docker", "stack", "config", "-c", deployed, quiet=True)
        command = f"docker stack deploy -c {deployed} {STACK}"
        say(f"NOTE: this kernel has no IPVS (/proc/sys/net/ipv4/vs): deploying {stack_file} with "
            f"{override.name} on top, as {deployed.relative_to(ROOT)}")
    return run_readme(marker, {line: command})


def services_running(names, timeout=180):
    """Waits until each of the stack's services `names` runs all its replicas."""

    def converged():
        listed = run("docker", "service", "ls", "--filter", f"label=com.docker.stack.namespace={STACK}",
                     "--format", "{{.Name}} {{.Replicas}}", quiet=True)
        replicas = {}
        for line in listed.split("\n"):
            found = re.match(r"(\S+) (\d+)/(\d+)", line.strip())
            if found:
                replicas[found.group(1)] = (int(found.group(2)), int(found.group(3)))
        done = all(
            f"{STACK}_{n}" in replicas and replicas[f"{STACK}_{n}"][0] == replicas[f"{STACK}_{n}"][1] > 0
            for n in names
        )
        return done and replicas

    try:
        replicas = until(f"{', '.join(names)} to run", converged, timeout, every=2)
    except Failed as e:
        raise Failed(f"{e}\n{why_not_running()}") from None
    say("running: " + ", ".join(f"{k} {r}/{d}" for k, (r, d) in sorted(replicas.items())))


def why_not_running():
    """The stack's tasks that are not running, and the last lines of their logs."""
    tasks = run("docker", "stack", "ps", STACK, "--no-trunc", "--format",
                "{{.ID}} {{.Name}} {{.CurrentState}} {{.Error}}", check=False, quiet=True)
    lines = [l for l in tasks.split("\n") if l.strip() and "Running" not in l]
    logs = []
    for line in lines[:3]:
        task = line.split(" ", 1)[0]
        tail = subprocess.run(["docker", "service", "logs", "--tail", "5", task], capture_output=True, text=True)
        logs.append(f"{line}\n{textwrap.indent((tail.stdout + tail.stderr).strip(), '    ')}")
    return "tasks not running:\n" + "\n".join(logs)


def tokens_from(output):
    """The reader and admin tokens the README's commands print, in that order."""
    tokens = re.findall(r"^(altair_[0-9a-f]{64})$", output, re.M)
    if len(tokens) != 2:
        raise Failed(f"the README's commands printed {len(tokens)} tokens, not a reader's and an admin's")
    return tokens[0], tokens[1]


def taps_pour(base, reader, after, timeout=120):
    def each_tap():
        seen = {tap for (pid, tap) in pour_ids(base, reader) if pid > after}
        return {1, 2, 3} <= seen and seen
    until("pours from taps 1, 2 and 3", each_tap, timeout, every=2)


def journal_stack(tokens):
    output = deploy("docker-stack.yml", "deploy")
    reader, admin = tokens_from(output)
    tokens.update(reader=reader, admin=admin)
    base = f"http://127.0.0.1:{PORT}"
    services_running(["server", "tap-1", "tap-2", "tap-3"])
    until("/health through the published port", lambda: http("GET", base + "/health")[0] == 200, 90)
    taps_pour(base, reader, 0)
    before = pour_ids(base, reader)
    say(f"pours from every tap arrived: {len(before)} so far")
    run("docker", "service", "update", "--force", "--detach=false", f"{STACK}_server", timeout=600)
    until("/health after the update", lambda: http("GET", base + "/health")[0] == 200, 90)
    newest = max(pid for pid, _ in before)
    taps_pour(base, reader, newest)
    after = pour_ids(base, reader)
    lost = set(before) - set(after)
    if lost:
        raise Failed(f"the rolling update lost acknowledged pours: {sorted(lost)}")
    if len({pid for pid, _ in after}) != len(after):
        raise Failed("a pour id appears twice")
    say(f"rolling update: all {len(before)} pours kept, {len(after) - len(before)} more since from every tap")


def remove_stack():
    if not ok("docker", "swarm", "ca"):
        return
    run("docker", "stack", "rm", STACK, check=False)

    def gone():
        left = run("docker", "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}", quiet=True).strip()
        networks = run("docker", "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}", quiet=True).strip()
        return not left and not networks
    until("the stack's containers and network to go", gone, 120, every=2)
    volumes = run("docker", "volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}", quiet=True).split()
    if volumes:
        run("docker", "volume", "rm", *volumes, check=False)


def replica_ports():
    ids = run("docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_server", quiet=True).split()
    ports = []
    for cid in ids:
        mapped = run("docker", "port", cid, "8338/tcp", quiet=True).strip().split("\n")[0]
        ports.append(int(mapped.rsplit(":", 1)[-1]))
    return ports


def postgres_stack(tokens):
    reader = tokens["reader"]
    deploy("docker-stack.postgres.yml", "deploy-postgres")
    services_running(["db", "server", "tap-1", "tap-2", "tap-3"], timeout=300)
    ports = until("two servers, each on a port of its own", lambda: (p := replica_ports()) and len(p) == 2 and p, 120)
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    for base in bases:
        until(f"{base}/health", lambda: http("GET", base + "/health")[0] == 200, 120)
    taps_pour(bases[0], reader, 0)
    before = pour_ids(bases[0], reader)
    # start-first: the new server runs before the old one stops.
    run("docker", "service", "update", "--force", "--detach=false", f"{STACK}_server", timeout=600)
    ports = until("two servers again after the update", lambda: (p := replica_ports()) and len(p) == 2 and p, 120)
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    for base in bases:
        until(f"{base}/health", lambda: http("GET", base + "/health")[0] == 200, 120)
    taps_pour(bases[1], reader, max(pid for pid, _ in before))
    after = pour_ids(bases[1], reader)
    lost = set(before) - set(after)
    if lost:
        raise Failed(f"the rolling update lost acknowledged pours: {sorted(lost)}")
    say(f"rolling update: all {len(before)} pours kept, {len(after) - len(before)} more since from every tap")
    subscribers = [Subscriber("127.0.0.1", p, reader) for p in ports]
    try:
        for s in subscribers:
            hello = s.frame()
            if hello.get("event") != "hello":
                raise Failed(f"the first frame is not hello: {hello}")
        admin_token = tokens["admin"]
        posted = set()
        for base in bases:
            status, body = http("POST", base + "/api/beers", {"tapId": 9, "volume": 500}, token=admin_token)
            if status != 201:
                raise Failed(f"POST through {base}: {status} {body}")
            posted.add(body["beer"]["id"])
        for port, s in zip(ports, subscribers):
            s.pours_until(posted, 30)
            say(f"the subscriber on port {port} heard pours {sorted(posted)}, posted through both servers")
    finally:
        for s in subscribers:
            s.close()


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        say("docker-check: needs root (it installs and starts a Docker engine)")
        return 2
    results = []
    failed = None
    with contextlib.ExitStack() as cleanup:

        def step(name, action):
            nonlocal failed
            if failed:
                return None
            say(f"\n== {name}")
            started = time.monotonic()
            try:
                value = action()
                results.append((name, time.monotonic() - started, "ok"))
                say(f"-- {name}: ok ({time.monotonic() - started:.0f} s)")
                return value
            except (Failed, subprocess.TimeoutExpired, OSError) as e:
                results.append((name, time.monotonic() - started, "FAILED"))
                say(f"-- {name}: FAILED ({time.monotonic() - started:.0f} s)\n{e}")
                failed = name
                return None

        step("a Docker engine", lambda: engine(cleanup))
        standins = step("base images", base_images) or []
        step("the image, from the Dockerfile", build_image)
        step("a container: health, user, volume, restart", lambda: container(cleanup))

        def swarm():
            if ok("docker", "swarm", "ca"):
                raise Failed("this engine is in a swarm already: not touching it")
            # Undone last: secrets, then the swarm (the README's commands make both).
            cleanup.callback(lambda: run("docker", "swarm", "leave", "--force", check=False))
            cleanup.callback(remove_secrets)
            cleanup.callback(remove_stack)

        tokens = {}
        step("not in a swarm yet", swarm)
        step("docker-stack.yml: three taps pour, a rolling update loses nothing", lambda: journal_stack(tokens))
        step("remove the journal stack", remove_stack)
        step("docker-stack.postgres.yml: taps pour, a rolling update loses nothing, pours through either server reach subscribers of both",
             lambda: postgres_stack(tokens))
        step("remove the PostgreSQL stack", remove_stack)
        say("\n== tearing down")
    say("\n== summary")
    for name, seconds, verdict in results:
        say(f"{verdict:>6}  {seconds:5.0f} s  {name}")
    if standins:
        say(f"STAND-INS: {', '.join(standins)} were built here (no registry reachable), not pulled")
    if not IPVS:
        say("NOTE: no IPVS here: both stacks ran with the override in target/docker-check/")
    if failed:
        say(f"docker-check: FAILED at '{failed}'")
        return 1
    say("docker-check: ok")
    return 0


def remove_secrets():
    names = run("docker", "secret", "ls", "--format", "{{.Name}}", check=False, quiet=True).split()
    ours = [n for n in names if n.startswith("altair_")]
    if ours:
        run("docker", "secret", "rm", *ours, check=False)


if __name__ == "__main__":
    sys.exit(main())
