#!/usr/bin/env python3
"""psycopg 3 against helios: python3 tests/py/pg_psycopg.py HOST PORT

Run by tests/tests/pg_clients.rs against a freshly started server (an empty database).
Exits 0 when every check passes; a failed check raises (exit 1, traceback on stderr).
Exit 3 means psycopg is not installed (tools/test.sh installs it).
"""

import math
import sys
from decimal import Decimal

try:
    import psycopg
    from psycopg import errors, pq
except ImportError as e:  # pragma: no cover - reported by the Rust test as a skip
    print(f"psycopg not installed: {e}", file=sys.stderr)
    sys.exit(3)

TS = pq.TransactionStatus

ROWS = [
    (1, True, 2, 3, 4, Decimal("1.50"), 2.5, "x", "y", "z"),
    (2, False, -32768, -(2**31), -(2**63), Decimal("-12345678901234567890.000123"), -1e300,
     "héllo, wörld", "", "n"),
    (3, True, 32767, 2**31 - 1, 2**63 - 1, Decimal("0.0001"), math.inf, "it's \"q\"\n\t", "v",
     "pg_catalog"),
    (4, None, None, None, None, None, None, None, None, None),
]
COLUMNS = "id, b, s, i, l, n, f, t, v, nm"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_error(conn, cls, sql, params=None, prepare=None):
    """Runs `sql`, which must raise `cls`; returns the exception."""
    with conn.cursor() as cur:
        try:
            cur.execute(sql, params, prepare=prepare)
        except cls as e:
            check(e.sqlstate == cls.sqlstate, f"{sql}: sqlstate {e.sqlstate}, want {cls.sqlstate}")
            return e
        except psycopg.Error as e:
            raise AssertionError(f"{sql}: raised {type(e).__name__} ({e.sqlstate}), want {cls.__name__}")
    raise AssertionError(f"{sql}: no error, want {cls.__name__}")


