//! The accept loop on a loopback socket: graceful shutdown lets an in-flight
//! request finish while refusing new connections, and a client that never
//! completes its request head is disconnected.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_server::{app_with_routes, bind, serve_until, ConnectionLimits};
use tokio::sync::{oneshot, Notify};

use crate::support::{state, test_routes};

/// Documentation of the test's slow route; the handler is a closure.
#[utoipa::path(get, path = "/test/slow", responses((status = 200, description = "done")))]
#[allow(dead_code)]
async fn slow() {}

fn limits(header_read_timeout_ms: u64) -> ConnectionLimits {
    ConnectionLimits {
        connections_max: 16,
        header_read_timeout_ms,
        write_stall_timeout_ms: 10_000,
        shutdown_grace_ms: 10_000,
    }
}

async fn loopback() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (entered_h, release_h) = (entered.clone(), release.clone());
    let routes = test_routes().route::<__path_slow, _, _>(move || {
        let (entered, release) = (entered_h.clone(), release_h.clone());
        async move {
            entered.notify_one();
            release.notified().await;
            "done"
        }
    });
    // A long request deadline: this test controls when the handler ends.
    let mut limits_http = crate::support::limits();
    limits_http.request_timeout_ms = 60_000;
    let app_state = aerolith_server::AppState::new(
        limits_http,
        aerolith_server::secrets::AdminKeyHash::of(crate::support::ADMIN_KEY),
    );
    let app = app_with_routes(app_state, routes);
    let (listener, addr) = loopback().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_until(listener, app, limits(10_000), async {
        let _ = stop_rx.await;
    }));

    let client = tokio::task::spawn_blocking(move || {
        let mut response = ureq::get(&format!("http://{addr}/test/slow"))
            .call()
            .expect("request completes");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    });
    entered.notified().await;
    stop_tx.send(()).expect("server listens for the stop");

    // The listener closes while the request is still in flight.
    let refused = tokio::task::spawn_blocking(move || {
        for _ in 0..500 {
            if TcpStream::connect(addr).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    })
    .await
    .expect("join");
    assert!(refused, "new connections are refused after shutdown starts");

    release.notify_one();
    let (status, body) = client.await.expect("join");
    assert_eq!((status, body.as_str()), (200, "done"));
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server drains and returns")
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_finishes_its_headers_is_disconnected() {
    let app = aerolith_server::app(state());
    let (listener, addr) = loopback().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_until(listener, app, limits(200), async {
        let _ = stop_rx.await;
    }));
    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout set");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("partial head sent");
        let started = Instant::now();
        let mut received = Vec::new();
        let result = stream.read_to_end(&mut received);
        (result.map_err(|e| e.kind()), started.elapsed(), received)
    })
    .await
    .expect("join");
    let (result, elapsed, received) = outcome;
    assert!(result.is_ok(), "server closed the connection: {result:?}");
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains("200 OK"), "{text}");
    stop_tx.send(()).expect("stop");
    server.await.expect("join");
}
