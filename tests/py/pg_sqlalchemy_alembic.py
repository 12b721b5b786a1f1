#!/usr/bin/env python3
"""SQLAlchemy 2 (psycopg 3 dialect) and Alembic against helios:
python3 tests/py/pg_sqlalchemy_alembic.py HOST PORT

Run by tests/tests/pg_clients.rs against a freshly started server (an empty database).
Exits 0 when every check passes; a failed check raises (exit 1, traceback on stderr).
Exit 3 means SQLAlchemy or Alembic is not installed (tools/test.sh installs them).

What it proves:
- SQLAlchemy connects: its psycopg dialect looks types up with `to_regtype()` on connect.
- Alembic's default mode runs every pending migration in ONE transaction, each ending with a
  write to `alembic_version`, so DDL follows writes inside the block (on other tables).
- A migration that fails halfway rolls back whole: its ADD COLUMN and CREATE TABLE too.
- The ORM: a mapped class, a session, inserts, a query, an update, a rollback.
"""

import pathlib
import sys
import tempfile
import textwrap

try:
    import sqlalchemy as sa
    from sqlalchemy import orm
    from alembic import command
    from alembic.config import Config
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(f"sqlalchemy/alembic not installed: {e}", file=sys.stderr)
    sys.exit(3)

MIGRATIONS = {
    "m1_account.py": """
        revision = "m1"
        down_revision = None
        from alembic import op
        import sqlalchemy as sa
        def upgrade():
            op.create_table(
                "account",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(50), nullable=False),
            )
            op.create_index("ix_account_name", "account", ["name"], unique=True)
        def downgrade():
            op.drop_table("account")
    """,
    "m2_balance.py": """
        revision = "m2"
        down_revision = "m1"
        from alembic import op
        import sqlalchemy as sa
        def upgrade():
            op.add_column(
                "account",
                sa.Column("balance", sa.Numeric(12, 2), server_default="0", nullable=False),
            )
            op.create_table(
                "ledger",
                sa.Column("id", sa.BigInteger, primary_key=True),
                sa.Column("account_id", sa.Integer, nullable=False),
                sa.Column("delta", sa.Numeric(12, 2), nullable=False),
            )
        def downgrade():
            op.drop_table("ledger")
    """,
    "m3_seed.py": """
        revision = "m3"
        down_revision = "m2"
        from alembic import op
        def upgrade():
            op.execute("INSERT INTO account (id, name, balance) VALUES (1, 'alice', 10), (2, 'bob', 0)")
            op.create_index("ix_ledger_account", "ledger", ["account_id"])
        def downgrade():
            op.drop_index("ix_ledger_account", "ledger")
    """,
}

BROKEN_MIGRATION = """
    revision = "m4"
    down_revision = "m3"
    from alembic import op
    import sqlalchemy as sa
    def upgrade():
        op.add_column("account", sa.Column("nickname", sa.String(20)))
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO account (id, name) VALUES (1, 'duplicate id')")
    def downgrade():
        pass
"""

ENV_PY = """
from alembic import context
import sqlalchemy as sa
config = context.config
engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
"""


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def alembic_config(root, url):
    scripts = root / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY)
    (scripts / "script.py.mako").write_text("")
    for name, body in MIGRATIONS.items():
        (scripts / "versions" / name).write_text(textwrap.dedent(body))
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


class Base(orm.DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(50))
    balance: orm.Mapped[float] = orm.mapped_column(sa.Numeric(12, 2))


class Ledger(Base):
    __tablename__ = "ledger"
    id: orm.Mapped[int] = orm.mapped_column(sa.BigInteger, primary_key=True)
    account_id: orm.Mapped[int]
    delta: orm.Mapped[float] = orm.mapped_column(sa.Numeric(12, 2))


def main(host, port):
    url = f"postgresql+psycopg://postgres@{host}:{port}/postgres"
    engine = sa.create_engine(url)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config(pathlib.Path(tmp), url)
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            check(version == "m3", f"alembic_version {version!r}")
            names = conn.execute(sa.text("SELECT name FROM account ORDER BY id")).scalars().all()
            check(names == ["alice", "bob"], f"seeded rows {names!r}")
            inspector = sa.inspect(conn)
            tables = set(inspector.get_table_names())
            check(tables >= {"account", "ledger", "alembic_version"}, f"tables {tables!r}")
            columns = conn.execute(sa.text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'account' ORDER BY ordinal_position")).scalars().all()
            check(columns == ["id", "name", "balance"], f"account columns {columns!r}")
        # Running it again finds nothing to do.
        command.upgrade(cfg, "head")
        # A migration that fails halfway leaves nothing behind: its DDL rolls back with it.
        (pathlib.Path(tmp) / "migrations" / "versions" / "m4_broken.py").write_text(
            textwrap.dedent(BROKEN_MIGRATION))
        try:
            command.upgrade(cfg, "head")
            raise AssertionError("the broken migration succeeded")
        except sa.exc.IntegrityError as e:
            check(getattr(e.orig, "sqlstate", None) == "23505", f"sqlstate {e.orig!r}")
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            check(version == "m3", f"alembic_version after the failure {version!r}")
            tables = set(sa.inspect(conn).get_table_names())
            check("audit" not in tables, f"the failed migration's table stayed: {tables!r}")
            columns = conn.execute(sa.text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'account' ORDER BY ordinal_position")).scalars().all()
            check(columns == ["id", "name", "balance"], f"columns after the failure {columns!r}")
        (pathlib.Path(tmp) / "migrations" / "versions" / "m4_broken.py").unlink()

    with orm.Session(engine) as session:
        alice = session.get(Account, 1)
        check(alice is not None and alice.name == "alice", f"get {alice!r}")
        alice.balance -= 3
        session.add(Ledger(id=1, account_id=1, delta=-3))
        session.add(Account(id=3, name="carol", balance=3))
        session.commit()
    with orm.Session(engine) as session:
        total = session.scalar(sa.select(sa.func.sum(Account.balance)))
        check(total == 10, f"balances sum to 10, got {total!r}")
        session.add(Account(id=4, name="dave", balance=100))
        session.flush()
        session.rollback()
        check(session.get(Account, 4) is None, "rolled back insert is gone")
        rows = session.execute(
            sa.select(Account.name, Ledger.delta).join(Ledger, Ledger.account_id == Account.id)
        ).all()
        check([tuple(r) for r in rows] == [("alice", -3)], f"join {rows!r}")
    # A duplicate under the migration's unique index is an IntegrityError (23505).
    try:
        with orm.Session(engine) as session:
            session.add(Account(id=5, name="bob", balance=0))
            session.commit()
        raise AssertionError("duplicate name accepted")
    except sa.exc.IntegrityError as e:
        check(getattr(e.orig, "sqlstate", None) == "23505", f"sqlstate {e.orig!r}")
    print("all checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], int(sys.argv[2]))
