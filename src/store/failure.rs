//! Sorting database failures into transient and permanent, for the pipelines that must never stop on
//! one bad row (the outbox relay, the Kafka consumer handlers, the reducer).
//!
//! Transient: the database is unreachable or busy — connection lost, pool or statement timeout, lock
//! timeout, deadlock, serialization failure, too many connections, shutting down or recovering, disk
//! full, out of memory, SQLite busy/locked. Retrying the same work later can succeed.
//! Permanent: the data itself is refused — constraint violations, an index row over its size limit,
//! an invalid value or encoding, a value diesel cannot (de)serialize. Retrying the same row can never
//! succeed; the row must be set aside. An error the database reports that matches no transient
//! pattern counts as permanent *for the one row that fails alone* (callers isolate it first), so an
//! unknown error quarantines a row — which can be redriven — rather than stopping every event behind it.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::StoreError;

/// Messages of errors that go away by themselves (PostgreSQL and SQLite wording).
const TRANSIENT_MESSAGES: &[&str] = &[
    "deadlock detected",
    "could not serialize access",
    "canceling statement due to",
    "lock timeout",
    "could not obtain lock",
    "too many connections",
    "remaining connection slots",
    "the database system is",
    "terminating connection",
    "server closed the connection",
    "connection reset",
    "connection refused",
    "could not extend file",
    "no space left on device",
    "out of memory",
    "out of shared memory",
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk i/o error",
    "timed out",
];

impl StoreError {
    /// Retrying later can succeed (see the module comment); otherwise the failure is the data's.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Query(e) => diesel_error_is_transient(e),
            // Connectivity, a shared copy of a group commit's failure (its cause is not known here),
            // migration/URL problems: never the fault of one row.
            StoreError::Unavailable(_)
            | StoreError::Busy(_)
            | StoreError::StorageFull(_)
            | StoreError::Failed(_)
            | StoreError::Migration(_)
            | StoreError::BadUrl(_) => true,
        }
    }
}

/// [`StoreError::is_transient`] for a diesel error met inside a transaction.
pub(crate) fn diesel_error_is_transient(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure
            | DatabaseErrorKind::ReadOnlyTransaction => true,
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation
            | DatabaseErrorKind::RestrictViolation
            | DatabaseErrorKind::ExclusionViolation => false,
            _ => {
                let message = info.message().to_ascii_lowercase();
                TRANSIENT_MESSAGES.iter().any(|m| message.contains(m))
            }
        },
        DieselError::SerializationError(_)
        | DieselError::DeserializationError(_)
        | DieselError::InvalidCString(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_error(kind: DatabaseErrorKind, message: &str) -> StoreError {
        StoreError::Query(DieselError::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn sorts_database_failures() {
        let unknown = DatabaseErrorKind::Unknown;
        for transient in [
            StoreError::Unavailable("pool timed out".into()),
            db_error(DatabaseErrorKind::ClosedConnection, "gone"),
            db_error(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize",
            ),
            db_error(unknown, "deadlock detected"),
            db_error(unknown, "canceling statement due to statement timeout"),
            db_error(
                unknown,
                "could not extend file \"base/1/2\": No space left on device",
            ),
            db_error(unknown, "database is locked"),
            db_error(unknown, "FATAL: the database system is shutting down"),
        ] {
            assert!(transient.is_transient(), "{transient}");
        }
        for permanent in [
            db_error(
                unknown,
                "index row requires 26688 bytes, maximum size is 8191",
            ),
            db_error(unknown, "unsupported Unicode escape sequence"),
            db_error(DatabaseErrorKind::NotNullViolation, "null value"),
            db_error(DatabaseErrorKind::CheckViolation, "check"),
            StoreError::Query(DieselError::SerializationError("bad".into())),
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
        }
    }
}
