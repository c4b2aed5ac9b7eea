//! HTTP load test of the server: how much of a bare axum handler's
//! throughput the real Aerolith application keeps, and its latency, under 64
//! concurrent keep-alive connections on loopback.
//!
//! In one process and one run it starts
//!
//! - **bare**: an axum router whose handlers return fixed bytes (the exact
//!   body of a point read, and the body of an insert), served by the same
//!   accept loop (`serve_until`) as the real server, so the difference is
//!   the application: middleware, authentication, tenancy admission, the
//!   engine and JSON;
//! - **aerolith**: the real application (`app_with_routes` over the base,
//!   admin, tenant, usage and transfer routes), with the billing database
//!   and the usage meter as `aerolith serve` opens them, over a temporary
//!   directory, with one tenant holding a collection of 10,000 documents of
//!   1 KiB (`Durability::Always`, as `aerolith serve` runs);
//!
//! and drives each with hyper's HTTP/1 client: `AEROLITH_LOAD_CONNECTIONS`
//! (64) connections, each sending its next request as soon as the previous
//! answer is read, for `AEROLITH_LOAD_SECS` (10) seconds per scenario after a
//! one-second warm-up. Scenarios: point reads of random ids (seeded), then
//! inserts of new 1 KiB documents. Every latency is recorded and sorted for
//! exact percentiles. Any status other than the expected one is counted and
//! fails the run.
//!
//! The tenant's plan lifts the rate and concurrency limits: the bench
//! measures the serving path, not the plan's throttle.
//!
//! ```sh
//! cargo bench -p aerolith-server --bench load
//! AEROLITH_LOAD_SECS=60 cargo bench -p aerolith-server --bench load
//! AEROLITH_LOAD_WORKLOADS=insert cargo bench -p aerolith-server --bench load
//! AEROLITH_LOAD_DURABILITY=periodic cargo bench -p aerolith-server --bench load
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_billing::Catalog;
use aerolith_core::{Durability, MasterKey};
use aerolith_server::config::METER_FLUSH_INTERVAL_MS_DEFAULT;
use aerolith_server::secrets::AdminKeyHash;
use aerolith_server::{
    admin_routes, app_with_routes, base_routes, serve_until, tenant_routes, transfer_routes,
    usage_routes, AppState, Billing, ConnectionLimits, HttpLimits,
};
use aerolith_tenancy::{
    IsolationMode, NewTenant, Principal, QuotaLimits, Slug, Tenancy, TenancyOptions,
};
use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The allocator of the `aerolith` binary (`src/main.rs`), so the bench
/// measures what the server runs; the bare handler and the client share it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COLLECTION: &str = "docs";
const DOCS_DEFAULT: usize = 10_000;
const DOC_BYTES: usize = 1_024;
const CONNECTIONS_DEFAULT: usize = 64;
const SECS_DEFAULT: u64 = 10;
const WARMUP_MS: u64 = 1_000;
const LOAD_BATCH_DOCS: usize = 1_000;
/// Point-read targets of the task: throughput against bare, and p99.
const THROUGHPUT_RATIO_TARGET: f64 = 0.70;
const READ_P99_TARGET_US: u64 = 5_000;

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Document `i`: its id and about 1 KiB of JSON.
fn document(id: &str, i: usize) -> Value {
    let mut doc = json!({"_id": id, "n": i, "category": format!("c{:02}", i % 100), "pad": ""});
    let size = serde_json::to_vec(&doc).expect("serialises").len();
    doc["pad"] = Value::String("x".repeat(DOC_BYTES.saturating_sub(size)));
    doc
}

fn doc_id(i: usize) -> String {
    format!("d{i:06}")
}

/// What one scenario does per request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    PointRead,
    Insert,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::PointRead => "point read",
            Workload::Insert => "insert",
        }
    }

    fn expected(self) -> StatusCode {
        match self {
            Workload::PointRead => StatusCode::OK,
            Workload::Insert => StatusCode::CREATED,
        }
    }
}

