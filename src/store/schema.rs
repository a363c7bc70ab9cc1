//! The tables, shared by both backends (see `sql_types`). Kept in step with `migrations/*` by the
//! `schema_matches_migrations` test.

diesel::table! {
    use diesel::sql_types::{BigInt, Integer, Nullable, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    metadata_stamps (id) {
        id -> Uuid,
        namespace -> Text,
        file_hash -> Text,
        file_path -> Nullable<Text>,
        file_size -> BigInt,
        content_type -> Nullable<Text>,
        stamp_data -> Json,
        protocol_version -> Text,
        intelligence_data -> Nullable<Json>,
        version -> Integer,
        op_id -> Uuid,
        metadata_version -> Text,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Integer, Nullable, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    event_outbox (seq) {
        seq -> BigInt,
        event_id -> Uuid,
        topic -> Text,
        partition_key -> Text,
        envelope -> Json,
        created_at -> Ts,
    }
}

diesel::allow_tables_to_appear_in_same_query!(metadata_stamps, event_outbox);
