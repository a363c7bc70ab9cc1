//! Search by **any** id: event, workflow, stamp id, file hash, session, correlation. The shape of the
//! query picks the lookups (a UUID can be an event, a workflow or a stamp; 64 hex digits a file hash);
//! any other string is looked up as a session and a correlation id.

use uuid::Uuid;

use crate::store::{event_logs, stamps, workflows, Db, StoreError};

/// What an id identifies. Several kinds can match one id (a workflow id is also the session and
/// correlation id of its events); they come most specific first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    Workflow {
        id: Uuid,
        state: String,
    },
    Stamp {
        id: Uuid,
        namespace: String,
        file_hash: String,
    },
    Event {
        id: Uuid,
        topic: String,
    },
    Session {
        id: String,
    },
    Correlation {
        id: String,
    },
}

impl Hit {
    pub fn kind(&self) -> &'static str {
        match self {
            Hit::Workflow { .. } => "workflow",
            Hit::Stamp { .. } => "stamp",
            Hit::Event { .. } => "event",
            Hit::Session { .. } => "session",
            Hit::Correlation { .. } => "correlation",
        }
    }

    /// The id that matched.
    pub fn id(&self) -> String {
        match self {
            Hit::Workflow { id, .. } | Hit::Stamp { id, .. } | Hit::Event { id, .. } => {
                id.to_string()
            }
            Hit::Session { id } | Hit::Correlation { id } => id.clone(),
        }
    }

    /// What else is known about the match, in words.
    pub fn detail(&self) -> Option<String> {
        match self {
            Hit::Workflow { state, .. } => Some(format!("state {state}")),
            Hit::Stamp {
                namespace,
                file_hash,
                ..
            } => Some(format!("namespace {namespace}, hash {file_hash}")),
            Hit::Event { topic, .. } => Some(format!("topic {topic}")),
            Hit::Session { .. } | Hit::Correlation { .. } => None,
        }
    }
}

/// A BLAKE3 file hash as stored (64 lowercase hex digits), accepting upper case and a `blake3:` prefix.
pub fn as_file_hash(q: &str) -> Option<String> {
    let h = q.strip_prefix("blake3:").unwrap_or(q);
    (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_ascii_lowercase())
}

pub async fn search(db: &Db, q: &str) -> Result<Vec<Hit>, StoreError> {
    let q = q.trim();
    let mut hits = Vec::new();
    if let Some(hash) = as_file_hash(q) {
        for s in stamps::find_all_by_hash(db, &hash).await? {
            hits.push(Hit::Stamp {
                id: s.id.0,
                namespace: s.namespace,
                file_hash: s.file_hash,
            });
        }
    }
    if let Ok(id) = Uuid::parse_str(q) {
        if let Some((w, _, _)) = workflows::get(db, id).await? {
            hits.push(Hit::Workflow {
                id: w.id.0,
                state: w.state,
            });
        }
        if let Some(s) = stamps::find_by_id(db, id).await? {
            hits.push(Hit::Stamp {
                id: s.id.0,
                namespace: s.namespace,
                file_hash: s.file_hash,
            });
        }
        if let Some(e) = event_logs::get(db, id).await? {
            hits.push(Hit::Event {
                id: e.event_id.0,
                topic: e.topic,
            });
        }
    }
    // Stored session/correlation ids are case-sensitive text: try the id as given and, for a UUID,
    // its canonical lower-case form (what our own events carry).
    let mut texts = vec![q.to_owned()];
    if let Ok(id) = Uuid::parse_str(q) {
        let canonical = id.to_string();
        if canonical != q {
            texts.push(canonical);
        }
    }
    for text in texts {
        let (session, correlation) = event_logs::id_seen(db, &text).await?;
        if session {
            hits.push(Hit::Session { id: text.clone() });
        }
        if correlation {
            hits.push(Hit::Correlation { id: text });
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_shapes() {
        let h = "a".repeat(64);
        assert_eq!(as_file_hash(&h), Some(h.clone()));
        assert_eq!(
            as_file_hash(&format!("blake3:{}", "AB".repeat(32))),
            Some("ab".repeat(32))
        );
        assert_eq!(as_file_hash(&"a".repeat(63)), None);
        assert_eq!(as_file_hash(&"g".repeat(64)), None);
    }
}
