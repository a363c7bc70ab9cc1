//! The reducer's own FSM per namespace aggregate. Pure.
//!
//! `idle → aggregating → persisted → aggregating → …`; `aggregating → failed`, `failed → aggregating`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReducerState {
    Idle,
    Aggregating,
    Persisted,
    Failed,
}

impl ReducerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReducerState::Idle => "idle",
            ReducerState::Aggregating => "aggregating",
            ReducerState::Persisted => "persisted",
            ReducerState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => ReducerState::Idle,
            "aggregating" => ReducerState::Aggregating,
            "persisted" => ReducerState::Persisted,
            "failed" => ReducerState::Failed,
            _ => return None,
        })
    }

    pub fn can_go_to(self, next: ReducerState) -> bool {
        use ReducerState::*;
        matches!(
            (self, next),
            (Idle, Aggregating)
                | (Persisted, Aggregating)
                | (Failed, Aggregating)
                | (Aggregating, Persisted)
                | (Aggregating, Failed)
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("reducer transition {from} → {to} is not allowed")]
pub struct IllegalTransition {
    pub from: &'static str,
    pub to: &'static str,
}

pub fn transition(from: ReducerState, to: ReducerState) -> Result<ReducerState, IllegalTransition> {
    if from.can_go_to(to) {
        Ok(to)
    } else {
        Err(IllegalTransition {
            from: from.as_str(),
            to: to.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ReducerState::*;
    use super::*;

    #[test]
    fn allowed_and_forbidden() {
        let all = [Idle, Aggregating, Persisted, Failed];
        let allowed = [
            (Idle, Aggregating),
            (Persisted, Aggregating),
            (Failed, Aggregating),
            (Aggregating, Persisted),
            (Aggregating, Failed),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    transition(from, to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
            assert_eq!(ReducerState::parse(from.as_str()), Some(from));
        }
    }
}
