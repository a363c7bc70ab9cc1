//! The composition root. Wiring: builds the store, event bus, relay and services from `Settings`
//! into the `AppState` the web edges are handed; every spawned task is owned here and stopped in
//! order on shutdown. Serving: assembles the one actix `App` (`app`) — the correlation middleware,
//! compression, the JSON API (`crate::http`) and the dashboard (`crate::dashboard`) mounted side by
//! side, and the service-wide 404 — and runs the server until a signal.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codegen::gateway::CodegenGateway;
use crate::config::{KafkaSettings, Settings};
use crate::dlq::DlqMonitor;
use crate::events::bus::EventBus;
use crate::events::relay::Sink;
use crate::events::topics::{
    codegen_response_topic, dlq_topics, traced_topics, EventKind, Topics, CODEGEN_OPERATIONS,
};
use crate::events::EventFactory;
use crate::kafka::consumer::{BatchHandler, ConsumerSpec};
use crate::kafka::producer::KafkaPublisher;
use crate::reducer::{KafkaReducer, Reducer};
use crate::stamping::StampingService;
use crate::store::Db;
use crate::tracer::live::LiveFeed;
use crate::tracer::recorder::KafkaRecorder;
use crate::web::AppState;

/// Everything a running service holds.
pub struct Services {
    pub state: web::Data<AppState>,
    shutdown: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
    relay: tokio::task::JoinHandle<()>,
    consumers: Vec<tokio::task::JoinHandle<()>>,
    publisher: Option<KafkaPublisher>,
    workflow_recovery: CancellationToken,
    recovery: tokio::task::JoinHandle<()>,
}

