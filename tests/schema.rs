//! `schema_matches_migrations`: the hand-written `diesel::table!`s in `src/store/schema.rs` serve both
//! backends, so nothing generates them from the migrations. This test reads them and compares every
//! table, column, type and nullability with what the migrations of each backend actually create.

mod common;

use std::collections::BTreeMap;

use common::{Backend, FreshDb};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_async::RunQueryDsl;

/// column (SQL name) → (diesel type without `Nullable<>`, nullable)
type Columns = BTreeMap<String, (String, bool)>;

/// Parse the `diesel::table!` blocks of schema.rs: table name → columns.
fn declared_tables() -> BTreeMap<String, Columns> {
    let source = include_str!("../src/store/schema.rs");
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, Columns)> = None;
    let mut sql_name: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some((name, cols)) = current.as_mut() {
            if line == "}" {
                let (name, cols) = (std::mem::take(name), std::mem::take(cols));
                tables.insert(name, cols);
                current = None;
            } else if let Some(rest) = line.strip_prefix("#[sql_name = \"") {
                sql_name = Some(rest.trim_end_matches("\"]").to_owned());
            } else if let Some((column, ty)) = line.split_once("->") {
                let ty = ty.trim().trim_end_matches(',');
                let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                    Some(inner) => (inner.trim_end_matches('>'), true),
                    None => (ty, false),
                };
                let column = sql_name.take().unwrap_or_else(|| column.trim().to_owned());
                cols.insert(column, (ty.to_owned(), nullable));
            }
        } else if line.ends_with('{') && line.contains('(') && !line.starts_with("diesel::") {
            // `name (pk) {`
            let name = line.split_whitespace().next().expect("table name");
            current = Some((name.to_owned(), Columns::new()));
        }
    }
    assert!(
        tables.len() >= 10,
        "parsed only {} tables from schema.rs: {:?}",
        tables.len(),
        tables.keys()
    );
    tables
}

/// The database type each diesel SQL type of schema.rs maps to on `backend`.
fn expected_db_type(diesel_type: &str, backend: Backend) -> &'static str {
    match (diesel_type, backend) {
        ("Uuid", Backend::Postgres) => "uuid",
        ("Json", Backend::Postgres) => "jsonb",
        ("Ts", Backend::Postgres) => "timestamp with time zone",
        ("Text", Backend::Postgres) => "text",
        ("BigInt", Backend::Postgres) => "bigint",
        ("Integer", Backend::Postgres) => "integer",
        ("Double", Backend::Postgres) => "double precision",
        ("Bool", Backend::Postgres) => "boolean",
        ("Uuid" | "Json" | "Ts" | "Text", Backend::Sqlite) => "TEXT",
        ("BigInt" | "Integer", Backend::Sqlite) => "INTEGER",
        ("Double", Backend::Sqlite) => "REAL",
        ("Bool", Backend::Sqlite) => "BOOLEAN",
        (other, _) => panic!("schema.rs uses SQL type {other}: add its mapping to this test"),
    }
}

#[derive(QueryableByName)]
struct DbColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Integer)]
    nullable: i32,
}

async fn migrated_tables(db: &FreshDb) -> BTreeMap<String, Columns> {
    let mut settings = common::settings_for(&db.url).database;
    settings.pool_size = 1;
    let store = omninode_bridge::store::Db::new(&settings).expect("db");
    store.migrate().await.expect("migrate");
    let rows: Vec<DbColumn> = match db.backend {
        Backend::Postgres => {
            use diesel_async::AsyncConnection;
            let mut conn = diesel_async::AsyncPgConnection::establish(&db.url)
                .await
                .expect("connect");
            diesel::sql_query(
                "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                        data_type::text AS data_type, \
                        CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable \
                 FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
            )
            .load(&mut conn)
            .await
            .expect("information_schema")
        }
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").expect("sqlite url");
            let mut conn = diesel::SqliteConnection::establish(path).expect("open sqlite");
            diesel::RunQueryDsl::load(
                diesel::sql_query(
                    "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                            CASE WHEN p.\"notnull\" = 1 THEN 0 ELSE 1 END AS nullable \
                     FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                       AND m.name <> '__diesel_schema_migrations'",
                ),
                &mut conn,
            )
            .expect("pragma_table_info")
        }
    };
    let mut tables: BTreeMap<String, Columns> = BTreeMap::new();
    for r in rows {
        tables
            .entry(r.table_name)
            .or_default()
            .insert(r.column_name, (r.data_type, r.nullable == 1));
    }
    tables
}

async fn schema_matches_migrations(backend: Backend) {
    let declared = declared_tables();
    let db = FreshDb::new(backend).await;
    let actual = migrated_tables(&db).await;
    db.drop_db().await;

    let declared_names: Vec<&String> = declared.keys().collect();
    let actual_names: Vec<&String> = actual.keys().collect();
    assert_eq!(
        declared_names, actual_names,
        "{backend:?}: tables in schema.rs vs tables the migrations create"
    );
    let mut problems = Vec::new();
    for (table, columns) in &declared {
        let migrated = &actual[table];
        for (column, (ty, nullable)) in columns {
            match migrated.get(column) {
                None => problems.push(format!(
                    "{table}.{column}: in schema.rs, not in the database"
                )),
                Some((db_type, db_nullable)) => {
                    let want = expected_db_type(ty, backend);
                    if !db_type.eq_ignore_ascii_case(want) {
                        problems.push(format!(
                            "{table}.{column}: schema.rs {ty} wants {want}, the database has {db_type}"
                        ));
                    }
                    if nullable != db_nullable {
                        problems.push(format!(
                            "{table}.{column}: nullable in schema.rs = {nullable}, in the database = {db_nullable}"
                        ));
                    }
                }
            }
        }
        for column in migrated.keys().filter(|c| !columns.contains_key(*c)) {
            problems.push(format!(
                "{table}.{column}: in the database, not in schema.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{backend:?}:\n{}", problems.join("\n"));
}

both_backends!(schema_matches_migrations);
