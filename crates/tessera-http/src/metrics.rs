//! `GET /metrics` (SPEC §2.4): Prometheus text, from the `metrics` facade the services
//! count with. Labels name routes by their template, outcomes and limits, never an
//! address, an email, a token or a user.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Latency buckets, in seconds: from a cached session check to a queued sign-in.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's recorder, installed on first use (one per process, however many
/// servers it runs, as the tests do). `None` if another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().set_buckets(BUCKETS).and_then(|b| b.install_recorder()) {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the metrics recorder: /metrics stays empty");
                None
            }
        })
        .as_ref()
}

/// Keeps the recorder's histograms drained: they hold each sample until upkeep folds it
/// into its buckets, so without this a busy server that is scraped rarely would hold
/// every latency it ever measured. Runs on the current runtime until the process ends.
pub fn start_upkeep() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if let Some(handle) = handle() {
        STARTED.get_or_init(|| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            });
        });
    }
}

/// The middleware counting every request and its latency, by route template (a path
/// that matched no route counts as `unmatched`), method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let labels = [("route", route), ("method", method), ("status", res.status().as_str().to_owned())];
    metrics::counter!("tessera_http_requests_total", &labels).increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

/// `GET /metrics` alone, for the main router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// `GET /metrics` alone, served on `METRICS_ADDR`.
pub fn router(state: AppState) -> Router {
    routes().with_state(state)
}

/// GET /metrics: the gauges read now, then everything counted, as Prometheus text.
pub async fn render(State(s): State<AppState>) -> Response {
    let Some(handle) = handle() else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "metrics are not recorded\n").into_response();
    };
    let v = s.core.vitals().await;
    metrics::gauge!("tessera_hash_queue_depth").set(v.hash_queue as f64);
    if let Some(pending) = v.outbox_pending {
        metrics::gauge!("tessera_mail_outbox_depth").set(pending as f64);
    }
    if let Some((waiting, failed)) = v.webhooks {
        metrics::gauge!("tessera_webhook_outbox_depth", "state" => "waiting").set(waiting as f64);
        metrics::gauge!("tessera_webhook_outbox_depth", "state" => "failed").set(failed as f64);
    }
    for p in &v.pools {
        metrics::gauge!("tessera_db_connections", "pool" => p.pool, "state" => "in_use").set(f64::from(p.in_use));
        metrics::gauge!("tessera_db_connections", "pool" => p.pool, "state" => "idle").set(f64::from(p.idle));
    }
    if let Some(rss) = resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

/// The process's resident memory, from `/proc/self/status` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
