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

diesel::table! {
    use diesel::sql_types::{BigInt, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    event_outbox_dead (seq) {
        seq -> BigInt,
        event_id -> Uuid,
        topic -> Text,
        partition_key -> Text,
        envelope -> Json,
        created_at -> Ts,
        error -> Text,
        failed_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    event_logs (event_id) {
        event_id -> Uuid,
        session_id -> Nullable<Text>,
        correlation_id -> Nullable<Text>,
        event_type -> Text,
        topic -> Text,
        #[sql_name = "partition"]
        kafka_partition -> Nullable<Integer>,
        #[sql_name = "offset"]
        kafka_offset -> Nullable<BigInt>,
        #[sql_name = "timestamp"]
        event_timestamp -> Ts,
        status -> Text,
        processing_time_ms -> Nullable<Double>,
        namespace -> Nullable<Text>,
        payload -> Json,
        metadata -> Json,
        recorded_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Nullable, Text};
    use crate::store::sql_types::sql::Ts;

    bridge_states (namespace) {
        namespace -> Text,
        total_stamps -> BigInt,
        total_bytes -> BigInt,
        distinct_file_types -> BigInt,
        distinct_workflows -> BigInt,
        first_seen -> Nullable<Ts>,
        last_seen -> Nullable<Ts>,
        window_start -> Nullable<Ts>,
        window_end -> Nullable<Ts>,
        window_stamps -> BigInt,
        fsm_state -> Text,
        version -> BigInt,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::Text;

    bridge_state_members (namespace, kind, value) {
        namespace -> Text,
        kind -> Text,
        value -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::Text;
    use crate::store::sql_types::sql::{Ts, Uuid};

    reducer_processed_events (event_id) {
        event_id -> Uuid,
        namespace -> Text,
        processed_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Text};
    use crate::store::sql_types::sql::Ts;

    bridge_state_transitions (id) {
        id -> BigInt,
        namespace -> Text,
        from_state -> Text,
        to_state -> Text,
        trigger -> Text,
        event_count -> BigInt,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Integer, Nullable, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    dlq_records (id) {
        id -> Uuid,
        dlq_topic -> Text,
        dlq_partition -> Integer,
        dlq_offset -> BigInt,
        original_topic -> Nullable<Text>,
        original_partition -> Nullable<Integer>,
        original_offset -> Nullable<BigInt>,
        message_key -> Nullable<Text>,
        message_value -> Nullable<Text>,
        headers -> Json,
        error_class -> Nullable<Text>,
        error_message -> Nullable<Text>,
        received_at -> Ts,
        redriven_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::{Nullable, Text};
    use crate::store::sql_types::sql::Ts;

    dlq_topic_state (dlq_topic) {
        dlq_topic -> Text,
        reset_at -> Nullable<Ts>,
        last_alert_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Nullable, Text};
    use crate::store::sql_types::sql::{Ts, Uuid};

    dlq_alerts (id) {
        id -> Uuid,
        dlq_topic -> Text,
        count -> BigInt,
        threshold -> BigInt,
        recent_error -> Nullable<Text>,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::{Nullable, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    workflow_executions (id) {
        id -> Uuid,
        correlation_id -> Uuid,
        contract -> Text,
        namespace -> Text,
        state -> Text,
        input -> Json,
        result -> Nullable<Json>,
        error -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Ts>,
        created_at -> Ts,
        updated_at -> Ts,
        completed_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::{Double, Integer, Nullable, Text};
    use crate::store::sql_types::sql::{Json, Ts, Uuid};

    workflow_steps (workflow_id, name) {
        workflow_id -> Uuid,
        name -> Text,
        status -> Text,
        attempts -> Integer,
        duration_ms -> Nullable<Double>,
        error -> Nullable<Text>,
        output -> Nullable<Json>,
        started_at -> Nullable<Ts>,
        completed_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Text};
    use crate::store::sql_types::sql::{Ts, Uuid};

    fsm_transitions (id) {
        id -> BigInt,
        workflow_id -> Uuid,
        from_state -> Text,
        to_state -> Text,
        trigger -> Text,
        created_at -> Ts,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    metadata_stamps,
    event_outbox,
    event_outbox_dead,
    event_logs,
    bridge_states,
    bridge_state_members,
    reducer_processed_events,
    bridge_state_transitions,
    dlq_records,
    dlq_topic_state,
    dlq_alerts,
    workflow_executions,
    workflow_steps,
    fsm_transitions,
);