def main(host, port):
    conninfo = dict(host=host, port=port, user="tester", dbname="postgres", connect_timeout=10)

    # Autocommit: every statement on its own.
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        check(conn.info.transaction_status == TS.IDLE, "idle after connect")
        check(conn.info.server_version >= 90000, f"server_version {conn.info.server_version}")
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE all_types (id int4 PRIMARY KEY, b bool, s int2, i int4, l int8, "
                "n numeric, f float8, t text, v varchar(20), nm name)"
            )
            cur.executemany(f"INSERT INTO all_types ({COLUMNS}) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", ROWS)
            check(cur.rowcount in (1, 4), f"executemany rowcount {cur.rowcount}")

            # Text results, parameters in binary (%b) and text (%s).
            cur.execute(f"SELECT {COLUMNS} FROM all_types ORDER BY id")
            got = cur.fetchall()
            check(got == ROWS, f"text results {got!r}")
            check([d.name for d in cur.description] == COLUMNS.split(", "),
                  f"description {cur.description}")
            types = [type(v) for v in got[0]]
            check(types == [int, bool, int, int, int, Decimal, float, str, str, str], f"types {types}")
            check(str(got[0][5]) == "1.50", f"numeric scale kept: {got[0][5]}")

            cur.execute("SELECT id FROM all_types WHERE l > %b AND b = %b ORDER BY id", (0, True))
            check(cur.fetchall() == [(1,), (3,)], "binary parameters in WHERE")

            # Binary results for every supported type, NULLs included.
            with conn.cursor(binary=True) as bcur:
                bcur.execute(f"SELECT {COLUMNS} FROM all_types ORDER BY id")
                check(bcur.pgresult.fformat(0) == pq.Format.BINARY, "results are binary")
                got = bcur.fetchall()
                check(got == ROWS, f"binary results {got!r}")
                bcur.execute("SELECT n, f * 2, l - 1, NOT b FROM all_types WHERE id = %s", (1,))
                check(bcur.fetchone() == (Decimal("1.50"), 5.0, 3, False), "binary expressions")

            # Server-side prepared statements: prepare=True uses a named statement at once,
            # reused for every execution.
            for k in (1, 2, 3, 1, 2, 3):
                cur.execute("SELECT t, n FROM all_types WHERE id = %s", (k,), prepare=True)
                row = cur.fetchone()
                check(row == (ROWS[k - 1][7], ROWS[k - 1][5]), f"prepared row {k}: {row!r}")
            check(len(conn._prepared._names) >= 1, "a statement was prepared server-side")
            with conn.cursor(binary=True) as bcur:
                for k in (3, 2, 1):
                    bcur.execute("SELECT i, f FROM all_types WHERE id = %s", (k,), prepare=True)
                    check(bcur.fetchone() == (ROWS[k - 1][3], ROWS[k - 1][6]), f"binary prepared {k}")

            # Aggregates and an empty result.
            cur.execute("SELECT count(*), sum(i), max(t) FROM all_types")
            check(cur.fetchone() == (4, 3 + 2**31 - 1 - 2**31, "x"), "aggregates")
            cur.execute("SELECT id FROM all_types WHERE id > %s", (100,))
            check(cur.fetchall() == [], "empty result")

            # Streaming results row by row.
            ids = [r[0] for r in cur.stream("SELECT id FROM all_types ORDER BY id")]
            check(ids == [1, 2, 3, 4], f"stream {ids}")

        # Errors map to psycopg's exception classes; the connection stays usable.
        expect_error(conn, errors.UniqueViolation,
                     "INSERT INTO all_types (id, t) VALUES (%s, %s)", (1, "dup"))
        expect_error(conn, errors.DivisionByZero, "SELECT i / %s FROM all_types", (0,))
        expect_error(conn, errors.DivisionByZero, "SELECT 1 / 0")
        expect_error(conn, errors.UndefinedColumn, "SELECT nope FROM all_types")
        expect_error(conn, errors.UndefinedColumn, "SELECT nope FROM all_types WHERE id = %s",
                     (1,), prepare=True)
        expect_error(conn, errors.SyntaxError, "SELEC 1")
        expect_error(conn, errors.SyntaxError, "SELECT FROM WHERE %s", (1,))
        expect_error(conn, errors.UndefinedTable, "SELECT * FROM nowhere")
        expect_error(conn, errors.NumericValueOutOfRange,
                     "INSERT INTO all_types (id, s) VALUES (%s, %s)", (9, 40000))
        check(conn.info.transaction_status == TS.IDLE, "idle after errors in autocommit")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM all_types")
            check(cur.fetchone() == (4,), "usable after errors")

        # conn.transaction() blocks.
        with conn.transaction():
            check(conn.info.transaction_status == TS.INTRANS, "INTRANS in a block")
            conn.execute("INSERT INTO all_types (id, t) VALUES (%s, %s)", (10, "ten"))
        check(conn.info.transaction_status == TS.IDLE, "IDLE after the block")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO all_types (id, t) VALUES (%s, %s)", (1, "dup"))
            raise AssertionError("the block should have raised")
        except errors.UniqueViolation:
            pass
        check(conn.info.transaction_status == TS.IDLE, "IDLE after a failed block")
        # A nested block is a savepoint: an error in it undoes only its own writes.
        with conn.transaction():
            conn.execute("INSERT INTO all_types (id, t) VALUES (%s, %s)", (20, "outer"))
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO all_types (id, t) VALUES (%s, %s)", (21, "inner"))
                    conn.execute("SELECT 1 / 0")
            except errors.DivisionByZero:
                pass
            check(conn.info.transaction_status == TS.INTRANS, "INTRANS after the inner block")
        check(conn.info.transaction_status == TS.IDLE, "IDLE after a nested block")
        rows = conn.execute("SELECT id FROM all_types WHERE id IN (20, 21) ORDER BY id").fetchall()
        check(rows == [(20,)], f"outer kept, inner undone: {rows!r}")
        row = conn.execute("SELECT t FROM all_types WHERE id = %s", (10,)).fetchone()
        check(row == ("ten",), f"committed block row {row!r}")

        # A failed block leaves nothing (the rows before the error included).
        try:
            with conn.transaction():
                conn.execute("INSERT INTO all_types (id, t) VALUES (%s, %s)", (30, "gone"))
                conn.execute("INSERT INTO all_types (id, t) VALUES (%s, %s)", (1, "dup"))
        except errors.UniqueViolation:
            pass
        row = conn.execute("SELECT count(*) FROM all_types WHERE id = 30").fetchone()
        check(row == (0,), f"rolled-back row {row!r}")

        # REPEATABLE READ: first committer wins, the other gets SerializationFailure (40001).
        with psycopg.connect(autocommit=True, **conninfo) as other:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                conn.execute("SELECT t FROM all_types WHERE id = 10").fetchone()
                other.execute("UPDATE all_types SET t = 'changed' WHERE id = 10")
                seen = conn.execute("SELECT t FROM all_types WHERE id = 10").fetchone()
                check(seen == ("ten",), f"the snapshot still sees {seen!r}")
                try:
                    conn.execute("UPDATE all_types SET t = 'mine' WHERE id = 10")
                    raise AssertionError("a concurrent update should fail with 40001")
                except errors.SerializationFailure:
                    pass
                raise_rollback = psycopg.Rollback()
                raise raise_rollback
        row = conn.execute("SELECT t FROM all_types WHERE id = 10").fetchone()
        check(row == ("changed",), f"the first committer's value {row!r}")

    # Not autocommit (psycopg's default): statements open a transaction implicitly.
    with psycopg.connect(**conninfo) as conn:
        check(conn.info.transaction_status == TS.IDLE, "idle before the first statement")
        cur = conn.cursor()
        cur.execute("SELECT id FROM all_types WHERE id = %s", (1,))
        check(conn.info.transaction_status == TS.INTRANS, "INTRANS after a statement")
        conn.commit()
        check(conn.info.transaction_status == TS.IDLE, "IDLE after commit")
        try:
            cur.execute("SELECT 1 / %s", (0,))
            raise AssertionError("should fail")
        except errors.DivisionByZero:
            pass
        check(conn.info.transaction_status == TS.INERROR, "INERROR after an error in a block")
        try:
            cur.execute("SELECT 1")
            raise AssertionError("should fail in a failed block")
        except errors.InFailedSqlTransaction:
            pass
        conn.rollback()
        check(conn.info.transaction_status == TS.IDLE, "IDLE after rollback")
        cur.execute("SELECT t FROM all_types WHERE id = %s", (1,), prepare=True)
        check(cur.fetchone() == ("x",), "usable after rollback")
        conn.commit()

        # More prepared statements than psycopg keeps: it evicts with DEALLOCATE, inside the
        # open transaction (a failed DEALLOCATE would abort it); and after a rollback psycopg
        # sends DEALLOCATE ALL.
        conn.prepared_max = 2
        for k in range(1, 6):
            cur.execute(f"SELECT id + {k} FROM all_types WHERE id = %s", (1,), prepare=True)
            check(cur.fetchone() == (1 + k,), f"evicting prepared {k}")
        check(conn.info.transaction_status == TS.INTRANS, "still INTRANS after evictions")
        check(len(conn._prepared._names) <= 2, f"{len(conn._prepared._names)} kept")
        conn.rollback()
        cur.execute("SELECT id + 1 FROM all_types WHERE id = %s", (1,), prepare=True)
        check(cur.fetchone() == (2,), "prepared again after DEALLOCATE ALL")
        conn.commit()
        conn.execute("DEALLOCATE ALL")
        try:
            conn.execute("DEALLOCATE nosuch")
            raise AssertionError("DEALLOCATE of a missing statement should fail")
        except errors.InvalidSqlStatementName:
            pass
        conn.rollback()

        # A pipeline: several Parse/Bind/Execute sequences, one Sync.
        with conn.pipeline():
            curs = []
            for k in (1, 2, 3):
                c = conn.cursor()
                c.execute("SELECT id, v FROM all_types WHERE id = %s", (k,))
                curs.append(c)
        got = [c.fetchone() for c in curs]
        check(got == [(1, "y"), (2, ""), (3, "v")], f"pipeline {got!r}")
        conn.commit()

    check_dates_uuids_json_arrays(host, port)
    check_server_side_cursors(host, port)
    print("pg_psycopg: all checks passed")