impl Services {
    /// Connect, migrate and start background tasks.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let _ = crate::telemetry::prometheus();
        let db = Db::new(&settings.database)?;
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, backend = db.backend().as_str(), "applied migrations");
        }
        let bus = EventBus::new(16_384);
        let committed = Arc::new(Notify::new());
        let events = EventFactory::new(&settings.kafka.topic_env);
        let (stamping, writer) = StampingService::start(
            db.clone(),
            settings.stamping.clone(),
            events.clone(),
            committed.clone(),
        );
        let shutdown = CancellationToken::new();
        let mut consumers = Vec::new();
        let live = LiveFeed::new(4096, settings.http.max_sse_clients);
        consumers.push(tokio::spawn(crate::tracer::live::forward_bus(
            bus.clone(),
            live.clone(),
            shutdown.clone(),
        )));
        let reducer = Reducer::new(
            db.clone(),
            events.clone(),
            settings.reducer.clone(),
            committed.clone(),
        );
        let (sink, publisher) = if settings.kafka.brokers.is_empty() {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            consumers.push(tokio::spawn(
                reducer.clone().run_local(rx, shutdown.clone()),
            ));
            (
                Sink::InProcess {
                    bus: bus.clone(),
                    consumers: vec![tx],
                },
                None,
            )
        } else {
            let publisher = KafkaPublisher::new(&settings.kafka)?;
            let topics_ready = settings.kafka.create_topics
                && match tokio::time::timeout(
                    Duration::from_secs(10),
                    crate::kafka::admin::create_topics(&settings.kafka),
                )
                .await
                {
                    Ok(Ok((created, existing))) => {
                        tracing::info!(
                            created = created.len(),
                            existing = existing.len(),
                            "kafka topics ready"
                        );
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "creating kafka topics failed; retrying in the background");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(
                            "creating kafka topics timed out; retrying in the background"
                        );
                        false
                    }
                };
            if settings.kafka.create_topics && !topics_ready {
                // Kafka being down must not stop stamping: keep trying in the background.
                let kafka = settings.kafka.clone();
                let token = shutdown.clone();
                consumers.push(tokio::spawn(async move {
                    let mut attempt = 0u32;
                    loop {
                        match crate::kafka::admin::create_topics(&kafka).await {
                            Ok((created, existing)) => {
                                tracing::info!(created = created.len(), existing = existing.len(), "kafka topics ready");
                                return;
                            }
                            Err(e) => {
                                attempt += 1;
                                tracing::warn!(error = %e, attempt, "creating kafka topics failed; retrying");
                            }
                        }
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs((1u64 << attempt.min(5)).min(30))) => {}
                        }
                    }
                }));
            }
            let spec = ConsumerSpec {
                group_id: format!("{}.tracer", settings.kafka.consumer_group),
                topics: traced_topics(&settings.kafka.topic_env),
                batch_max: 1000,
                batch_wait: Duration::from_millis(50),
                from_latest: false,
                fetch_wait_ms: 100,
            };
            let recorder = KafkaRecorder {
                db: db.clone(),
                feed: Some(live.clone()),
            };
            consumers.push(spawn_consumer(
                "event-log",
                &settings.kafka,
                spec,
                recorder,
                &publisher,
                &shutdown,
            ));
            let spec = ConsumerSpec {
                group_id: format!("{}.dlq-monitor", settings.kafka.consumer_group),
                topics: dlq_topics(&settings.kafka.topic_env),
                batch_max: 500,
                batch_wait: Duration::from_millis(50),
                from_latest: false,
                fetch_wait_ms: 100,
            };
            let monitor =
                DlqMonitor::new(db.clone(), settings.dlq.clone(), Some(publisher.clone()));
            consumers.push(spawn_consumer(
                "DLQ monitor",
                &settings.kafka,
                spec,
                monitor,
                &publisher,
                &shutdown,
            ));
            let topics = Topics::new(&settings.kafka.topic_env);
            let spec = ConsumerSpec {
                group_id: format!("{}.reducer", settings.kafka.consumer_group),
                topics: vec![topics.name(EventKind::MetadataStampCreated)],
                batch_max: settings.reducer.batch_size,
                batch_wait: Duration::from_millis(settings.reducer.flush_interval_ms),
                from_latest: false,
                fetch_wait_ms: 100,
            };
            let handler = KafkaReducer(reducer.clone());
            consumers.push(spawn_consumer(
                "reducer",
                &settings.kafka,
                spec,
                handler,
                &publisher,
                &shutdown,
            ));
            (
                Sink::Kafka {
                    publisher: publisher.clone(),
                    bus: bus.clone(),
                },
                Some(publisher),
            )
        };
        let relay = tokio::spawn(crate::events::relay::run(
            db.clone(),
            sink,
            committed,
            shutdown.clone(),
        ));
        let dlq_monitor = DlqMonitor::new(db.clone(), settings.dlq.clone(), publisher.clone());
        let gateway = CodegenGateway::new(
            publisher.clone(),
            bus.clone(),
            events.clone(),
            Duration::from_millis(settings.codegen.response_timeout_ms),
        )
        .with_max_pending(settings.codegen.max_pending);
        if let Some(kafka) = &publisher {
            let topics = CODEGEN_OPERATIONS
                .iter()
                .map(|op| codegen_response_topic(op))
                .collect();
            let spec = ConsumerSpec {
                // Every instance reads every response (its own group), and answers what it holds.
                group_id: format!(
                    "{}.codegen-gateway.{}",
                    settings.kafka.consumer_group,
                    uuid::Uuid::new_v4().simple()
                ),
                topics,
                batch_max: 100,
                batch_wait: Duration::from_millis(5),
                from_latest: true,
                fetch_wait_ms: 10,
            };
            consumers.push(spawn_consumer(
                "codegen response",
                &settings.kafka,
                spec,
                gateway.clone(),
                kafka,
                &shutdown,
            ));
        } else {
            consumers.push(tokio::spawn(gateway.clone().run_bus(shutdown.clone())));
        }
        let intelligence_client = (!settings.intelligence.onextree_url.is_empty()).then(|| {
            Arc::new(crate::intelligence::OnexTreeClient::new(
                crate::intelligence::ClientConfig::new(&settings.intelligence.onextree_url),
            ))
        });
        let contracts_dir = (!settings.workflow.contracts_dir.is_empty())
            .then(|| std::path::PathBuf::from(&settings.workflow.contracts_dir));
        let contracts = crate::workflow::contract::Contract::load(contracts_dir.as_deref())?;
        let workflow_engine = crate::workflow::engine::WorkflowEngine::new(
            db.clone(),
            stamping.clone(),
            intelligence_client.clone(),
            events.clone(),
            contracts,
            settings.workflow.concurrency,
            Duration::from_secs(settings.workflow.lease_secs),
        )
        .with_queue_capacity(settings.workflow.queue_capacity);
        // Stopped first on shutdown: it holds the engine, and with it the stamping writer's sender.
        let workflow_recovery = CancellationToken::new();
        let recovery = tokio::spawn(
            workflow_engine
                .clone()
                .run_recovery(workflow_recovery.clone()),
        );
        let body_budget =
            crate::web::budget::BodyBudget::new(settings.http.max_inflight_body_bytes);
        let state = web::Data::new(AppState {
            body_budget,
            settings: Arc::new(settings),
            db,
            stamping,
            bus,
            kafka: publisher.clone(),
            dlq: dlq_monitor,
            codegen: gateway,
            intelligence: intelligence_client,
            workflows: workflow_engine.clone(),
            live,
            closing: CancellationToken::new(),
            started: Instant::now(),
        });
        Ok(Services {
            state,
            shutdown,
            writer,
            relay,
            consumers,
            publisher,
            workflow_recovery,
            recovery,
        })
    }

    /// Serve HTTP on `listener` until SIGINT/SIGTERM (or `stop` on the returned handle), then drain
    /// in-flight requests and stop background tasks.
    pub fn server(&self, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
        let state = self.state.clone();
        let settings = &self.state.settings;
        let mut server = actix_web::HttpServer::new(move || app(state.clone()))
            .listen(listener)?
            .shutdown_timeout(settings.http.shutdown_timeout_secs)
            .backlog(4096)
            .max_connections(50_000)
            .max_connection_rate(1024)
            // Slow clients are cut off: headers must arrive within client_request_timeout (else
            // 408 and the connection closes), a closing connection gets client_disconnect_timeout.
            .client_request_timeout(Duration::from_millis(
                settings.http.client_request_timeout_ms,
            ))
            .client_disconnect_timeout(Duration::from_millis(
                settings.http.client_disconnect_timeout_ms,
            ))
            .keep_alive(match settings.http.keep_alive_secs {
                0 => actix_web::http::KeepAlive::Disabled,
                secs => actix_web::http::KeepAlive::Timeout(Duration::from_secs(secs)),
            });
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        Ok(server.run())
    }

    /// Stop background tasks after the server has stopped: the stamping writer finishes queued
    /// commits, then the relay publishes what was committed.
    pub async fn stop(self) {
        let Services {
            state,
            shutdown,
            writer,
            relay,
            consumers,
            publisher,
            workflow_recovery,
            recovery,
        } = self;
        // No more takeovers; running workflows finish (bounded by their contract's timeout).
        workflow_recovery.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), recovery).await;
        // Dropping the last AppState drops the writer's sender, ending the writer after it drains.
        drop(state);
        let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
        for c in consumers {
            let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
        }
        if let Some(p) = publisher {
            p.flush(Duration::from_secs(5));
        }
    }
}

