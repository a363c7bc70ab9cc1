//! Workflow contracts (SPEC §3): steps with dependencies, retry and timeouts, the workflow timeout and
//! the FSM, loaded from TOML and validated at load (unknown step or kind, cycle, bad FSM → refused
//! with a message naming the contract and the problem). Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::fsm::Fsm;

/// The step kinds the engine knows how to run.
pub const STEP_KINDS: [&str; 6] = [
    "validate_input",
    "hash_generation",
    "onextree_intelligence",
    "stamp_creation",
    "persist",
    "complete",
];

/// Contracts shipped with the binary.
pub const BUILTIN: [(&str, &str); 1] = [(
    "metadata_stamping",
    include_str!("../../contracts/metadata_stamping.toml"),
)];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            initial_backoff_ms: 0,
            max_backoff_ms: 0,
        }
    }
}

impl Retry {
    /// Backoff before attempt `n` (n ≥ 2): exponential, capped. Jitter is added by the engine.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        if attempt <= 1 {
            return 0;
        }
        let exp = self
            .initial_backoff_ms
            .saturating_mul(1u64 << (attempt - 2).min(20));
        exp.min(self.max_backoff_ms.max(self.initial_backoff_ms))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default = "default_step_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retry: Retry,
}

fn default_step_timeout() -> u64 {
    10_000
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FsmSpec {
    initial: String,
    terminal: Vec<String>,
    transitions: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractFile {
    name: String,
    version: String,
    timeout_ms: u64,
    fsm: FsmSpec,
    steps: Vec<Step>,
}

/// A validated contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    pub name: String,
    pub version: String,
    pub timeout_ms: u64,
    pub fsm: Fsm,
    pub steps: Vec<Step>,
    /// Steps grouped in waves: every step's dependencies are in earlier waves, so the steps of one
    /// wave can run concurrently.
    pub waves: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("workflow contract {contract}: {message}")]
pub struct ContractError {
    pub contract: String,
    pub message: String,
}

impl Contract {
    pub fn parse(source_name: &str, text: &str) -> Result<Contract, ContractError> {
        let err = |message: String| ContractError {
            contract: source_name.to_owned(),
            message,
        };
        let file: ContractFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if file.steps.is_empty() {
            return Err(err("has no steps".into()));
        }
        if file.timeout_ms == 0 {
            return Err(err("timeout_ms must be greater than 0".into()));
        }
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, s) in file.steps.iter().enumerate() {
            if index.insert(s.name.as_str(), i).is_some() {
                return Err(err(format!("step {} is defined twice", s.name)));
            }
            if !STEP_KINDS.contains(&s.kind.as_str()) {
                return Err(err(format!(
                    "step {} has unknown kind {:?} (known: {})",
                    s.name,
                    s.kind,
                    STEP_KINDS.join(", ")
                )));
            }
            if s.retry.max_attempts == 0 {
                return Err(err(format!(
                    "step {}: retry.max_attempts must be at least 1",
                    s.name
                )));
            }
            if s.timeout_ms == 0 {
                return Err(err(format!(
                    "step {}: timeout_ms must be greater than 0",
                    s.name
                )));
            }
        }
        for s in &file.steps {
            for d in &s.depends_on {
                if !index.contains_key(d.as_str()) {
                    return Err(err(format!("step {} depends on unknown step {d}", s.name)));
                }
            }
        }
        // Kahn's algorithm, one wave at a time; leftovers mean a cycle.
        let mut done: BTreeSet<usize> = BTreeSet::new();
        let mut waves = Vec::new();
        while done.len() < file.steps.len() {
            let wave: Vec<usize> = (0..file.steps.len())
                .filter(|i| !done.contains(i))
                .filter(|&i| {
                    file.steps[i]
                        .depends_on
                        .iter()
                        .all(|d| done.contains(&index[d.as_str()]))
                })
                .collect();
            if wave.is_empty() {
                let stuck: Vec<&str> = (0..file.steps.len())
                    .filter(|i| !done.contains(i))
                    .map(|i| file.steps[i].name.as_str())
                    .collect();
                return Err(err(format!(
                    "dependency cycle among steps {}",
                    stuck.join(", ")
                )));
            }
            done.extend(&wave);
            waves.push(wave);
        }
        let fsm = Fsm {
            initial: file.fsm.initial,
            terminal: file.fsm.terminal.into_iter().collect(),
            transitions: file.fsm.transitions.into_iter().collect(),
        };
        let problems = fsm.problems();
        if !problems.is_empty() {
            return Err(err(format!("bad FSM: {}", problems.join("; "))));
        }
        for needed in [
            ("pending", "processing"),
            ("processing", "completed"),
            ("processing", "failed"),
        ] {
            if fsm.transition(needed.0, needed.1).is_err() {
                return Err(err(format!("FSM must allow {} → {}", needed.0, needed.1)));
            }
        }
        Ok(Contract {
            name: file.name,
            version: file.version,
            timeout_ms: file.timeout_ms,
            fsm,
            steps: file.steps,
            waves,
        })
    }

    /// The built-in contracts.
    pub fn builtin() -> Result<Vec<Contract>, ContractError> {
        BUILTIN
            .iter()
            .map(|(name, text)| Contract::parse(name, text))
            .collect()
    }

    /// The built-in contracts, overridden or extended by every `*.toml` in `dir` (if given).
    pub fn load(dir: Option<&std::path::Path>) -> Result<Vec<Contract>, ContractError> {
        let mut by_name: BTreeMap<String, Contract> = Contract::builtin()?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        if let Some(dir) = dir {
            let err = |message: String| ContractError {
                contract: dir.display().to_string(),
                message,
            };
            let entries =
                std::fs::read_dir(dir).map_err(|e| err(format!("cannot read directory: {e}")))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                let c = Contract::parse(&path.display().to_string(), &text)?;
                by_name.insert(c.name.clone(), c);
            }
        }
        Ok(by_name.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_contract_loads_with_parallel_waves() {
        let c = &Contract::builtin().unwrap()[0];
        assert_eq!(c.name, "metadata_stamping");
        let names: Vec<Vec<&str>> = c
            .waves
            .iter()
            .map(|w| w.iter().map(|&i| c.steps[i].name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["validate_input"],
                vec!["hash_generation", "onextree_intelligence"],
                vec!["stamp_creation"],
                vec!["persist"],
                vec!["complete"],
            ]
        );
        let intel = c
            .steps
            .iter()
            .find(|s| s.name == "onextree_intelligence")
            .unwrap();
        assert!(intel.optional);
        assert_eq!(intel.retry.backoff_ms(1), 0);
        assert_eq!(intel.retry.backoff_ms(2), 100);
        assert_eq!(intel.retry.backoff_ms(3), 200);
        assert_eq!(intel.retry.backoff_ms(30), 2000);
    }

    fn with(edit: impl Fn(&str) -> String) -> Result<Contract, ContractError> {
        Contract::parse("test", &edit(BUILTIN[0].1))
    }

    #[test]
    fn bad_contracts_are_refused_with_the_reason() {
        let cases: Vec<(String, &str)> = vec![
            (BUILTIN[0].1.replace("depends_on = [\"persist\"]", "depends_on = [\"nope\"]"), "unknown step nope"),
            (BUILTIN[0].1.replace("kind = \"persist\"", "kind = \"teleport\""), "unknown kind"),
            (
                BUILTIN[0].1.replace(
                    "name = \"validate_input\"\nkind = \"validate_input\"",
                    "name = \"validate_input\"\nkind = \"validate_input\"\ndepends_on = [\"complete\"]",
                ),
                "dependency cycle",
            ),
            (BUILTIN[0].1.replace("[\"processing\", \"completed\"],", ""), "processing → completed"),
            (BUILTIN[0].1.replace("    [\"pending\", \"failed\"],", "    [\"pending\", \"failed\"],\n    [\"failed\", \"pending\"],"), "bad FSM"),
            (BUILTIN[0].1.replace("timeout_ms = 30000", "timeout_ms = 30000\nsurprise = 1"), "unknown field"),
            (BUILTIN[0].1.replace("max_attempts = 3, initial_backoff_ms = 50", "max_attempts = 0, initial_backoff_ms = 50"), "max_attempts"),
        ];
        for (text, want) in cases {
            let e = Contract::parse("test", &text).unwrap_err();
            assert!(e.to_string().contains(want), "want {want:?} in {e}");
            assert!(e.to_string().starts_with("workflow contract test:"), "{e}");
        }
        assert!(with(|t| t.to_owned()).is_ok());
    }
}