struct Target {
    addr: std::net::SocketAddr,
    bearer: Arc<str>,
    docs: usize,
}

struct Outcome {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// CPU time of the whole process (client and server) while recording.
    cpu: Duration,
}

/// User plus system CPU time of this process so far (`/proc/self/stat`, in
/// the kernel's 100 Hz ticks): with the requests served it gives the CPU
/// per request, which a busy machine disturbs far less than throughput.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')').
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

impl Outcome {
    fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_us(&self, per_mille: usize) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let rank = (self.latencies_us.len() * per_mille).div_ceil(1000);
        u64::from(self.latencies_us[rank.saturating_sub(1)])
    }
}

fn request(
    workload: Workload,
    target: &Target,
    rng: &mut StdRng,
    conn: usize,
    seq: u64,
) -> Request<Body> {
    let builder = Request::builder()
        .header(header::HOST, "loopback")
        .header(header::AUTHORIZATION, format!("Bearer {}", target.bearer));
    match workload {
        Workload::PointRead => {
            let id = doc_id(rng.random_range(0..target.docs));
            builder
                .method("GET")
                .uri(format!("/v1/collections/{COLLECTION}/docs/{id}"))
                .body(Body::empty())
        }
        Workload::Insert => {
            let id = format!("c{conn:03}-{seq:09}");
            let body = serde_json::to_vec(&document(&id, conn)).expect("serialises");
            builder
                .method("POST")
                .uri(format!("/v1/collections/{COLLECTION}/docs"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
        }
    }
    .expect("valid request")
}

/// One keep-alive connection sending requests back to back until `stop`;
/// latencies are recorded only after `record_from`.
async fn drive_connection(
    workload: Workload,
    target: Arc<Target>,
    conn: usize,
    record_from: Instant,
    stop: Instant,
) -> Outcome {
    let stream = TcpStream::connect(target.addr).await.expect("connects");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + conn as u64);
    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::with_capacity(64 * 1024),
        cpu: Duration::ZERO,
    };
    let mut seq = 0u64;
    loop {
        let started = Instant::now();
        if started >= stop {
            break;
        }
        seq += 1;
        sender.ready().await.expect("connection stays open");
        let response = sender
            .send_request(request(workload, &target, &mut rng, conn, seq))
            .await
            .expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
            .await
            .expect("body");
        let latency = started.elapsed();
        if started >= record_from {
            outcome.requests += 1;
            outcome
                .latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            if status != workload.expected() {
                outcome.errors += 1;
                if outcome.errors == 1 {
                    eprintln!("unexpected {status}: {}", String::from_utf8_lossy(&body));
                }
            }
        }
    }
    outcome
}

async fn run_scenario(
    workload: Workload,
    target: Arc<Target>,
    connections: usize,
    secs: u64,
) -> Outcome {
    let begin = Instant::now();
    let record_from = begin + Duration::from_millis(WARMUP_MS);
    let stop = record_from + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..connections)
        .map(|conn| {
            tokio::spawn(drive_connection(
                workload,
                target.clone(),
                conn,
                record_from,
                stop,
            ))
        })
        .collect();
    tokio::time::sleep_until(record_from.into()).await;
    let cpu_from = process_cpu();
    let mut total = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::from_secs(secs),
        latencies_us: Vec::new(),
        cpu: Duration::ZERO,
    };
    for task in tasks {
        let outcome = task.await.expect("connection task");
        total.requests += outcome.requests;
        total.errors += outcome.errors;
        total.latencies_us.extend(outcome.latencies_us);
    }
    total.cpu = process_cpu().saturating_sub(cpu_from);
    // The last requests may end a little after `stop`; count the real span.
    total.elapsed = total
        .elapsed
        .max(record_from.elapsed().min(Duration::from_secs(secs + 1)));
    total.latencies_us.sort_unstable();
    total
}

