"""The chdb HTTP fixture speaks the part of ClickHouse's HTTP interface that
clickhouse-connect uses: chunked, lz4- and zstd-compressed bodies and answers, server-side
parameters, settings, and ClickHouse's error codes. (Tier 2; not a ClickHouse server.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.sinks.conftest import ChdbHttp


def _stats(server: ChdbHttp) -> dict[str, int]:
    with urllib.request.urlopen(server.dsn + "/_stats", timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("compress", ["lz4", "zstd"])
def test_compressed_chunked_inserts_and_answers(
    chdb_http: ChdbHttp, compress: str, unique: str
) -> None:
    before = _stats(chdb_http)
    client = clickhouse_connect.get_client(dsn=chdb_http.dsn, compress=compress)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS h_{unique}")
        client.command(
            f"CREATE TABLE h_{unique}.t (a UInt32, b String) ENGINE = MergeTree ORDER BY a"
        )
        client.insert(
            f"h_{unique}.t", [[i, "x" * (i % 50)] for i in range(5000)], column_names=["a", "b"]
        )
        got = client.query(
            f"SELECT count(), sum(a), max(length(b)) FROM h_{unique}.t WHERE a >= {{lo:UInt32}}",
            parameters={"lo": 1000},
        ).result_rows
        assert got == [(4000, sum(range(1000, 5000)), 49)]
        client.command(f"DROP DATABASE h_{unique}")
    finally:
        client.close()
    after = _stats(chdb_http)
    for key in (f"body_{compress}", f"answer_{compress}", "chunked_body"):
        assert after.get(key, 0) > before.get(key, 0), key


def test_errors_carry_clickhouse_codes(chdb_http: ChdbHttp) -> None:
    client = clickhouse_connect.get_client(dsn=chdb_http.dsn)
    try:
        with pytest.raises(DatabaseError) as err:
            client.query("SELECT * FROM no_such_table_here")
        assert "code: 60" in str(err.value).lower()
        with pytest.raises(DatabaseError) as err:
            client.query("SELEC 1")
        assert "code: 62" in str(err.value).lower()  # SYNTAX_ERROR
    finally:
        client.close()
    req = urllib.request.Request(chdb_http.dsn + "/?query=SELECT+nope_fn()")
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError("expected an HTTP error")
    except urllib.error.HTTPError as exc:
        assert exc.code == 500
        assert exc.headers["X-ClickHouse-Exception-Code"] == "46"  # UNKNOWN_FUNCTION
        assert exc.read().startswith(b"Code: 46. DB::Exception:")