/// The actix `App` for `state`: every route of the service (used by the server and by tests).
pub fn app(
    state: web::Data<AppState>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let settings = state.settings.clone();
    actix_web::App::new()
        .wrap(actix_web::middleware::from_fn(
            crate::web::context::correlation,
        ))
        .wrap(actix_web::middleware::Compress::default())
        .app_data(state)
        .configure(|cfg| crate::http::configure(cfg, &settings))
        .configure(|cfg| crate::dashboard::configure(cfg, &settings))
        .default_service(web::to(crate::http::not_found))
}

/// Run a consumer group until shutdown; its failure is logged (the service keeps serving).
fn spawn_consumer<H: BatchHandler>(
    name: &'static str,
    kafka: &KafkaSettings,
    spec: ConsumerSpec,
    handler: H,
    dlq: &KafkaPublisher,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (kafka, dlq, token) = (kafka.clone(), dlq.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::kafka::consumer::run(&kafka, spec, handler, dlq, token).await {
            tracing::error!(error = %e, consumer = name, "kafka consumer stopped");
        }
    })
}

/// `serve`: run until a signal arrives.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let addr = settings.bind_addr();
    let listener = TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (http.bind): {e}"))?;
    let services = Services::start(settings).await?;
    tracing::info!(
        %addr,
        backend = services.state.db.backend().as_str(),
        profile = services.state.profile(),
        "omninode-bridge listening"
    );
    let server = services.server(listener)?;
    // actix stops on SIGINT/SIGTERM itself; long-lived responses (the SSE tail) must end too, or
    // the drain would wait for them until the shutdown timeout.
    let closing = services.state.closing.clone();
    let signals = tokio::spawn(async move {
        wait_for_stop_signal().await;
        closing.cancel();
    });
    server.await?;
    signals.abort();
    tracing::info!("HTTP server stopped; draining background tasks");
    services.stop().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
