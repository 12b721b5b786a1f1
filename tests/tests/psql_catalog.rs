//! psql's describe meta-commands (`\l`, `\dn`, `\dt`, `\d`, `\d t`, `\di`, `\ds`, `\dv`,
//! `\d seq`, `\d view`) against helios:
//! psql 15 sends its usual catalog queries (pg_class, pg_attribute, pg_index, regex
//! operators, format_type, ...) and must print what it prints for PostgreSQL 15.
//!
//! The expected outputs below were checked against a real PostgreSQL 15 (Debian's
//! postgresql-15, same psql, same statements, user `tester`). They are identical except:
//! - `\l`: helios has no template0/template1, its collation is C (PostgreSQL here:
//!   C.UTF-8), and the database owner is the role helios shows for everything (named after
//!   the session user; PostgreSQL: `postgres`).
//! - `\dn`: `public` is owned by that role too (PostgreSQL 15: `pg_database_owner`).

use helios_tests::server::{psql_command, run_psql, which, HeliosServer, ServerOpts};

/// Runs one psql command with the default (aligned) output format.
fn psql(server: &HeliosServer, command: &str) -> (bool, String, String) {
    let mut psql = psql_command(server, "tester", "postgres");
    psql.args(["-v", "ON_ERROR_STOP=1", "-c", command])
        .env("PAGER", "")
        .env("PSQL_PAGER", "")
        .env("COLUMNS", "200");
    run_psql(psql)
}

/// Runs each psql command, which must succeed and print exactly what is expected.
fn assert_prints(server: &HeliosServer, cases: &[(&str, &str)]) {
    for (command, expected) in cases {
        let (ok, out, err) = psql(server, command);
        assert!(ok, "{command}: {err}");
        assert_eq!(out, *expected, "{command}\n{out}");
    }
}

const SETUP: &[&str] = &[
    "CREATE TABLE t (id int8 NOT NULL, k text NOT NULL, n int DEFAULT 42, note text DEFAULT 'none', PRIMARY KEY (id, k))",
    "CREATE SCHEMA s",
    // Not on the search path: listed by \dn, not by \dt.
    "CREATE TABLE s.hidden (x int)",
];

const L: &str = r#"                                         List of databases
   Name   | Owner  | Encoding | Collate | Ctype | ICU Locale | Locale Provider | Access privileges 
----------+--------+----------+---------+-------+------------+-----------------+-------------------
 postgres | tester | UTF8     | C       | C     |            | libc            | 
(1 row)

"#;

const DN: &str = r#" List of schemas
  Name  | Owner  
--------+--------
 public | tester
 s      | tester
(2 rows)

"#;

const DT: &str = r#"       List of relations
 Schema | Name | Type  | Owner  
--------+------+-------+--------
 public | t    | table | tester
(1 row)

"#;

const D_T: &str = r#"                    Table "public.t"
 Column |  Type   | Collation | Nullable |   Default    
--------+---------+-----------+----------+--------------
 id     | bigint  |           | not null | 
 k      | text    |           | not null | 
 n      | integer |           |          | 42
 note   | text    |           |          | 'none'::text
Indexes:
    "t_pkey" PRIMARY KEY, btree (id, k)

"#;

const DI: &str = r#"            List of relations
 Schema |  Name  | Type  | Owner  | Table 
--------+--------+-------+--------+-------
 public | t_pkey | index | tester | t
(1 row)

"#;

#[test]
fn psql_describe_meta_commands() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    for statement in SETUP {
        let (ok, _, err) = psql(&server, statement);
        assert!(ok, "{statement}: {err}");
    }
    assert_prints(
        &server,
        &[
            ("\\l", L),
            ("\\dn", DN),
            ("\\dt", DT),
            ("\\d", DT),
            ("\\d t", D_T),
            ("\\di", DI),
        ],
    );
    // A relation that does not exist: psql's own message and exit status.
    let (ok, out, err) = psql(&server, "\\d nosuch");
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(err.trim(), "Did not find any relation named \"nosuch\".");
    // \d on a table outside the search path finds nothing either (as in PostgreSQL).
    let (ok, _, err) = psql(&server, "\\d hidden");
    assert!(!ok);
    assert!(
        err.contains("Did not find any relation named \"hidden\""),
        "{err}"
    );
    // ... but a qualified name finds it.
    let (ok, out, err) = psql(&server, "\\d s.hidden");
    assert!(ok, "{err}");
    assert!(out.contains("Table \"s.hidden\""), "{out}");
}