def check_server_side_cursors(host, port):
    """Named (server-side) cursors, as Django's QuerySet.iterator() and SQLAlchemy's
    yield_per use them: DECLARE, FETCH FORWARD n, CLOSE; WITH HOLD past a COMMIT."""
    with psycopg.connect(host=host, port=port, user="tester", dbname="postgres") as conn:
        conn.execute("CREATE TABLE cur_rows (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO cur_rows SELECT g, 'v' || g FROM generate_series(1, 25) g")
        conn.commit()
        with conn.cursor(name="walk") as cur:
            cur.itersize = 10
            cur.execute("SELECT id, v FROM cur_rows WHERE id > %s ORDER BY id", (3,))
            check(cur.fetchone() == (4, "v4"), "first row of a named cursor")
            check(cur.fetchmany(3) == [(5, "v5"), (6, "v6"), (7, "v7")], "fetchmany")
            rest = [r[0] for r in cur]
            check(rest == list(range(8, 26)), f"iteration in batches {rest!r}")
        with conn.cursor(name="kept", withhold=True) as cur:
            cur.execute("SELECT count(*) FROM cur_rows")
            conn.commit()
            check(cur.fetchall() == [(25,)], "a WITH HOLD cursor outlives its COMMIT")
        conn.rollback()
        try:
            conn.execute("FETCH NEXT FROM walk")
            raise AssertionError("a closed cursor should be gone")
        except errors.InvalidCursorName:
            conn.rollback()


