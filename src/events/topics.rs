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
        let slugs: std::collections::HashSet<_> = EventKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), EventKind::ALL.len());
    }
}