const SEQUENCE_SETUP: &str = "CREATE TABLE st (id serial PRIMARY KEY, x int);
    CREATE SEQUENCE s1 INCREMENT 5 START 10 CYCLE;
    CREATE TABLE big (id bigserial, s smallserial)";

const DS: &str = r#"            List of relations
 Schema |    Name    |   Type   | Owner  
--------+------------+----------+--------
 public | big_id_seq | sequence | tester
 public | big_s_seq  | sequence | tester
 public | s1         | sequence | tester
 public | st_id_seq  | sequence | tester
(4 rows)

"#;

const D_WITH_SEQUENCES: &str = r#"            List of relations
 Schema |    Name    |   Type   | Owner  
--------+------------+----------+--------
 public | big        | table    | tester
 public | big_id_seq | sequence | tester
 public | big_s_seq  | sequence | tester
 public | s1         | sequence | tester
 public | st         | table    | tester
 public | st_id_seq  | sequence | tester
(6 rows)

"#;

const D_S1: &str = r#"                             Sequence "public.s1"
  Type  | Start | Minimum |       Maximum       | Increment | Cycles? | Cache 
--------+-------+---------+---------------------+-----------+---------+-------
 bigint |    10 |       1 | 9223372036854775807 |         5 | yes     |     1

"#;

const D_ST_ID_SEQ: &str = r#"                     Sequence "public.st_id_seq"
  Type   | Start | Minimum |  Maximum   | Increment | Cycles? | Cache 
---------+-------+---------+------------+-----------+---------+-------
 integer |     1 |       1 | 2147483647 |         1 | no      |     1
Owned by: public.st.id

"#;

const D_BIG_S_SEQ: &str = r#"                    Sequence "public.big_s_seq"
   Type   | Start | Minimum | Maximum | Increment | Cycles? | Cache 
----------+-------+---------+---------+-----------+---------+-------
 smallint |     1 |       1 |   32767 |         1 | no      |     1
Owned by: public.big.s

"#;

const VIEW_SETUP: &str = "CREATE VIEW v1 AS SELECT id, x * 2 AS y FROM st;
    CREATE VIEW v2 (a, b) AS SELECT 1, 'x'::text";

const DV: &str = r#"       List of relations
 Schema | Name | Type | Owner  
--------+------+------+--------
 public | v1   | view | tester
 public | v2   | view | tester
(2 rows)

"#;

const D_V1: &str = r#"                 View "public.v1"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 id     | integer |           |          | 
 y      | integer |           |          | 

"#;

const D_V2: &str = r#"                 View "public.v2"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 a      | integer |           |          | 
 b      | text    |           |          | 

"#;

const PG_TABLES: &str = r#" schemaname | tablename | tableowner | tablespace | hasindexes | hasrules | hastriggers | rowsecurity 
------------+-----------+------------+------------+------------+----------+-------------+-------------
 public     | big       | tester     |            | f          | f        | f           | f
 public     | st        | tester     |            | t          | f        | f           | f
(2 rows)

"#;

const PG_INDEXES: &str = r#" schemaname | tablename | indexname | tablespace |                          indexdef                          
------------+-----------+-----------+------------+------------------------------------------------------------
 public     | st        | st_pkey   |            | CREATE UNIQUE INDEX st_pkey ON public.st USING btree (id)
 public     | st        | st_x      |            | CREATE INDEX st_x ON public.st USING btree (x)
 public     | st        | st_xu     |            | CREATE UNIQUE INDEX st_xu ON public.st USING btree (x, id)
(3 rows)

"#;

