"""A test fixture: chdb behind the part of ClickHouse's HTTP interface clickhouse-connect uses.

No modern ClickHouse server installs on these machines, so the HTTP path of
clickhouse-connect (the one a real server takes) is tested against this: a process
owning its own chdb data directory, serving

- `GET /ping` -> `Ok.`;
- queries in the `query` URL parameter or the body (POST), the body chunked
  (`Transfer-Encoding: chunked`) or not, compressed (`Content-Encoding: lz4 | zstd |
  gzip | deflate`) or not;
- `INSERT ... FORMAT Native` with the data after the statement or as the body;
- `param_<name>` server-side parameters, `database`, and other URL parameters as
  query settings (`insert_deduplication_token`, ...);
- answers in the format the query names (`FORMAT Native` ...), chunked, compressed
  as the client's `Accept-Encoding` asks (unless `enable_http_compression=0`), with
  `X-ClickHouse-Format`, `-Query-Id`, `-Timezone`, `-Summary` headers;
- errors as ClickHouse gives them: HTTP 500 (404 for unknown tables/databases),
  body `Code: N. DB::Exception: ...` and `X-ClickHouse-Exception-Code: N`.

It is not ClickHouse's server: only tier 3 (CLICKHOUSE_URL) may claim server
compatibility. Run: `python tests/sinks/chdb_http.py --port P --path DIR`; it prints
`READY` when it serves. SIGTERM or SIGKILL stops it; the data stay in DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import re
import signal
import sys
import tempfile
import threading
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

_TRANSPORT = {
    "query",
    "database",
    "session_id",
    "session_timeout",
    "session_check",
    "query_id",
    "default_format",
    "compress",
    "decompress",
    "enable_http_compression",
    "wait_end_of_query",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "user",
    "password",
    "quota_key",
    "buffer_size",
    "client_protocol_version",
    "output_format_arrow_string_as_string",
}
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[`\"\w.]+)\s*(?P<cols>\([^)]*\))?\s*"
    r"(?:SETTINGS\s+(?P<settings>.*?)\s+)?FORMAT\s+(?P<fmt>\w+)\s*",
    re.I | re.S,
)
_CODE = re.compile(r"Code:\s*(\d+)")
_NOT_FOUND = {60, 81}  # UNKNOWN_TABLE, UNKNOWN_DATABASE


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return data
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    if encoding == "zstd":
        from clickhouse_connect.driver.compression import _zstd_decompress

        return _zstd_decompress(data)
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    raise ValueError(f"unsupported Content-Encoding {encoding}")


def _compress(data: bytes, accept: str) -> tuple[bytes, str | None]:
    offered = [a.split(";")[0].strip().lower() for a in accept.split(",")]
    if "lz4" in offered:
        import lz4.frame

        return lz4.frame.compress(data), "lz4"
    if "zstd" in offered:
        from clickhouse_connect.driver.compression import _zstd_compress

        return _zstd_compress(data), "zstd"
    if "gzip" in offered:
        return gzip.compress(data), "gzip"
    if "deflate" in offered:
        return zlib.compress(data), "deflate"
    return data, None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """The chdb connection; one statement at a time (chdb sessions are not thread-safe)."""

    def __init__(self, path: str) -> None:
        self.conn = chdb.connect(path)
        self.lock = threading.Lock()
        self.tmp = Path(tempfile.mkdtemp(prefix="chdb-http-"))

    def run(
        self, sql: str, fmt: str, params: dict[str, str], settings: dict[str, str], database: str
    ) -> bytes:
        with self.lock:
            self.conn.query(f"USE `{database}`", "TabSeparated")
            applied = []
            try:
                for key, value in settings.items():
                    if not re.fullmatch(r"\w+", key):
                        raise ValueError(f"Code: 115. DB::Exception: Unknown setting {key}")
                    self.conn.query(f"SET {key} = {_quote(value)}", "TabSeparated")
                    applied.append(key)
                result = self.conn.query(sql, fmt, params=params)
                return result.bytes() if result is not None else b""
            finally:
                for key in applied:
                    # a setting chdb cannot reset is harmless for tests
                    with contextlib.suppress(Exception):
                        self.conn.query(f"SET {key} = DEFAULT", "TabSeparated")

    def insert(
        self, statement: re.Match[str], data: bytes, settings: dict[str, str], database: str
    ) -> bytes:
        path = self.tmp / f"{uuid.uuid4().hex}.{statement['fmt']}"
        path.write_bytes(data)
        try:
            clause = ", ".join(
                f"{k} = {_quote(v)}" for k, v in settings.items() if re.fullmatch(r"\w+", k)
            )
            if statement["settings"]:
                clause = ", ".join(c for c in (clause, statement["settings"]) if c)
            sql = (
                f"INSERT INTO {statement['table']} {statement['cols'] or ''} "
                f"FROM INFILE {_quote(str(path))}"
                + (f" SETTINGS {clause}" if clause else "")
                + f" FORMAT {statement['fmt']}"
            )
            with self.lock:
                self.conn.query(f"USE `{database}`", "TabSeparated")
                self.conn.query(sql, "TabSeparated")
            return b""
        finally:
            path.unlink(missing_ok=True)


#: what the fixture saw (GET /_stats): encodings of bodies and answers, chunked bodies
STATS: dict[str, int] = {}
_STATS_LOCK = threading.Lock()


def _count(key: str) -> None:
    with _STATS_LOCK:
        STATS[key] = STATS.get(key, 0) + 1


class Handler(BaseHTTPRequestHandler):
    """One HTTP request: ping, query or insert."""

    engine: Engine
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
            _count("chunked_body")
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding:
            _count(f"body_{encoding}")
        return _decompress(data, encoding)

    def do_GET(self) -> None:
        """Ping, or a query in the URL."""
        if urlsplit(self.path).path == "/_stats":
            with _STATS_LOCK:
                self._send(200, json.dumps(STATS).encode(), {"Content-Type": "application/json"})
            return
        if urlsplit(self.path).path in ("/ping", "/replicas_status"):
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain"})
            return
        self._handle(b"")

    def do_POST(self) -> None:
        """A query or an insert, in the URL and/or the body."""
        try:
            body = self._body()
        except Exception as exc:
            self._error(f"Code: 27. DB::Exception: cannot read the request body: {exc}")
            return
        self._handle(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in args.items() if k not in _TRANSPORT and not k.startswith("param_")
        }
        database = args.get("database") or self.headers.get("X-ClickHouse-Database") or "default"
        query_id = args.get("query_id") or str(uuid.uuid4())
        if "query" in args:
            text, data = args["query"], body
        else:
            newline = body.find(b"\n")
            head = body.decode(errors="replace")
            insert = _INSERT.match(head[: max(newline, 0) + 1] if newline >= 0 else head)
            if insert and newline >= 0:
                text, data = body[:newline].decode(), body[newline + 1 :]
            else:
                text, data = body.decode(), b""
        text = text.strip()
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": "UTC"}
        try:
            insert = _INSERT.match(text)
            if insert:
                out = self.engine.insert(insert, data, settings, database)
                fmt = "TabSeparated"
            else:
                if data:
                    text = text + " " + data.decode()
                m = _FORMAT.search(text)
                fmt = m.group(1) if m else args.get("default_format", "TabSeparated")
                if m:
                    text = text[: m.start()].rstrip()
                out = self.engine.run(text, fmt, params, settings, database)
        except Exception as exc:
            _count("errors")
            self._error(str(exc), headers)
            return
        _count("inserts" if insert else "queries")
        headers["X-ClickHouse-Format"] = fmt
        headers["X-ClickHouse-Summary"] = json.dumps({"read_rows": "0", "written_rows": "0"})
        # the engine's enable_http_compression is 1 (as system.settings tells the client),
        # so an Accept-Encoding is honoured unless the request turns it off
        if args.get("enable_http_compression", "1") == "1":
            out, encoding = _compress(out, self.headers.get("Accept-Encoding", ""))
            if encoding:
                headers["Content-Encoding"] = encoding
                _count(f"answer_{encoding}")
        self._send(200, out, {"Content-Type": "application/octet-stream", **headers})

    def _error(self, message: str, headers: dict[str, str] | None = None) -> None:
        m = _CODE.search(message)
        code = int(m.group(1)) if m else 1002
        if not m:
            message = f"Code: {code}. DB::Exception: {message}"
        status = 404 if code in _NOT_FOUND else 500
        self._send(
            status,
            (message.rstrip() + "\n").encode(),
            {
                **(headers or {}),
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(code),
            },
        )

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        step = 64 * 1024
        for i in range(0, len(data), step):
            part = data[i : i + step]
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="chdb data directory")
    args = parser.parse_args(argv)
    Handler.engine = Engine(args.path)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("READY", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
