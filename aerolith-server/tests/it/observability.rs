//! `/healthz`, `/readyz`, `/metrics` (well-formed exposition text, counters
//! that move, route templates as labels) and `/openapi.json` (valid, lists
//! every route, every reference resolves).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aerolith_server::{MetricsSource, MetricsWriter};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{get, send, test_app};

#[tokio::test]
async fn healthz_is_ok_and_readyz_follows_readiness() {
    let (app, state) = test_app();
    let health = send(&app, get("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status":"ok"}));
    assert_eq!(
        send(&app, get("/readyz")).await.json(),
        json!({"status":"ready"})
    );
    state.set_ready(false);
    let not_ready = send(&app, get("/readyz")).await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_ready.json()["error"]["code"], "unavailable");
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
}

/// One parsed sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the exposition text strictly: every line is `# HELP`, `# TYPE`
/// or a sample; every sample belongs to a family declared before it.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(!help.is_empty(), "{line}");
            assert!(
                helped.insert(name.to_owned()),
                "HELP once per family: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            samples.push(parse_sample(line));
        }
    }
    for sample in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = sample.name.strip_suffix(suffix)?;
                (typed.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(&sample.name);
        assert!(
            typed.contains_key(family),
            "sample {} without TYPE",
            sample.name
        );
        assert!(
            helped.contains(family),
            "sample {} without HELP",
            sample.name
        );
    }
    samples
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("sample has a value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("labels close");
            let mut labels = BTreeMap::new();
            let mut chars = body.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("label value closes") {
                        '\\' => match chars.next().expect("escape") {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            c => panic!("bad escape \\{c} in {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            (name, labels)
        }
    };
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "{line}"
    );
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn requests_total(samples: &[Sample], route: &str, method: &str, status: &str) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == "aerolith_http_requests_total"
                && s.labels.get("route").map(String::as_str) == Some(route)
                && s.labels.get("method").map(String::as_str) == Some(method)
                && s.labels.get("status").map(String::as_str) == Some(status)
        })
        .map_or(0.0, |s| s.value)
}

#[tokio::test]
async fn metrics_are_well_formed_and_counters_increase() {
    let (app, _) = test_app();
    send(&app, get("/healthz")).await;
    let first = send(&app, get("/metrics")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.headers.get("content-type").expect("content type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let before = parse_exposition(&first.text());
    assert_eq!(requests_total(&before, "/healthz", "GET", "200"), 1.0);

    send(&app, get("/healthz")).await;
    send(&app, get("/healthz")).await;
    let after = parse_exposition(&send(&app, get("/metrics")).await.text());
    assert_eq!(requests_total(&after, "/healthz", "GET", "200"), 3.0);
    assert_eq!(requests_total(&after, "/metrics", "GET", "200"), 1.0);

    let count = after
        .iter()
        .find(|s| {
            s.name == "aerolith_http_request_duration_seconds_count"
                && s.labels.get("route").map(String::as_str) == Some("/healthz")
        })
        .expect("histogram count");
    assert_eq!(count.value, 3.0);
    let buckets: Vec<f64> = after
        .iter()
        .filter(|s| {
            s.name == "aerolith_http_request_duration_seconds_bucket"
                && s.labels.get("route").map(String::as_str) == Some("/healthz")
        })
        .map(|s| s.value)
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative buckets"
    );
    assert_eq!(buckets.last(), Some(&3.0), "+Inf bucket counts everything");
}

#[tokio::test]
async fn metrics_label_routes_by_template_never_by_raw_path() {
    let (app, _) = test_app();
    send(&app, get("/test/items/secret-id-1")).await;
    send(&app, get("/test/items/secret-id-2")).await;
    send(&app, get("/no/such/route/secret-id-3")).await;
    let text = send(&app, get("/metrics")).await.text();
    assert!(!text.contains("secret-id"), "{text}");
    let samples = parse_exposition(&text);
    assert_eq!(
        requests_total(&samples, "/test/items/{id}", "GET", "200"),
        2.0
    );
    assert_eq!(requests_total(&samples, "unmatched", "GET", "404"), 1.0);
}

#[tokio::test]
async fn registered_metrics_sources_appear_in_the_scrape() {
    struct TenantUsage;
    impl MetricsSource for TenantUsage {
        fn collect(&self, out: &mut MetricsWriter) {
            out.counter(
                "aerolith_tenant_api_calls_total",
                "API calls per tenant.",
                &[(&[("tenant", "t_\"quoted\"")], 7)],
            );
        }
    }
    let (app, state) = test_app();
    state.metrics().register_source(Arc::new(TenantUsage));
    let samples = parse_exposition(&send(&app, get("/metrics")).await.text());
    let usage = samples
        .iter()
        .find(|s| s.name == "aerolith_tenant_api_calls_total")
        .expect("source sample");
    assert_eq!(usage.labels["tenant"], "t_\"quoted\"");
    assert_eq!(usage.value, 7.0);
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    refs.push(item.as_str().expect("$ref is a string").to_owned());
                } else {
                    collect_refs(item, refs);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_every_reference_resolves() {
    let (app, _) = crate::support::test_app();
    let base = aerolith_server::app(crate::support::state());
    let reply = send(&base, get("/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    assert_eq!(doc["info"]["title"], "Aerolith");
    let paths = doc["paths"].as_object().expect("paths");
    let listed: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/v1/admin/whoami"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        doc["paths"]["/v1/admin/whoami"]["get"]["security"],
        json!([{"admin_key": []}])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_key"]["scheme"],
        "bearer"
    );

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {reference}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling {reference}"
        );
    }

    // Every documented operation is served (not the 404/405 fallback).
    for (method, path) in &listed {
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let status = send(&app, request).await.status;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} -> {status}"
        );
    }
}

#[tokio::test]
async fn routes_added_through_api_router_are_documented() {
    let (app, _) = test_app();
    let doc = send(&app, get("/openapi.json")).await.json();
    assert!(doc["paths"]["/test/items/{id}"]["get"].is_object());
    assert!(doc["paths"]["/test/echo"]["post"].is_object());
}
