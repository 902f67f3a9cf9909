#!/usr/bin/env python3
"""Shared helpers for the real Redis/Valkey servers that rdbkit tests against.

Used by scripts/install-servers.sh (sub-commands below) and imported by
fixtures/generate.py.  Standard library only, so any Python 3.8+ can run it.

Sub-commands (python3 scripts/servers.py CMD ...):
  sources RELEASE EXTRA_SUITES...   print a deb822 apt source for a Debian release,
                                    with the mirrors taken from this machine's apt config
  unzip WHEEL DEST [PREFIX...]      extract a wheel (optionally only members under PREFIXes)
  fragment FILE NAME ::server ARGV... ::check ARGV... [::env K=V...] [::modules SO...]
                                    write one server description for the manifest
  verify                            start every described server, check it, write servers.json
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Manifest order (oldest format first).  install-servers.sh uses the same names.
SERVER_NAMES = [
    "redis-5.0",
    "redis-6.0",
    "redis-6.2",
    "redis-7.0",
    "valkey-8.0",
    "valkey-8.1",
    "redis-7.4",
    "redis-8.0",
    "redis-8.6",
    "valkey-9.0",
]


def tools_dir():
    return Path(os.environ.get("RDBKIT_TOOLS") or (REPO / ".tools")).resolve()


def manifest_path():
    return tools_dir() / "servers.json"


def load_manifest(path=None):
    p = Path(path) if path else manifest_path()
    if not p.exists():
        raise SystemExit(
            f"no server manifest at {p}: run scripts/install-servers.sh first"
        )
    with open(p) as f:
        return json.load(f)


def version_tuple(text):
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def flavor(entry):
    return "valkey" if entry["name"].startswith("valkey") else "redis"


# --------------------------------------------------------------------------
# A tiny RESP2 client (enough for PING / INFO / SAVE / SHUTDOWN).


class RespError(Exception):
    pass


class MiniClient:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RespError(f"unexpected reply {line!r}")

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()


def parse_info(raw):
    info = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def server_version(info):
    """The product version: Valkey reports redis_version 7.2.4 for compatibility."""
    return info.get("valkey_version") or info.get("redis_version", "?")


# --------------------------------------------------------------------------
# Starting and stopping a throwaway server.


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def supports_debug_flag(entry):
    # --enable-debug-command exists from Redis 7.0 (and in every Valkey).
    return flavor(entry) == "valkey" or version_tuple(entry["version"]) >= (7, 0)


def base_args(entry, port, workdir):
    args = [
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(workdir),
        "--dbfilename", "dump.rdb",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", str(Path(workdir) / "server.log"),
    ]
    if supports_debug_flag(entry):
        args += ["--enable-debug-command", "yes"]
    return args


class ServerProcess:
    """One server process in its own directory; always stopped by pid."""

    def __init__(self, entry, workdir, extra_args=(), load_modules=False):
        self.entry = entry
        self.workdir = Path(workdir)
        self.extra_args = list(extra_args)
        self.load_modules = load_modules
        self.proc = None
        self.port = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log_tail(self, n=30):
        p = self.workdir / "server.log"
        try:
            return "\n".join(p.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self, timeout=60.0):
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.entry.get("env") or {})
        last_err = None
        for _attempt in range(3):
            self.port = free_port()
            argv = list(self.entry["server"]) + base_args(self.entry, self.port, self.workdir)
            if self.load_modules:
                for so in self.entry.get("modules") or []:
                    argv += ["--loadmodule", so]
            argv += self.extra_args
            self.proc = subprocess.Popen(
                argv,
                cwd=str(self.workdir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(self.workdir / "server.stderr", "ab"),
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_err = (
                        f"{self.entry['name']} exited with {self.proc.returncode}:\n"
                        + self.log_tail()
                    )
                    break
                try:
                    c = MiniClient(self.port, timeout=2)
                    try:
                        if c.command("PING") == b"PONG":
                            info = parse_info(c.command("INFO", "persistence"))
                            if info.get("loading", "0") == "0":
                                return self
                    finally:
                        c.close()
                except (OSError, ConnectionError, RespError):
                    pass
                time.sleep(0.05)
            else:
                self.stop()
                raise RuntimeError(f"{self.entry['name']} did not answer PING in {timeout}s")
            # The process died: maybe the port was taken in the meantime; retry.
            if "Address already in use" not in last_err:
                break
        raise RuntimeError(last_err or f"{self.entry['name']} failed to start")

    def client(self):
        return MiniClient(self.port)

    def stop(self, timeout=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            c = MiniClient(self.port, timeout=5)
            try:
                c.command("SHUTDOWN", "NOSAVE")
            except (ConnectionError, OSError):
                pass  # the server closes the connection as it exits
            except RespError:
                pass
            finally:
                c.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# --------------------------------------------------------------------------
# RDB files and the checker.


def read_rdb_header(path):
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(b"REDIS"):
        return "REDIS", int(head[5:9])
    if head.startswith(b"VALKEY"):
        return "VALKEY", int(head[6:9])
    raise ValueError(f"{path}: not an RDB file (starts {head!r})")


def run_check(entry, rdb_path, timeout=120):
    env = dict(os.environ)
    env.update(entry.get("env") or {})
    p = subprocess.run(
        list(entry["check"]) + [str(rdb_path)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )
    out = p.stdout.decode("utf-8", "replace")
    return p.returncode == 0 and "RDB looks OK" in out, out


# --------------------------------------------------------------------------
# Sub-commands used by install-servers.sh.


def _deb822_stanzas(text):
    stanzas, cur, last = [], {}, None
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if cur:
                stanzas.append(cur)
            cur, last = {}, None
            continue
        if raw[0] in " \t" and last:
            cur[last] += " " + raw.strip()
            continue
        if ":" in raw:
            k, v = raw.split(":", 1)
            last = k.strip().lower()
            cur[last] = v.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def apt_entries():
    """(uri, suite, signed_by) for every 'deb' source configured on this machine."""
    out = []
    d = Path("/etc/apt/sources.list.d")
    for f in sorted(d.glob("*.sources")) if d.is_dir() else []:
        for st in _deb822_stanzas(f.read_text(errors="replace")):
            if "deb" not in st.get("types", "").split():
                continue
            if st.get("enabled", "yes").lower() == "no":
                continue
            for uri in st.get("uris", "").split():
                for suite in st.get("suites", "").split():
                    out.append((uri.rstrip("/"), suite, st.get("signed-by")))
    lists = [Path("/etc/apt/sources.list")]
    lists += sorted(d.glob("*.list")) if d.is_dir() else []
    for f in lists:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                sb = None
                if m.group(1):
                    sm = re.search(r"signed-by=(\S+?)[\s\]]", m.group(1))
                    sb = sm.group(1) if sm else None
                out.append((m.group(2).rstrip("/"), m.group(3), sb))
    return out


def host_codename():
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def debian_mirrors():
    """The Debian archive and security mirror URIs this machine's apt uses."""
    entries = apt_entries()
    code = host_codename()
    main = sec = None
    keyring = None
    for uri, suite, sb in entries:
        if suite.endswith("-security"):
            sec = sec or uri
        elif main is None and (suite == code or (code is None and "-" not in suite)):
            main, keyring = uri, sb
    if main is None:
        for uri, suite, sb in entries:
            if not suite.endswith("-security") and "debian" in uri:
                main, keyring = uri, sb
                break
    if main is None:
        raise SystemExit("could not find a Debian mirror in this machine's apt sources")
    return main, sec, keyring or "/usr/share/keyrings/debian-archive-keyring.gpg"