/// Serves `router` with the real accept loop until the returned sender
/// says stop.
async fn spawn_server(router: Router) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let limits = ConnectionLimits::from_config(&aerolith_server::ServerConfig::default());
    tokio::spawn(serve_until(listener, router, limits, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    (addr, stop_tx)
}

/// The real application as `aerolith serve` assembles it (billing database,
/// usage meter, tenant registry metered through it, every route) over a
/// fresh data directory holding one tenant with `docs` documents; returns
/// the router, the owner key and what to close at the end.
fn aerolith_app(dir: &std::path::Path, docs: usize) -> (Router, String, AppState) {
    let master_key = MasterKey::from_bytes([7; 32]);
    let state = AppState::new(HttpLimits::default(), AdminKeyHash::of("adm_load_bench"));
    let billing = Billing::open(
        dir,
        &master_key,
        state.clock().clone(),
        METER_FLUSH_INTERVAL_MS_DEFAULT,
        Catalog::default(),
    )
    .expect("billing opens");
    let mut options = TenancyOptions::new(master_key);
    // `AEROLITH_LOAD_DURABILITY=periodic` syncs every 100 ms instead of per
    // commit: what the serving path costs without the fsync's wait.
    options.durability = match std::env::var("AEROLITH_LOAD_DURABILITY").as_deref() {
        Ok("periodic") => Durability::Periodic(Duration::from_millis(100)),
        _ => Durability::Always,
    };
    options.usage_sink = billing.usage_sink();
    options.plans = billing.catalog().quota_limits();
    options.plans.insert(
        "load".to_owned(),
        QuotaLimits {
            storage_bytes_max: None,
            documents_max: None,
            collections_max: Some(10),
            api_calls_per_hour: None,
            concurrent_requests_max: None,
            query_duration_ms_max: Some(1_000),
        },
    );
    let tenancy = Tenancy::open(dir.join("db"), options).expect("registry opens");
    let created = tenancy
        .create_tenant(
            &Principal::Operator,
            NewTenant {
                name: "load".to_owned(),
                slug: Slug::new("load").expect("valid slug"),
                plan: "load".to_owned(),
                isolation: IsolationMode::Shared,
            },
        )
        .expect("tenant created");
    let key = created.owner_key.secret.expose().to_owned();
    let principal = tenancy.authenticate(&key).expect("owner key works");
    let handle = tenancy
        .handle(&principal, created.tenant.id)
        .expect("own handle");
    handle.create_collection(COLLECTION).expect("collection");
    for start in (0..docs).step_by(LOAD_BATCH_DOCS) {
        let batch = (start..(start + LOAD_BATCH_DOCS).min(docs))
            .map(|i| document(&doc_id(i), i))
            .collect();
        handle.insert_many(COLLECTION, batch).expect("loaded");
    }
    state.set_tenancy(tenancy.clone());
    state.set_billing(billing.clone());
    state.on_shutdown(move || billing.shutdown());
    state.on_shutdown(move || tenancy.close().expect("registry closes"));
    state.set_ready(true);
    let router = app_with_routes(
        state.clone(),
        transfer_routes(usage_routes(tenant_routes(admin_routes(base_routes())))),
    );
    (router, key, state)
}

/// Handlers that return fixed bytes: the floor any real handler sits on.
fn bare_app(read_body: Bytes) -> Router {
    let insert_body = Bytes::from_static(br#"{"id":"c000-000000001"}"#);
    Router::new()
        .route(
            &format!("/v1/collections/{COLLECTION}/docs/{{id}}"),
            get(move || {
                let body = read_body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .route(
            &format!("/v1/collections/{COLLECTION}/docs"),
            axum::routing::post(move |_body: Bytes| {
                let body = insert_body.clone();
                async move {
                    (
                        StatusCode::CREATED,
                        [(header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
}

async fn one_read(addr: std::net::SocketAddr, bearer: &str) -> Bytes {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get(format!("/v1/collections/{COLLECTION}/docs/{}", doc_id(0)))
                .header(header::HOST, "loopback")
                .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
                .body(Body::empty())
                .expect("valid request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK, "the point read works");
    axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
        .await
        .expect("body")
}

fn report(name: &str, outcome: &Outcome) {
    println!(
        "{name:<26} {:>10.0} req/s  p50 {:>6} us  p99 {:>6} us  max {:>7} us  cpu {:>5.1} us/req  ({} requests, {} errors)",
        outcome.requests_per_sec(),
        outcome.percentile_us(500),
        outcome.percentile_us(990),
        outcome.latencies_us.last().copied().unwrap_or(0),
        outcome.cpu.as_secs_f64() * 1e6 / outcome.requests.max(1) as f64,
        outcome.requests,
        outcome.errors,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // special but must not take minutes: run one short round then.
    let is_bench = std::env::args().any(|a| a == "--bench");
    let secs = if is_bench {
        env_number("AEROLITH_LOAD_SECS", SECS_DEFAULT)
    } else {
        1
    };
    let connections = env_number("AEROLITH_LOAD_CONNECTIONS", CONNECTIONS_DEFAULT);
    let docs = env_number("AEROLITH_LOAD_DOCS", DOCS_DEFAULT).max(1);
    let server_threads = env_number("AEROLITH_LOAD_SERVER_THREADS", 2usize);
    let client_threads = env_number("AEROLITH_LOAD_CLIENT_THREADS", 2usize);

    let dir = tempfile::tempdir().expect("temp dir");
    let load_started = Instant::now();
    let (aerolith_router, key, state) = aerolith_app(dir.path(), docs);
    println!(
        "loaded {docs} documents of {DOC_BYTES} B in {:.1} s; {connections} connections, {secs} s per scenario after {WARMUP_MS} ms warm-up; server {server_threads} threads, client {client_threads} threads",
        load_started.elapsed().as_secs_f64()
    );

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()
        .expect("client runtime");

    let (aerolith_addr, stop_aerolith) = server_rt.block_on(spawn_server(aerolith_router));
    let read_body = client_rt.block_on(one_read(aerolith_addr, &key));
    let (bare_addr, stop_bare) = server_rt.block_on(spawn_server(bare_app(read_body.clone())));
    println!("point read body: {} bytes", read_body.len());

    let bearer: Arc<str> = Arc::from(key.as_str());
    let bare = Arc::new(Target {
        addr: bare_addr,
        bearer: bearer.clone(),
        docs,
    });
    let real = Arc::new(Target {
        addr: aerolith_addr,
        bearer,
        docs,
    });
    let mut failed = false;
    // `AEROLITH_LOAD_WORKLOADS=insert` (or `point`) runs one scenario, for
    // profiling; both run by default.
    let only = std::env::var("AEROLITH_LOAD_WORKLOADS").unwrap_or_default();
    let workloads = [Workload::PointRead, Workload::Insert]
        .into_iter()
        .filter(|w| only.is_empty() || w.name().starts_with(only.as_str()));
    for workload in workloads {
        let base = client_rt.block_on(run_scenario(workload, bare.clone(), connections, secs));
        report(&format!("bare {}", workload.name()), &base);
        let ours = client_rt.block_on(run_scenario(workload, real.clone(), connections, secs));
        report(&format!("aerolith {}", workload.name()), &ours);
        let ratio = ours.requests_per_sec() / base.requests_per_sec();
        println!("aerolith/bare {}: {:.1}%", workload.name(), ratio * 100.0);
        failed |= base.errors > 0 || ours.errors > 0;
        if workload == Workload::PointRead {
            let p99 = ours.percentile_us(990);
            println!(
                "point read targets: throughput >= {:.0}% of bare: {}; p99 < {} us: {}",
                THROUGHPUT_RATIO_TARGET * 100.0,
                if ratio >= THROUGHPUT_RATIO_TARGET {
                    "met"
                } else {
                    "MISSED"
                },
                READ_P99_TARGET_US,
                if p99 < READ_P99_TARGET_US {
                    "met"
                } else {
                    "MISSED"
                },
            );
        }
    }
    let _ = stop_aerolith.send(true);
    let _ = stop_bare.send(true);
    drop(server_rt);
    drop(client_rt);
    state.run_shutdown_hooks();
    assert!(!failed, "some requests got an unexpected status");
}