def check_dates_uuids_json_arrays(host, port):
    """psycopg's own loaders parse helios's text output of the newer types, and its dumpers
    send Python values as typed parameters (binary too, with %b)."""
    import datetime as dt
    import uuid
    from psycopg.types.json import Jsonb

    with psycopg.connect(host=host, port=port, user="tester", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute("SET TimeZone = 'Europe/Berlin'")
        conn.execute(
            "CREATE TABLE typed (id uuid PRIMARY KEY, at timestamptz, day date, t time, "
            "took interval, doc jsonb, tags text[], r real, raw bytea)")
        berlin = dt.timezone(dt.timedelta(hours=1))
        row = (uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
               dt.datetime(2024, 1, 15, 8, 30, 0, 250000, tzinfo=berlin),
               dt.date(2024, 2, 29), dt.time(23, 59, 59, 999999),
               dt.timedelta(days=-1, hours=2, microseconds=5), Jsonb({"k": [1, None]}),
               ["a", None, "b c"], 0.5, b"\x00\xff")
        for placeholder in ("%s", "%b"):
            conn.execute("DELETE FROM typed")
            values = ", ".join([placeholder] * len(row))
            conn.execute(f"INSERT INTO typed VALUES ({values})", row)
            got = conn.execute("SELECT * FROM typed").fetchone()
            check(got[0] == row[0], f"uuid {got[0]!r}")
            check(got[1] == row[1], f"timestamptz {got[1]!r}")
            check(got[1].utcoffset() == dt.timedelta(hours=1), f"shown in Berlin {got[1]!r}")
            check(got[2:5] == row[2:5], f"date/time/interval {got[2:5]!r}")
            check(got[5] == {"k": [1, None]}, f"jsonb {got[5]!r}")
            check(got[6:] == (row[6], 0.5, row[8]), f"array/real/bytea {got[6:]!r}")
            binary = conn.cursor(binary=True).execute("SELECT * FROM typed").fetchone()
            check(binary[:5] == got[:5] and binary[6:] == got[6:], f"binary {binary!r}")
        n = conn.execute(
            "SELECT count(*) FROM typed WHERE at < now() AND day + 1 = %s AND %s = ANY(tags)",
            (dt.date(2024, 3, 1), "b c")).fetchone()[0]
        check(n == 1, f"date arithmetic and ANY {n}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], int(sys.argv[2]))
