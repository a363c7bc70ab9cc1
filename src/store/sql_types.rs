//! SQL types that let one `table!` serve both backends: each names its PostgreSQL type and its
//! SQLite storage class, and its Rust newtype implements `ToSql`/`FromSql` for both.
//!
//! | type | PostgreSQL | SQLite |
//! |---|---|---|
//! | `Uuid` | `uuid` | `TEXT` (hyphenated) |
//! | `Json` | `jsonb` | `TEXT` |
//! | `Ts` | `timestamptz` | `TEXT`, fixed-width `YYYY-MM-DDTHH:MM:SS.ffffffZ` (sorts like time) |

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};

pub mod sql {
    #[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
    #[diesel(postgres_type(name = "uuid"))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Uuid;

    #[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
    #[diesel(postgres_type(name = "jsonb"))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Json;

    #[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
    #[diesel(postgres_type(name = "timestamptz"))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Ts;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql::Uuid)]
pub struct DbUuid(pub uuid::Uuid);

#[derive(Debug, Clone, PartialEq, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql::Json)]
pub struct DbJson(pub serde_json::Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql::Ts)]
pub struct DbTs(pub DateTime<Utc>);

pub fn sqlite_ts_text(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

// --- PostgreSQL: delegate to diesel's native encodings -------------------------------------------

impl ToSql<sql::Uuid, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<diesel::sql_types::Uuid, Pg>::to_sql(&self.0, out)
    }
}
impl FromSql<sql::Uuid, Pg> for DbUuid {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        FromSql::<diesel::sql_types::Uuid, Pg>::from_sql(bytes).map(DbUuid)
    }
}
impl ToSql<sql::Json, Pg> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<diesel::sql_types::Jsonb, Pg>::to_sql(&self.0, out)
    }
}
impl FromSql<sql::Json, Pg> for DbJson {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        FromSql::<diesel::sql_types::Jsonb, Pg>::from_sql(bytes).map(DbJson)
    }
}
impl ToSql<sql::Ts, Pg> for DbTs {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<diesel::sql_types::Timestamptz, Pg>::to_sql(&self.0, out)
    }
}
impl FromSql<sql::Ts, Pg> for DbTs {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        FromSql::<diesel::sql_types::Timestamptz, Pg>::from_sql(bytes).map(DbTs)
    }
}

// --- SQLite: text encodings ----------------------------------------------------------------------

fn sqlite_text(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<String> {
    <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)
}

impl ToSql<sql::Uuid, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}
impl FromSql<sql::Uuid, Sqlite> for DbUuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(DbUuid(uuid::Uuid::parse_str(&sqlite_text(value)?)?))
    }
}
impl ToSql<sql::Json, Sqlite> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}
impl FromSql<sql::Json, Sqlite> for DbJson {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(DbJson(serde_json::from_str(&sqlite_text(value)?)?))
    }
}
impl ToSql<sql::Ts, Sqlite> for DbTs {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_ts_text(self.0));
        Ok(IsNull::No)
    }
}
impl FromSql<sql::Ts, Sqlite> for DbTs {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = sqlite_text(value)?;
        Ok(DbTs(
            DateTime::parse_from_rfc3339(&text)?.with_timezone(&Utc),
        ))
    }
}
