//! Configuration: the compiled-in `config.toml` defaults, then an optional `--config FILE`, then
//! `OMNINODE__<SECTION>__<KEY>` environment variables. Invalid configuration is refused with a message
//! naming the key; nothing starts with a half-valid config.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::stamping::namespace::Namespace;

const DEFAULTS: &str = include_str!("../config.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub stamping: StampingSettings,
    pub dlq: DlqSettings,
    pub reducer: ReducerSettings,
    pub codegen: CodegenSettings,
    pub workflow: WorkflowSettings,
    pub intelligence: IntelligenceSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    /// Milliseconds a client gets to send a request's headers (slow clients are cut off with 408).
    pub client_request_timeout_ms: u64,
    /// Milliseconds a client gets to acknowledge the connection's shutdown.
    pub client_disconnect_timeout_ms: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Live tail (SSE) subscribers served at once; more are refused with 503.
    pub max_sse_clients: usize,
    /// Body limit of every JSON route that carries no content (bytes).
    pub max_json_body_bytes: usize,
    /// Request-body bytes held in memory at once, over all requests (bytes).
    pub max_inflight_body_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
    pub acquire_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub breaker_failure_threshold: u32,
    pub breaker_open_secs: u64,
    pub write_batch_max: usize,
    pub write_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic_env: String,
    pub create_topics: bool,
    pub replication_factor: i32,
    pub consumer_group: String,
    pub session_timeout_ms: u64,
    pub delivery_timeout_ms: u64,
    /// The producer's largest message (`message.max.bytes`); an outbox row above it is quarantined.
    pub message_max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampingSettings {
    pub default_namespace: String,
    pub max_content_bytes: usize,
    pub max_hash_bytes: u64,
    pub max_batch_items: usize,
    /// Bounds of free-form JSON (`metadata`, workflow `metadata`): serialized bytes, nesting
    /// depth, members + items.
    pub max_metadata_bytes: usize,
    pub max_metadata_depth: usize,
    pub max_metadata_elements: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    pub alert_threshold: u64,
    pub window_secs: u64,
    pub cooldown_secs: u64,
    pub webhook_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Workflows run at once by one instance.
    pub concurrency: usize,
    /// Submitted workflows that may wait for a free slot; beyond, submissions get 429.
    pub queue_capacity: usize,
    /// Seconds a running workflow stays leased to its instance without renewal.
    pub lease_secs: u64,
    /// Directory of contract files (`<name>.toml`) overriding or adding to the built-in ones; empty = none.
    pub contracts_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodegenSettings {
    pub response_timeout_ms: u64,
    /// Codegen requests waiting for their response at once; more get 503.
    pub max_pending: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReducerSettings {
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelligenceSettings {
    pub onextree_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    File {
        path: String,
        source: config::ConfigError,
    },
    #[error("invalid configuration: {0}")]
    Parse(#[from] config::ConfigError),
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Defaults < `file` < process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`] with an explicit environment (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(invalid(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("--config", format!("cannot read {}: {e}", path.display())))?;
            // Check the file on its own first so that an error names the file.
            config::Config::builder()
                .add_source(config::File::from_str(&text, config::FileFormat::Toml))
                .build()
                .map_err(|source| ConfigError::File {
                    path: path.display().to_string(),
                    source,
                })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("OMNINODE__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("OMNINODE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.http.bind.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "http.bind",
                format!("{:?} is not HOST:PORT ({e})", self.http.bind),
            )
        })?;
        let url = &self.database.url;
        if !(url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                format!("{url:?} must start with sqlite:// or postgres://"),
            ));
        }
        if url.starts_with("sqlite://") && url.len() == "sqlite://".len() {
            return Err(invalid("database.url", "sqlite:// needs a file path"));
        }
        let positive = [
            ("database.pool_size", self.database.pool_size as u64),
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            (
                "database.connect_timeout_ms",
                self.database.connect_timeout_ms,
            ),
            (
                "database.statement_timeout_ms",
                self.database.statement_timeout_ms,
            ),
            (
                "database.breaker_failure_threshold",
                self.database.breaker_failure_threshold as u64,
            ),
            (
                "database.write_batch_max",
                self.database.write_batch_max as u64,
            ),
            (
                "database.write_concurrency",
                self.database.write_concurrency as u64,
            ),
            (
                "stamping.max_content_bytes",
                self.stamping.max_content_bytes as u64,
            ),
            ("stamping.max_hash_bytes", self.stamping.max_hash_bytes),
            (
                "stamping.max_metadata_bytes",
                self.stamping.max_metadata_bytes as u64,
            ),
            (
                "stamping.max_metadata_depth",
                self.stamping.max_metadata_depth as u64,
            ),
            (
                "stamping.max_metadata_elements",
                self.stamping.max_metadata_elements as u64,
            ),
            (
                "http.max_json_body_bytes",
                self.http.max_json_body_bytes as u64,
            ),
            (
                "stamping.max_batch_items",
                self.stamping.max_batch_items as u64,
            ),
            ("dlq.alert_threshold", self.dlq.alert_threshold),
            ("dlq.window_secs", self.dlq.window_secs),
            ("kafka.session_timeout_ms", self.kafka.session_timeout_ms),
            ("reducer.batch_size", self.reducer.batch_size as u64),
            (
                "codegen.response_timeout_ms",
                self.codegen.response_timeout_ms,
            ),
            ("reducer.flush_interval_ms", self.reducer.flush_interval_ms),
            ("workflow.concurrency", self.workflow.concurrency as u64),
            ("workflow.lease_secs", self.workflow.lease_secs),
            (
                "workflow.queue_capacity",
                self.workflow.queue_capacity as u64,
            ),
            ("codegen.max_pending", self.codegen.max_pending as u64),
            (
                "http.client_request_timeout_ms",
                self.http.client_request_timeout_ms,
            ),
            ("http.max_sse_clients", self.http.max_sse_clients as u64),
            ("reducer.window_secs", self.reducer.window_secs),
            ("kafka.delivery_timeout_ms", self.kafka.delivery_timeout_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.stamping.max_metadata_depth > 64 {
            return Err(invalid("stamping.max_metadata_depth", "must be at most 64"));
        }
        let largest_body = self.content_body_limit() as u64;
        if self.http.max_inflight_body_bytes < largest_body {
            return Err(invalid(
                "http.max_inflight_body_bytes",
                format!(
                    "must be at least the largest content body ({largest_body} bytes: twice \
                     stamping.max_content_bytes plus 1 MiB), or no such request could be admitted"
                ),
            ));
        }
        Namespace::parse(&self.stamping.default_namespace)
            .map_err(|e| invalid("stamping.default_namespace", e.to_string()))?;
        if self.kafka.topic_env.is_empty()
            || !self
                .kafka
                .topic_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "kafka.topic_env",
                "must be non-empty [A-Za-z0-9_-]",
            ));
        }
        if !(1000..=1_000_000_000).contains(&self.kafka.message_max_bytes) {
            return Err(invalid(
                "kafka.message_max_bytes",
                "must be between 1000 and 1000000000",
            ));
        }
        if self.kafka.replication_factor < 1 {
            return Err(invalid("kafka.replication_factor", "must be at least 1"));
        }
        if self.kafka.consumer_group.trim().is_empty() {
            return Err(invalid("kafka.consumer_group", "must not be empty"));
        }
        for (key, value) in [
            ("dlq.webhook_url", &self.dlq.webhook_url),
            ("intelligence.onextree_url", &self.intelligence.onextree_url),
        ] {
            if !(value.is_empty() || value.starts_with("http://") || value.starts_with("https://"))
            {
                return Err(invalid(
                    key,
                    format!("{value:?} must be an http(s) URL or empty"),
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        Ok(())
    }

    /// Body limit of the routes that carry `content` (/stamp, /validate, /batch, workflows): JSON
    /// escapes it, so twice `stamping.max_content_bytes` plus 1 MiB; the decoded size is checked
    /// against `max_content_bytes` itself.
    pub fn content_body_limit(&self) -> usize {
        self.stamping
            .max_content_bytes
            .saturating_mul(2)
            .saturating_add(1 << 20)
    }

    /// The bounds of free-form JSON values in request bodies.
    pub fn free_json_limits(&self) -> crate::json::FreeJsonLimits {
        crate::json::FreeJsonLimits {
            max_bytes: self.stamping.max_metadata_bytes,
            max_depth: self.stamping.max_metadata_depth,
            max_elements: self.stamping.max_metadata_elements,
        }
    }

    pub fn bind_addr(&self) -> SocketAddr {
        // Checked by `validate`.
        self.http
            .bind
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8057)))
    }

    pub fn default_namespace(&self) -> Namespace {
        Namespace::parse(&self.stamping.default_namespace).unwrap_or_else(|_| {
            Namespace::parse("omninode.services.metadata").expect("valid literal")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:8057");
        assert_eq!(s.database.url, "sqlite://./data/omninode.db");
        assert_eq!(s.kafka.topic_env, "dev");
        assert_eq!(s.stamping.max_batch_items, 1000);
        assert_eq!(s.dlq.alert_threshold, 10);
        assert_eq!(s.log.format, LogFormat::Human);
    }

    #[test]
    fn environment_overrides() {
        let s = Settings::load_from(
            None,
            env(&[
                ("OMNINODE__DATABASE__URL", "postgres://postgres@127.0.0.1/x"),
                ("OMNINODE__STAMPING__MAX_BATCH_ITEMS", "5"),
                ("OMNINODE__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.url, "postgres://postgres@127.0.0.1/x");
        assert_eq!(s.stamping.max_batch_items, 5);
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("OMNINODE__HTTP__BIND", "nonsense", "http.bind"),
            ("OMNINODE__DATABASE__URL", "mysql://x", "database.url"),
            (
                "OMNINODE__STAMPING__MAX_BATCH_ITEMS",
                "0",
                "stamping.max_batch_items",
            ),
            (
                "OMNINODE__STAMPING__MAX_BATCH_ITEMS",
                "many",
                "max_batch_items",
            ),
            (
                "OMNINODE__STAMPING__DEFAULT_NAMESPACE",
                "Bad NS",
                "stamping.default_namespace",
            ),
            ("OMNINODE__LOG__FORMAT", "xml", "format"),
            ("OMNINODE__STAMPING__NO_SUCH_KEY", "1", "no_such_key"),
        ];
        for (key, value, named) in cases {
            let err = Settings::load_from(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn config_file_overrides_defaults_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[http]\nbind = \"0.0.0.0:9000\"\n").unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.http.bind, "0.0.0.0:9000");
        std::fs::write(&path, "[http\nbind = ").unwrap();
        let err = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml"), "{err}");
    }
}