/// Sequences and views are relations (`pg_class` relkind `S` and `v`, `pg_sequence`,
/// `pg_depend` for a serial column's sequence, `pg_attribute` for a view's columns):
/// `\ds`, `\dv` and `\d` list them and `\d name` describes one, exactly as PostgreSQL 15
/// prints it (outputs taken from it, same statements, user `tester`).
#[test]
fn psql_lists_and_describes_sequences_and_views() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let (ok, _, err) = psql(&server, SEQUENCE_SETUP);
    assert!(ok, "{err}");
    assert_prints(
        &server,
        &[
            ("\\ds", DS),
            ("\\d", D_WITH_SEQUENCES),
            ("\\d s1", D_S1),
            ("\\d st_id_seq", D_ST_ID_SEQ),
            ("\\d big_s_seq", D_BIG_S_SEQ),
        ],
    );
    let (ok, _, err) = psql(&server, VIEW_SETUP);
    assert!(ok, "{err}");
    assert_prints(&server, &[("\\dv", DV), ("\\d v1", D_V1), ("\\d v2", D_V2)]);
    // The pg_tables and pg_indexes views.
    let (ok, _, err) = psql(
        &server,
        "CREATE INDEX st_x ON st (x); CREATE UNIQUE INDEX st_xu ON st (x, id)",
    );
    assert!(ok, "{err}");
    assert_prints(
        &server,
        &[
            (
                "SELECT * FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
                PG_TABLES,
            ),
            (
                "SELECT * FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
                PG_INDEXES,
            ),
        ],
    );
    // quote_ident quotes what PostgreSQL's does (upper case, spaces, reserved keywords).
    let (ok, out, err) = psql(
        &server,
        "SELECT quote_ident('select') || quote_ident('name') || quote_ident('Foo') AS q",
    );
    assert!(ok, "{err}");
    assert!(out.contains("\n \"select\"name\"Foo\"\n"), "{out}");
}

#[test]
fn catalog_queries_from_other_clients() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let (ok, _, err) = psql(&server, SETUP[0]);
    assert!(ok, "{err}");
    let (ok, out, err) = psql(
        &server,
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY ordinal_position",
    );
    assert!(ok, "{err}");
    assert!(out.contains(" t          | note        | text"), "{out}");
    // Writing a catalog relation is refused, not faked.
    let (ok, _, err) = psql(
        &server,
        "INSERT INTO pg_catalog.pg_class (relname) VALUES ('x')",
    );
    assert!(!ok);
    assert!(
        err.contains("permission denied: \"pg_class\" is a system catalog"),
        "{err}"
    );
}

/// `\d` of a table with the date/time, uuid, jsonb, char(n), bytea and array types: the
/// output PostgreSQL 15's psql prints for the same table.
const D_EV: &str = r#"                            Table "public.ev"
 Column |           Type            | Collation | Nullable |   Default    
--------+---------------------------+-----------+----------+--------------
 id     | uuid                      |           | not null | 
 at     | timestamp with time zone  |           | not null | now()
 day    | date                      |           |          | CURRENT_DATE
 t      | time(3) without time zone |           |          | 
 took   | interval                  |           |          | 
 r      | real                      |           |          | 
 code   | character(3)              |           |          | 
 raw    | bytea                     |           |          | 
 doc    | jsonb                     |           |          | 
 tags   | text[]                    |           |          | 
 n      | integer[]                 |           |          | 
Indexes:
    "ev_pkey" PRIMARY KEY, btree (id)

"#;

#[test]
fn psql_describes_typed_columns() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let create = "CREATE TABLE ev (id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), \
                  day date DEFAULT CURRENT_DATE, t time(3), took interval, r real, code char(3), \
                  raw bytea, doc jsonb, tags text[], n int[])";
    let (ok, _, err) = psql(&server, create);
    assert!(ok, "{err}");
    let (ok, out, err) = psql(&server, "\\d ev");
    assert!(ok, "{err}");
    assert_eq!(out, D_EV, "\n{out}");
}

const PLUS_SETUP: &str = "CREATE TABLE p (id int PRIMARY KEY, note text NOT NULL DEFAULT 'n'); \
    CREATE INDEX p_note ON p (note); \
    INSERT INTO p SELECT g, 'note ' || g FROM generate_series(1, 1000) g; \
    CREATE TABLE empty_t (x int)";

const D_PLUS_P: &str = r#"                                             Table "public.p"
 Column |  Type   | Collation | Nullable |  Default  | Storage  | Compression | Stats target | Description 
