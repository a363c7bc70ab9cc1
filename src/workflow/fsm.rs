//! The workflow FSM (SPEC §3), as a contract describes it: states, allowed transitions, terminal
//! states. Pure: an illegal transition is an error, never silently applied.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fsm {
    pub initial: String,
    pub terminal: BTreeSet<String>,
    pub transitions: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsmError {
    #[error("transition {from} → {to} is not allowed")]
    Illegal { from: String, to: String },
    #[error("{0} is terminal: no transition leaves it")]
    Terminal(String),
}

impl Fsm {
    /// The FSM of SPEC §3: `pending → processing | failed`, `processing → completed | failed`.
    pub fn standard() -> Self {
        let t = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        Fsm {
            initial: "pending".into(),
            terminal: ["completed", "failed"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            transitions: [
                t("pending", "processing"),
                t("pending", "failed"),
                t("processing", "completed"),
                t("processing", "failed"),
            ]
            .into_iter()
            .collect(),
        }
    }

    pub fn states(&self) -> BTreeSet<&str> {
        let mut s: BTreeSet<&str> = self
            .transitions
            .iter()
            .flat_map(|(a, b)| [a.as_str(), b.as_str()])
            .collect();
        s.insert(&self.initial);
        s.extend(self.terminal.iter().map(String::as_str));
        s
    }

    pub fn is_terminal(&self, state: &str) -> bool {
        self.terminal.contains(state)
    }

    /// Check `from → to`; returns the new state.
    pub fn transition<'a>(&self, from: &str, to: &'a str) -> Result<&'a str, FsmError> {
        if self.is_terminal(from) {
            return Err(FsmError::Terminal(from.to_owned()));
        }
        if self.transitions.contains(&(from.to_owned(), to.to_owned())) {
            Ok(to)
        } else {
            Err(FsmError::Illegal {
                from: from.to_owned(),
                to: to.to_owned(),
            })
        }
    }

    /// Structural problems: a terminal state with outgoing transitions, a non-terminal state with
    /// none (a workflow could hang there), an initial state that is terminal.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.is_terminal(&self.initial) {
            out.push(format!("initial state {} is terminal", self.initial));
        }
        for (a, b) in &self.transitions {
            if self.is_terminal(a) {
                out.push(format!("terminal state {a} has a transition to {b}"));
            }
        }
        for s in self.states() {
            if !self.is_terminal(s) && !self.transitions.iter().any(|(a, _)| a == s) {
                out.push(format!(
                    "state {s} is neither terminal nor left by any transition"
                ));
            }
        }
        if self.terminal.is_empty() {
            out.push("no terminal state".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_and_forbidden_transition() {
        let fsm = Fsm::standard();
        let states = ["pending", "processing", "completed", "failed"];
        let allowed = [
            ("pending", "processing"),
            ("pending", "failed"),
            ("processing", "completed"),
            ("processing", "failed"),
        ];
        for from in states {
            for to in states {
                let got = fsm.transition(from, to);
                if allowed.contains(&(from, to)) {
                    assert_eq!(got, Ok(to), "{from} → {to}");
                } else if fsm.is_terminal(from) {
                    assert_eq!(got, Err(FsmError::Terminal(from.into())), "{from} → {to}");
                } else {
                    assert!(
                        matches!(got, Err(FsmError::Illegal { .. })),
                        "{from} → {to}"
                    );
                }
            }
        }
        assert!(fsm.problems().is_empty());
    }

    #[test]
    fn structural_problems_are_reported() {
        let mut fsm = Fsm::standard();
        fsm.transitions
            .insert(("completed".into(), "processing".into()));
        fsm.transitions.insert(("pending".into(), "stuck".into()));
        let p = fsm.problems();
        assert!(
            p.iter().any(|m| m.contains("terminal state completed")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("state stuck")), "{p:?}");
    }
}
