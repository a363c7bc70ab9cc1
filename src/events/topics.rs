//! Topic registry (SPEC §2.2). Pure.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    StampWorkflowStarted,
    StampWorkflowCompleted,
    StampWorkflowFailed,
    WorkflowStepCompleted,
    OnextreeIntelligenceRequested,
    OnextreeIntelligenceReceived,
    MetadataStampCreated,
    Blake3HashGenerated,
    WorkflowStateTransition,
    AggregationStarted,
    BatchProcessed,
    StatePersisted,
    AggregationCompleted,
    AggregationFailed,
    MetadataStampValidated,
    MetadataBatchProcessed,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::StampWorkflowStarted,
        EventKind::StampWorkflowCompleted,
        EventKind::StampWorkflowFailed,
        EventKind::WorkflowStepCompleted,
        EventKind::OnextreeIntelligenceRequested,
        EventKind::OnextreeIntelligenceReceived,
        EventKind::MetadataStampCreated,
        EventKind::Blake3HashGenerated,
        EventKind::WorkflowStateTransition,
        EventKind::AggregationStarted,
        EventKind::BatchProcessed,
        EventKind::StatePersisted,
        EventKind::AggregationCompleted,
        EventKind::AggregationFailed,
        EventKind::MetadataStampValidated,
        EventKind::MetadataBatchProcessed,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            EventKind::StampWorkflowStarted => "stamp-workflow-started",
            EventKind::StampWorkflowCompleted => "stamp-workflow-completed",
            EventKind::StampWorkflowFailed => "stamp-workflow-failed",
            EventKind::WorkflowStepCompleted => "workflow-step-completed",
            EventKind::OnextreeIntelligenceRequested => "onextree-intelligence-requested",
            EventKind::OnextreeIntelligenceReceived => "onextree-intelligence-received",
            EventKind::MetadataStampCreated => "metadata-stamp-created",
            EventKind::Blake3HashGenerated => "blake3-hash-generated",
            EventKind::WorkflowStateTransition => "workflow-state-transition",
            EventKind::AggregationStarted => "aggregation-started",
            EventKind::BatchProcessed => "batch-processed",
            EventKind::StatePersisted => "state-persisted",
            EventKind::AggregationCompleted => "aggregation-completed",
            EventKind::AggregationFailed => "aggregation-failed",
            EventKind::MetadataStampValidated => "metadata-stamp-validated",
            EventKind::MetadataBatchProcessed => "metadata-batch-processed",
        }
    }
}

/// Topic names for one environment prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    env: String,
}

impl Topics {
    pub fn new(env: &str) -> Self {
        Topics {
            env: env.to_owned(),
        }
    }

    /// `<env>.omninode_bridge.onex.evt.<slug>.v1`
    pub fn name(&self, kind: EventKind) -> String {
        format!("{}.omninode_bridge.onex.evt.{}.v1", self.env, kind.slug())
    }

    /// Dead letters of a topic: `<topic>.dlq`.
    pub fn dlq(topic: &str) -> String {
        format!("{topic}.dlq")
    }
}

/// Codegen operations (SPEC §6).
pub const CODEGEN_OPERATIONS: [&str; 4] = ["analyze", "validate", "pattern", "mixin"];
pub const CODEGEN_STATUS_TOPIC: &str = "omninode_codegen_status_session_v1";

pub fn codegen_request_topic(op: &str) -> String {
    format!("omninode_codegen_request_{op}_v1")
}
pub fn codegen_response_topic(op: &str) -> String {
    format!("omninode_codegen_response_{op}_v1")
}
pub fn codegen_dlq_topic(op: &str) -> String {
    format!("omninode_codegen_dlq_{op}_v1")
}

/// The 13 codegen topics with their partition counts (request/response 3, status 6, DLQ 1).
pub fn codegen_topics() -> Vec<(String, i32)> {
    let mut v = Vec::new();
    for op in CODEGEN_OPERATIONS {
        v.push((codegen_request_topic(op), 3));
        v.push((codegen_response_topic(op), 3));
    }
    v.push((CODEGEN_STATUS_TOPIC.to_owned(), 6));
    for op in CODEGEN_OPERATIONS {
        v.push((codegen_dlq_topic(op), 1));
    }
    v
}

/// Partitions of our own event topics (keyed by namespace or correlation id).
pub const EVENT_TOPIC_PARTITIONS: i32 = 3;

/// Every topic the service uses: own event topics (3 partitions) and their `.dlq` (1), the 13
/// codegen topics, and the status topic's `.dlq` (1) for its dead letters.
pub fn all_topics(env: &str) -> Vec<(String, i32)> {
    let t = Topics::new(env);
    let mut v = Vec::new();
    for kind in EventKind::ALL {
        let name = t.name(kind);
        v.push((Topics::dlq(&name), 1));
        v.push((name, EVENT_TOPIC_PARTITIONS));
    }
    v.extend(codegen_topics());
    v.push((Topics::dlq(CODEGEN_STATUS_TOPIC), 1));
    v
}

/// The topics whose events the tracer records: own event topics and all 13 codegen topics (their
/// DLQ topics included: dead letters are events too). Our own `.dlq` topics are the DLQ monitor's.
pub fn traced_topics(env: &str) -> Vec<String> {
    all_topics(env)
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| !t.ends_with(".dlq"))
        .collect()
}

/// Every DLQ topic (the DLQ monitor's subscription).
pub fn dlq_topics(env: &str) -> Vec<String> {
    all_topics(env)
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t.ends_with(".dlq") || t.contains("_dlq_"))
        .collect()
}

/// Where a poison message of `topic` goes: the operation's DLQ for codegen topics, `<topic>.dlq`
/// otherwise.
pub fn dlq_topic_for(topic: &str) -> String {
    for op in CODEGEN_OPERATIONS {
        if topic == codegen_request_topic(op) || topic == codegen_response_topic(op) {
            return codegen_dlq_topic(op);
        }
    }
    Topics::dlq(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = Topics::new("dev");
        assert_eq!(
            t.name(EventKind::MetadataStampCreated),
            "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1"
        );
        assert_eq!(
            Topics::dlq(&t.name(EventKind::AggregationFailed)),
            "dev.omninode_bridge.onex.evt.aggregation-failed.v1.dlq"
        );
        assert_eq!(codegen_topics().len(), 13);
        let all = all_topics("dev");
        assert_eq!(all.len(), 16 * 2 + 13 + 1);
        assert!(all.contains(&("omninode_codegen_status_session_v1".to_owned(), 6)));
        assert!(all.contains(&("omninode_codegen_request_pattern_v1".to_owned(), 3)));
        assert!(all.contains(&("omninode_codegen_dlq_mixin_v1".to_owned(), 1)));
        assert_eq!(
            dlq_topic_for("omninode_codegen_response_analyze_v1"),
            "omninode_codegen_dlq_analyze_v1"
        );
        assert_eq!(dlq_topic_for("x.v1"), "x.v1.dlq");
        assert_eq!(traced_topics("dev").len(), 16 + 13);
        let slugs: std::collections::HashSet<_> = EventKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), EventKind::ALL.len());
    }
}