--------+---------+-----------+----------+-----------+----------+-------------+--------------+-------------
 id     | integer |           | not null |           | plain    |             |              | 
 note   | text    |           | not null | 'n'::text | extended |             |              | 
Indexes:
    "p_pkey" PRIMARY KEY, btree (id)
    "p_note" btree (note)
Access method: heap

"#;

/// psql's `+` commands: `\d+` prints what PostgreSQL 15 prints (taken from it, same
/// statements); `\dt+` and `\di+` list sizes from the shards' stored bytes (PostgreSQL's differ:
/// its pages are not our blocks), 0 for an empty table and for a primary key, which has no
/// storage of its own.
#[test]
fn psql_plus_commands_describe_storage_and_sizes() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let (ok, _, err) = psql(&server, PLUS_SETUP);
    assert!(ok, "{err}");
    assert_prints(&server, &[("\\d+ p", D_PLUS_P)]);
    let size_of = |command: &str, name: &str| -> String {
        let (ok, out, err) = psql(&server, command);
        assert!(ok, "{command}: {err}");
        let line = out
            .lines()
            .find(|l| l.split('|').nth(1).map(str::trim) == Some(name))
            .unwrap_or_else(|| panic!("{command}: no {name}\n{out}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        cells[cells.len() - 2].to_string()
    };
    // 1000 rows of about 20 bytes: tens of kB; PostgreSQL prints 72 kB.
    let table = size_of("\\dt+", "p");
    assert!(table.ends_with(" kB"), "{table}");
    assert_eq!(size_of("\\dt+", "empty_t"), "0 bytes");
    assert!(size_of("\\di+", "p_note").ends_with(" kB"));
    assert_eq!(size_of("\\di+", "p_pkey"), "0 bytes");
    // \l+ adds each database's size (its tables' and indexes'), \d+ of a view its query.
    let (ok, out, err) = psql(&server, "CREATE VIEW pv AS SELECT id FROM p");
    assert!(ok, "{err}");
    let line = |command: &str, starts: &str| -> String {
        let (ok, out, err) = psql(&server, command);
        assert!(ok, "{command}: {err}");
        let found = out.lines().find(|l| l.starts_with(starts));
        found
            .unwrap_or_else(|| panic!("{command}\n{out}"))
            .to_string()
    };
    assert!(line("\\l+", " postgres ").contains(" kB "), "{out}");
    assert_eq!(line("\\d+ pv", " SELECT"), " SELECT id FROM p;");
}

const FK_SETUP: &str = "CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE); \
    CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p ON DELETE CASCADE, pcode text, \
    CONSTRAINT c_code FOREIGN KEY (pcode) REFERENCES p (code) DEFERRABLE INITIALLY DEFERRED)";

const D_P: &str = r#"                 Table "public.p"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 id     | integer |           | not null | 
 code   | text    |           |          | 
Indexes:
    "p_pkey" PRIMARY KEY, btree (id)
    "p_code_key" UNIQUE CONSTRAINT, btree (code)
Referenced by:
    TABLE "c" CONSTRAINT "c_code" FOREIGN KEY (pcode) REFERENCES p(code) DEFERRABLE INITIALLY DEFERRED
    TABLE "c" CONSTRAINT "c_pid_fkey" FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE

"#;

const D_C: &str = r#"                 Table "public.c"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 id     | integer |           | not null | 
 pid    | integer |           |          | 
 pcode  | text    |           |          | 
Indexes:
    "c_pkey" PRIMARY KEY, btree (id)
Foreign-key constraints:
    "c_code" FOREIGN KEY (pcode) REFERENCES p(code) DEFERRABLE INITIALLY DEFERRED
    "c_pid_fkey" FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE

"#;

/// `\d` of tables holding and referenced by foreign keys: psql lists them only when
/// `relhastriggers` is set, and asks `pg_partition_ancestors` for the referencing ones.
#[test]
fn psql_describes_foreign_keys() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let (ok, _, err) = psql(&server, FK_SETUP);
    assert!(ok, "{err}");
    assert_prints(&server, &[("\\d p", D_P), ("\\d c", D_C)]);
}
