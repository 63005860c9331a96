"""A real MediaWiki on 127.0.0.1 for tests and benchmarks, and a fault-injecting proxy for it.

    wiki = LocalWiki.start(tmp_dir, demo_dump_path())   # install.php + importDump.php + php -S
    wiki.api                                             # http://127.0.0.1:PORT/api.php
    wiki.stop()

Needs Debian's `mediawiki` package and `php-cli php-sqlite3 php-mbstring php-intl php-xml`
(`.ci/run` installs them); `unavailable()` says why a test must skip where they are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

MEDIAWIKI = Path(os.environ.get("WIKITUNE_MEDIAWIKI_DIR", "/usr/share/mediawiki"))

# The demo wiki links files it does not contain; on a real wiki the parser then adds the
# tracking category 壊れたファイルへのリンクがあるページ, which the dump's wikitext never names. A
# message of "-" disables a tracking category, so the crawl and `extract` see the same categories.
EXTRA_SETTINGS = r"""
$wgMainCacheType = CACHE_NONE;
$wgJobRunRate = 0;
$wgHooks['MessagesPreLoad'][] = static function ( $title, &$message, $code ) {
    if ( strtolower( explode( '/', $title )[0] ) === 'broken-file-category' ) {
        $message = '-';
    }
    return true;
};
"""

ROUTER = r"""<?php
$path = parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );
if ( $path === '/api.php' || $path === '/index.php' ) {
    chdir( %(ip)r );
    require %(ip)r . $path;
    return true;
}
http_response_code( 404 );
echo "not found";
return true;
"""


def unavailable() -> str | None:
    """Why a real MediaWiki cannot run here, or None when it can."""
    if shutil.which("php") is None:
        return "php is not installed (apt-get install php-cli php-sqlite3 php-mbstring php-intl php-xml)"
    if not (MEDIAWIKI / "maintenance" / "install.php").is_file():
        return f"MediaWiki is not installed at {MEDIAWIKI} (apt-get install mediawiki)"
    probe = subprocess.run(["php", "-m"], capture_output=True, text=True)
    missing = [m for m in ("pdo_sqlite", "mbstring", "intl", "xml") if m not in probe.stdout.lower()]
    if missing:
        return f"php modules missing: {', '.join(missing)}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalWiki:
    """A MediaWiki installed into `root` (SQLite) and served by `php -S`."""

    root: Path
    port: int
    process: subprocess.Popen

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api.php"

    @classmethod
    def start(cls, root: Path, dump: Path) -> "LocalWiki":
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {**os.environ, "MW_CONFIG_FILE": str(root / "LocalSettings.php")}
        _php(["install.php", "--dbtype", "sqlite", "--dbpath", str(root / "db"), "--dbname", "wiki",
              "--server", f"http://127.0.0.1:{port}", "--scriptpath", "", "--lang", "ja",
              "--pass", "wikitune-test-admin-1", "--confpath", str(root), "架空アニメ百科", "Admin"], env)
        with open(root / "LocalSettings.php", "a", encoding="utf-8") as f:
            f.write(EXTRA_SETTINGS)
        _php(["importDump.php", "--no-updates", str(dump)], env)
        # importDump leaves links (categorylinks) to the job queue; fill them now.
        for script in ("refreshLinks.php", "initSiteStats.php"):
            _php([script], env)
        (root / "router.php").write_text(ROUTER % {"ip": str(MEDIAWIKI)}, encoding="utf-8")
        log = open(root / "php-server.log", "wb")
        process = subprocess.Popen(["php", "-S", f"127.0.0.1:{port}", str(root / "router.php")],
                                   cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        wiki = cls(root=root, port=port, process=process)
        wiki._wait_ready()
        return wiki

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"php -S exited: {(self.root / 'php-server.log').read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(self.api + "?action=query&meta=siteinfo&format=json", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"MediaWiki at {self.api} did not answer within {timeout}s")

    def edit(self, title: str, text: str) -> None:
        """Save a new revision of a page, as an editor would (maintenance/edit.php)."""
        env = {**os.environ, "MW_CONFIG_FILE": str(self.root / "LocalSettings.php")}
        result = subprocess.run(["php", str(MEDIAWIKI / "maintenance" / "edit.php"), "-u", "Admin", "-s", "test edit", title],
                                input=text, env=env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"edit.php failed: {result.stdout[-1000:]}{result.stderr[-1000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _php(args: list[str], env: dict[str, str]) -> None:
    script = MEDIAWIKI / "maintenance" / args[0]
    result = subprocess.run(["php", str(script), *args[1:]], env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stdout[-1500:]}{result.stderr[-1500:]}")


# ---- the fault-injecting proxy -------------------------------------------------------------------
FAULTS = ("429", "503", "maxlag", "reset", "cut")
MAXLAG_BODY = (b'{"error":{"code":"maxlag","info":"Waiting for 10.64.0.1: 7 seconds lagged.",'
               b'"host":"10.64.0.1","lag":7,"type":"db"},"servedby":"mw1234"}')


@dataclass
class FaultProxy:
    """HTTP proxy on 127.0.0.1 in front of `upstream` that injects faults.

    Every `every`-th request (0: never) gets the next fault of `faults` in turn, instead of
    the wiki's answer: 429 with `Retry-After`, 503, a `maxlag` error body (HTTP 200 with
    `Retry-After`, as MediaWiki sends it), a connection reset before any byte, or a body cut off
    by a reset. `on_request(n, path)` runs before request number n (from 1) is served; the kill
    tests use it to kill the crawler while its request is in flight (returning False resets the
    connection instead of answering).
    """

    upstream: str
    every: int = 0
    faults: tuple[str, ...] = FAULTS
    retry_after: int = 1
    rewrite: dict[str, str] = field(default_factory=dict)
    """Query parameters replaced on the way to the wiki, e.g. {"cmlimit": "2"} to make every
    category listing a long `cmcontinue` chain, as a big category on Wikipedia would be."""
    on_request: Callable[[int, str], bool] | None = None
    count: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                with proxy._lock:
                    proxy.count += 1
                    n = proxy.count
                    fault = None
                    if proxy.every and n % proxy.every == 0:
                        fault = proxy.faults[(n // proxy.every - 1) % len(proxy.faults)]
                        proxy.injected[fault] = proxy.injected.get(fault, 0) + 1
                if proxy.on_request is not None and proxy.on_request(n, self.path) is False:
                    self._reset()
                    return
                if fault == "429":
                    self._send(429, b"Too Many Requests", {"Retry-After": str(proxy.retry_after)})
                elif fault == "503":
                    self._send(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})
                elif fault == "maxlag":
                    self._send(200, MAXLAG_BODY, {"Retry-After": str(proxy.retry_after), "X-Database-Lag": "7",
                                                  "Content-Type": "application/json; charset=utf-8"})
                elif fault == "reset":
                    self._reset()
                else:
                    status, headers, body = proxy._forward(self.path, self.headers)
                    if fault == "cut":
                        self.send_response(status)
                        for k, v in headers:
                            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                                self.send_header(k, v)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self._reset()
                    else:
                        self._send(status, body, {k: v for k, v in headers
                                                  if k.lower() not in ("content-length", "transfer-encoding", "connection")})

            def _send(self, status, body, headers):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _reset(self):
                # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api.php"

    def _forward(self, path: str, headers) -> tuple[int, list[tuple[str, str]], bytes]:
        base = self.upstream.rsplit("/api.php", 1)[0]
        if self.rewrite:
            url = urllib.parse.urlsplit(path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            query.update({k: v for k, v in self.rewrite.items() if k in query})
            path = url.path + "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(base + path, headers={k: v for k, v in headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, list(r.headers.items()), r.read()
        except urllib.error.HTTPError as err:
            return err.code, list(err.headers.items()), err.read()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
