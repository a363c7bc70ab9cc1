//! Confidence of an intelligence result (SPEC §4). Pure.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    High,
    Medium,
    Low,
    Minimal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::High => "HIGH",
            Level::Medium => "MEDIUM",
            Level::Low => "LOW",
            Level::Minimal => "MINIMAL",
        }
    }

    pub fn of(score: f64) -> Self {
        if score >= 0.8 {
            Level::High
        } else if score >= 0.5 {
            Level::Medium
        } else if score >= 0.2 {
            Level::Low
        } else {
            Level::Minimal
        }
    }
}

/// .35·data_quality + .30·pattern_strength + .20·coverage + .15·relationship_density, each factor
/// read from `data` and clamped to [0, 1] (missing = 0).
pub fn score(data: &Value) -> f64 {
    let f = |k: &str| {
        data.get(k)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .clamp(0.0, 1.0)
    };
    0.35 * f("data_quality")
        + 0.30 * f("pattern_strength")
        + 0.20 * f("coverage")
        + 0.15 * f("relationship_density")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn level_boundaries() {
        assert_eq!(Level::of(0.8), Level::High);
        assert_eq!(Level::of(0.79), Level::Medium);
        assert_eq!(Level::of(0.5), Level::Medium);
        assert_eq!(Level::of(0.2), Level::Low);
        assert_eq!(Level::of(0.19), Level::Minimal);
    }

    #[test]
    fn known_inputs() {
        let cases = [
            (
                json!({"data_quality": 1, "pattern_strength": 1, "coverage": 1, "relationship_density": 1}),
                1.0,
                Level::High,
            ),
            (
                json!({"data_quality": 1, "pattern_strength": 1, "coverage": 0.8}),
                0.81,
                Level::High,
            ),
            (
                json!({"data_quality": 0.8, "pattern_strength": 0.6, "coverage": 0.5, "relationship_density": 0.2}),
                0.59,
                Level::Medium,
            ),
            (
                json!({"data_quality": 0.4, "pattern_strength": 0.3}),
                0.23,
                Level::Low,
            ),
            (json!({"coverage": 0.5}), 0.1, Level::Minimal),
            (
                json!({"data_quality": 7, "pattern_strength": -3}),
                0.35,
                Level::Low,
            ),
            (json!({}), 0.0, Level::Minimal),
        ];
        for (data, want, level) in cases {
            let s = score(&data);
            assert!((s - want).abs() < 1e-9, "{data}: {s}");
            assert_eq!(Level::of(s), level, "{data}");
        }
    }
}
