//! The date/time, uuid, jsonb, real, char(n), bytea and array types through tokio-postgres,
//! which sends parameters and reads results in PostgreSQL's binary format and decodes them
//! with its own code (chrono, uuid, serde_json), so both directions of the server's binary
//! codecs are checked against an independent implementation.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use helios_tests::server::{HeliosServer, ServerOpts};

mod pg_common;
use pg_common::{connect, runtime};

#[test]
fn tokio_postgres_round_trips_dates_uuids_json_and_arrays_in_binary() {
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    runtime().block_on(async move {
        let c = connect(port).await;
        c.batch_execute(
            "CREATE TABLE ev (id uuid PRIMARY KEY, at timestamptz, local timestamp, day date, \
             t time, r real, code char(4), raw bytea, doc jsonb, tags text[], n int4[])",
        )
        .await
        .unwrap();
        let id = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        let at: DateTime<Utc> = "2024-03-10T10:34:56.789Z".parse().unwrap();
        let local =
            NaiveDateTime::parse_from_str("2024-03-10 12:00:00.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let day = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
        let t = NaiveTime::from_hms_micro_opt(23, 59, 59, 123_456).unwrap();
        let doc = serde_json::json!({"b": [1, 2], "a": null});
        let tags = vec![Some("x".to_string()), None, Some("y z".to_string())];
        let n = vec![1i32, -2, 3];
        c.execute(
            "INSERT INTO ev VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &id,
                &at,
                &local,
                &day,
                &t,
                &1.5f32,
                &"ab",
                &vec![0u8, 255, 7],
                &doc,
                &tags,
                &n,
            ],
        )
        .await
        .unwrap();
        let row = c
            .query_one("SELECT * FROM ev WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(row.get::<_, uuid::Uuid>(0), id);
        assert_eq!(row.get::<_, DateTime<Utc>>(1), at);
        assert_eq!(row.get::<_, NaiveDateTime>(2), local);
        assert_eq!(row.get::<_, NaiveDate>(3), day);
        assert_eq!(row.get::<_, NaiveTime>(4), t);
        assert_eq!(row.get::<_, f32>(5), 1.5);
        assert_eq!(row.get::<_, String>(6), "ab  ");
        assert_eq!(row.get::<_, Vec<u8>>(7), vec![0u8, 255, 7]);
        assert_eq!(row.get::<_, serde_json::Value>(8), doc);
        assert_eq!(row.get::<_, Vec<Option<String>>>(9), tags);
        assert_eq!(row.get::<_, Vec<i32>>(10), n);

        // Date arithmetic with binary parameters, and the text forms psql shows.
        let later = c
            .query_one(
                "SELECT $1::timestamptz + interval '1 month', $2::date - date '1999-01-01', \
                 (at - $1)::text, extract(year from day) FROM ev",
                &[&at, &day],
            )
            .await
            .unwrap();
        let expected: DateTime<Utc> = "2024-04-10T10:34:56.789Z".parse().unwrap();
        assert_eq!(later.get::<_, DateTime<Utc>>(0), expected);
        assert_eq!(later.get::<_, i32>(1), 364);
        assert_eq!(later.get::<_, String>(2), "00:00:00");
        let text = c
            .simple_query("SET TimeZone = 'America/New_York'; SELECT at, day, doc, n FROM ev")
            .await
            .unwrap();
        let cells: Vec<String> = text
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..4)
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect();
        assert_eq!(
            cells,
            vec![r#"2024-03-10 06:34:56.789-04|1999-12-31|{"a": null, "b": [1, 2]}|{1,-2,3}"#]
        );
    });
}