def cmd_sources(args):
    release, extra = args[0], args[1:]
    main, sec, keyring = debian_mirrors()
    # "experimental" is a suite of its own, not "<release>-experimental".
    standalone = ("experimental", "sid", "unstable")
    suites = [release] + [
        s if "-" in s or s == release or s in standalone else f"{release}-{s}" for s in extra
    ]
    if release in ("sid", "unstable"):
        sec = None  # the development suites have no security archive
    print("Types: deb")
    print(f"URIs: {main}")
    print("Suites: " + " ".join(suites))
    print("Components: main")
    print(f"Signed-By: {keyring}")
    if sec:
        print()
        print("Types: deb")
        print(f"URIs: {sec}")
        print(f"Suites: {release}-security")
        print("Components: main")
        print(f"Signed-By: {keyring}")


def cmd_unzip(args):
    wheel, dest, prefixes = args[0], Path(args[1]), args[2:]
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if prefixes and not any(info.filename.startswith(p) for p in prefixes):
                continue
            path = z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(path, mode)
            elif "/bin/" in info.filename or "_binaries/" in info.filename:
                os.chmod(path, 0o755)


def cmd_fragment(args):
    out, name = Path(args[0]), args[1]
    parts, key = {"server": [], "check": [], "env": [], "modules": []}, None
    for a in args[2:]:
        if a.startswith("::") and a[2:] in parts:
            key = a[2:]
        elif key is None:
            raise SystemExit(f"fragment: argument {a!r} before a ::section")
        else:
            parts[key].append(a)
    env = dict(kv.split("=", 1) for kv in parts["env"])
    frag = {
        "name": name,
        "server": parts["server"],
        "check": parts["check"],
        "env": env,
        "modules": parts["modules"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(frag, indent=1) + "\n")


def verify_one(frag):
    """Start, PING, INFO, SAVE a one-key dump, run the checker on it, stop."""
    entry = dict(frag)
    entry.setdefault("version", "0")
    with tempfile.TemporaryDirectory(prefix=f"rdbkit-verify-{frag['name']}-") as tmp:
        # The debug flag depends on the version, which is only known after a first
        # start: try plain first (it works everywhere), then read the version.
        probe = dict(entry, version="0.0.0", name="redis-probe")
        srv = ServerProcess(probe, Path(tmp) / "probe", load_modules=bool(frag["modules"]))
        with srv:
            c = srv.client()
            try:
                if c.command("PING") != b"PONG":
                    raise RuntimeError("PING did not answer PONG")
                info = parse_info(c.command("INFO", "server"))
                version = server_version(info)
                mods = []
                if frag["modules"]:
                    for m in c.command("MODULE", "LIST"):
                        d = dict(zip(m[::2], m[1::2]))
                        mods.append(d.get(b"name", b"?").decode())
                c.command("SET", "rdbkit:verify", "1")
                c.command("SAVE")
            finally:
                c.close()
        dump = Path(tmp) / "probe" / "dump.rdb"
        magic, rdb_version = read_rdb_header(dump)
        entry.update(version=version, rdb_version=rdb_version, magic=magic)
        # Second start with the real argument set (debug flag on 7.0+), to be sure
        # the generator's command line is accepted.
        with ServerProcess(entry, Path(tmp) / "full", load_modules=bool(frag["modules"])):
            pass
        ok, out = run_check(entry, dump)
        if not ok:
            raise RuntimeError("checker did not accept the dump:\n" + out[-2000:])
    return entry, mods


def cmd_verify(args):
    tools = tools_dir()
    frag_dir = tools / "servers.d"
    manifest, rows, failures = [], [], 0
    for name in SERVER_NAMES:
        fpath, failed = frag_dir / f"{name}.json", frag_dir / f"{name}.failed"
        if failed.exists():
            rows.append((name, "-", "-", "-", "NOT INSTALLED: " + failed.read_text().strip().splitlines()[-1][:90]))
            failures += 1
            continue
        if not fpath.exists():
            rows.append((name, "-", "-", "-", "NOT INSTALLED (no description)"))
            failures += 1
            continue
        frag = json.loads(fpath.read_text())
        t0 = time.monotonic()
        try:
            entry, mods = verify_one(frag)
        except Exception as e:  # report and continue with the others
            msg = str(e).strip().splitlines()
            rows.append((name, "-", "-", "-", "FAILED: " + (msg[0] if msg else type(e).__name__)[:100]))
            sys.stderr.write(f"[verify] {name} failed:\n{e}\n")
            failures += 1
            continue
        manifest.append(
            {
                "name": name,
                "version": entry["version"],
                "rdb_version": entry["rdb_version"],
                "magic": entry["magic"],
                "server": entry["server"],
                "check": entry["check"],
                "env": entry["env"],
                "modules": entry["modules"],
            }
        )
        header = "%s%s" % (entry["magic"], str(entry["rdb_version"]).zfill(4 if entry["magic"] == "REDIS" else 3))
        extra = f" modules={','.join(sorted(mods))}" if mods else ""
        rows.append((name, entry["version"], header, "ok", f"ok ({time.monotonic() - t0:.1f}s){extra}"))
    out = tools / "servers.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out)
    widths = [max(len(str(r[i])) for r in rows + [("server", "version", "rdb", "check", "status")]) for i in range(4)]
    hdr = ("server", "version", "rdb", "check", "status")
    print("  ".join(str(h).ljust(w) for h, w in zip(hdr[:4], widths)) + "  " + hdr[4])
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])
    print(f"manifest: {out} ({len(manifest)} of {len(SERVER_NAMES)} servers)")
    return 1 if failures else 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "sources":
        cmd_sources(args)
        return 0
    if cmd == "unzip":
        cmd_unzip(args)
        return 0
    if cmd == "fragment":
        cmd_fragment(args)
        return 0
    if cmd == "verify":
        return cmd_verify(args)
    raise SystemExit(f"unknown sub-command {cmd!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
