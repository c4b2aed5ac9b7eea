//! Metering and the operator's operations against the real binary: usage
//! reflects calls and exact HTTP body bytes, history and `/metrics` agree,
//! the admin usage and export routes take a slug and refuse tenant keys,
//! explain answers JSON, `backup`/`restore` round-trip a tenant through the
//! CLI, and the offline `verify`/`compact` work on a stopped server, refuse
//! a running one, and find a flipped byte.

use aerolith_server::{AdminClient, ClientError};
use serde_json::{json, Value};

use crate::cli_binary::{
    command, read_admin_key, start_with_env, terminate, wait_healthy, Running,
};

fn api_status(result: Result<Value, ClientError>) -> u16 {
    match result {
        Err(ClientError::Api { status, .. }) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A meter flush interval no test outlives: only reads and shutdown flush.
const FLUSH_NEVER: (&str, &str) = ("AEROLITH_METER_FLUSH_INTERVAL_MS", "3600000");

fn started(data_dir: &std::path::Path) -> (Running, AdminClient, String) {
    let mut server = start_with_env(data_dir, &[FLUSH_NEVER]);
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let admin_key = server.admin_key.clone().expect("admin key");
    let operator = AdminClient::new(&server.url, Some(admin_key.clone()));
    (server, operator, admin_key)
}

fn create_tenant(operator: &AdminClient, slug: &str) -> (String, String) {
    let created = operator
        .post("/v1/admin/tenants", &json!({"name": slug}))
        .expect("tenant created");
    let key = created["owner_key"]["key"]
        .as_str()
        .expect("owner key")
        .to_owned();
    (created["id"].to_string(), key)
}

/// Sends requests as one tenant and adds up the JSON body bytes both ways.
struct Tally<'a> {
    client: &'a AdminClient,
    bytes_in: u64,
    bytes_out: u64,
}

impl Tally<'_> {
    fn post(&mut self, path: &str, body: Value) -> Value {
        // The client (ureq `send_json`) sends pretty-printed JSON.
        self.bytes_in += serde_json::to_vec_pretty(&body).expect("serialises").len() as u64;
        let reply = self.client.post(path, &body).expect("succeeds");
        self.bytes_out += serde_json::to_vec(&reply).expect("serialises").len() as u64;
        reply
    }

    fn get(&mut self, path: &str) -> Value {
        let reply = self.client.get(path).expect("succeeds");
        self.bytes_out += serde_json::to_vec(&reply).expect("serialises").len() as u64;
        reply
    }
}

fn metric(usage: &Value, name: &str) -> u64 {
    usage["metrics"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no metric {name} in {usage}"))
}

fn scrape(url: &str) -> String {
    ureq::get(&format!("{url}/metrics"))
        .call()
        .expect("scrapes")
        .into_body()
        .read_to_string()
        .expect("text")
}

#[test]
fn usage_counts_calls_and_exact_body_bytes_per_tenant_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, operator, _) = started(&dir.path().join("data"));
    let (id_a, key_a) = create_tenant(&operator, "tenant-a");
    let (_id_b, key_b) = create_tenant(&operator, "tenant-b");
    let a = AdminClient::new(&server.url, Some(key_a.clone()));
    let b = AdminClient::new(&server.url, Some(key_b));

    let mut tally = Tally {
        client: &a,
        bytes_in: 0,
        bytes_out: 0,
    };
    tally.post("/v1/collections", json!({"name": "users"}));
    tally.post("/v1/collections/users/indexes", json!({"path": "age"}));
    for (id, age) in [("u1", 36), ("u2", 45), ("u3", 20)] {
        tally.post(
            "/v1/collections/users/docs",
            json!({"_id": id, "name": "x".repeat(100), "age": age}),
        );
    }
    tally.get("/v1/collections/users/docs/u1");
    tally.get("/v1/collections/users/docs/u2");
    let explained = tally.post(
        "/v1/collections/users/query",
        json!({"filter": {"age": {"$gte": 30}}, "explain": true}),
    );
    assert_eq!(
        explained,
        json!({"explain": {"plan": "index_range", "index": "age", "documents_examined": 2, "returned": 2}}),
        "explain is the plan as JSON"
    );
    tally.post(
        "/v1/collections/users/query",
        json!({"filter": {"age": {"$gte": 30}}}),
    );

    // Storage is integrated from this read's sample on.
    let storage_from = std::time::Instant::now();
    let usage = a.get("/v1/usage").expect("usage");
    let stored_bytes = usage["storage_bytes"].as_u64().expect("storage bytes");
    assert_eq!(usage["tenant_id"], id_a.as_str());
    // Tenants are subscribed at creation, so usage follows their billing period.
    assert_eq!(usage["period"]["basis"], "billing_period");
    assert_eq!(metric(&usage, "api_calls.admin"), 2, "{usage}");
    assert_eq!(metric(&usage, "api_calls.write"), 3, "{usage}");
    assert_eq!(metric(&usage, "api_calls.read"), 2, "{usage}");
    assert_eq!(metric(&usage, "api_calls.query"), 2, "{usage}");
    assert_eq!(
        metric(&usage, "bandwidth_in_bytes"),
        tally.bytes_in,
        "{usage}"
    );
    assert_eq!(
        metric(&usage, "bandwidth_out_bytes"),
        tally.bytes_out,
        "{usage}"
    );
    assert_eq!(usage["documents"], 3, "{usage}");
    let first_usage_bytes = serde_json::to_vec(&usage).expect("serialises").len() as u64;

    let again = a.get("/v1/usage").expect("usage");
    assert_eq!(
        metric(&again, "bandwidth_out_bytes"),
        tally.bytes_out + first_usage_bytes,
        "the first usage reply is metered too"
    );
    assert_eq!(
        metric(&again, "api_calls.read"),
        2,
        "reading usage is not a data call"
    );

    let usage_b = b.get("/v1/usage").expect("usage");
    for name in [
        "api_calls.read",
        "api_calls.write",
        "api_calls.query",
        "bandwidth_in_bytes",
    ] {
        assert_eq!(metric(&usage_b, name), 0, "{name}: {usage_b}");
    }

    let history = a
        .get("/v1/usage/history?metric=api_calls.write&granularity=hour")
        .expect("history");
    let buckets = history["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 1, "{history}");
    assert_eq!(buckets[0]["quantity"], 3, "{history}");
    assert_eq!(
        api_status(a.get("/v1/usage/history?metric=nope")),
        400,
        "unknown metric"
    );
    assert_eq!(
        api_status(a.get("/v1/usage/history?metric=api_calls.write&granularity=week")),
        400
    );

    let by_slug = operator
        .get("/v1/admin/tenants/tenant-a/usage")
        .expect("admin usage by slug");
    assert_eq!(metric(&by_slug, "api_calls.write"), 3, "{by_slug}");
    assert_eq!(
        operator
            .get(&format!("/v1/admin/tenants/{id_a}/usage"))
            .expect("admin usage by id")["tenant_id"],
        id_a.as_str()
    );
    assert_eq!(
        api_status(operator.get("/v1/admin/tenants/nobody/usage")),
        404
    );

    // A tenant key reaches no admin route, its own tenant's or another's.
    for path in [
        "/v1/admin/tenants/tenant-b/usage",
        "/v1/admin/tenants/tenant-a/usage",
        "/v1/admin/tenants/tenant-b/export",
    ] {
        assert_eq!(api_status(a.get(path)), 401, "{path}");
    }

    let metrics = scrape(&server.url);
    assert!(
        metrics.contains(&format!(
            "aerolith_tenant_api_calls_total{{tenant=\"{id_a}\",kind=\"write\"}} 3"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("aerolith_tenant_bandwidth_bytes_total{tenant="),
        "{metrics}"
    );
    // A call after the last read reaches the ledger through the shutdown
    // flush alone (the periodic flush is an hour away).
    a.delete("/v1/collections/users/docs/u3").expect("deleted");
    let (status, _) = terminate(server);
    assert!(status.success(), "{status:?}");
    let restarted = start_with_env(&dir.path().join("data"), &[FLUSH_NEVER]);
    wait_healthy(&restarted.url);
    let a = AdminClient::new(&restarted.url, Some(key_a));
    let after = a.get("/v1/usage").expect("usage after restart");
    assert_eq!(metric(&after, "api_calls.write"), 4, "{after}");
    assert_eq!(metric(&after, "api_calls.query"), 2, "{after}");
    // Storage: sampled at the first usage read, at shutdown, after the
    // restart; never more than the largest size times the wall time.
    let elapsed_ms = u64::try_from(storage_from.elapsed().as_millis()).expect("fits");
    let byte_seconds = metric(&after, "storage_byte_seconds");
    assert!(byte_seconds > 0, "{after}");
    assert!(
        byte_seconds <= stored_bytes * elapsed_ms / 1_000,
        "{byte_seconds} > {stored_bytes} B x {elapsed_ms} ms: {after}"
    );
    assert!(after["storage_gb_month"].is_string(), "{after}");
}

fn run_cli(args: &[&str]) -> std::process::Output {
    command(args).output().expect("runs")
}

fn flip_a_byte_mid_segment(engine_dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(engine_dir)
        .expect("lists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "aero"))
        .collect();
    segments.sort();
    let segment = segments.first().expect("a segment").clone();
    let mut bytes = std::fs::read(&segment).expect("reads");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, bytes).expect("writes");
    segment
}

#[test]
fn backup_restore_round_trip_then_offline_verify_and_compact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().expect("utf-8");
    let (server, operator, admin_key) = started(&data_dir);
    let (_, key_a) = create_tenant(&operator, "source");
    let a = AdminClient::new(&server.url, Some(key_a));
    for collection in ["users", "events"] {
        a.post("/v1/collections", &json!({"name": collection}))
            .expect("collection");
    }
    a.post(
        "/v1/collections/users/indexes",
        &json!({"path": "email", "unique": true}),
    )
    .expect("index");
    // More than one import batch.
    let users: Vec<Value> = (0..510)
        .map(|i| json!({"_id": format!("u{i:04}"), "email": format!("u{i}@example.com"), "n": i}))
        .collect();
    a.post("/v1/collections/users/docs", &json!({"documents": users}))
        .expect("bulk");
    a.post(
        "/v1/collections/events/docs",
        &json!({"_id": "e1", "nested": {"list": [1, 2, {"x": null}]}, "text": "line\nbreak"}),
    )
    .expect("event");

    let backup = dir.path().join("source.jsonl");
    let remote = [
        "--server",
        server.url.as_str(),
        "--admin-key",
        admin_key.as_str(),
    ];
    let out = run_cli(
        &[
            &["backup", "source", "--out", backup.to_str().expect("utf-8")][..],
            &remote[..],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&backup).expect("backup file");
    assert_eq!(
        text.lines().count(),
        2 + 510 + 1,
        "two headers, 511 documents"
    );

    let (_, key_b) = create_tenant(&operator, "target");
    let out = run_cli(
        &[
            &["restore", "target", "--in", backup.to_str().expect("utf-8")][..],
            &remote[..],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(restored["documents"], 511, "{restored}");
    assert_eq!(restored["collections"], 2, "{restored}");
    assert_eq!(restored["indexes"], 1, "{restored}");

    let b = AdminClient::new(&server.url, Some(key_b));
    assert_eq!(
        b.get("/v1/collections/events/docs/e1").expect("restored"),
        a.get("/v1/collections/events/docs/e1").expect("original")
    );
    assert_eq!(
        b.get("/v1/collections/users/indexes").expect("indexes")["indexes"][0]["unique"],
        true
    );
    let copy = dir.path().join("target.jsonl");
    let out = run_cli(
        &[
            &["backup", "target", "--out", copy.to_str().expect("utf-8")][..],
            &remote[..],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&copy).expect("copy"),
        text,
        "the restored tenant exports exactly what the source did"
    );
    // Restoring again conflicts on the ids instead of duplicating.
    let out = run_cli(
        &[
            &["restore", "target", "--in", backup.to_str().expect("utf-8")][..],
            &remote[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1));

    // Offline commands refuse while the server holds the directory.
    let out = run_cli(&["compact", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop `aerolith serve` first"), "{stderr}");

    let (status, _) = terminate(server);
    assert!(status.success(), "{status:?}");

    let out = run_cli(&["verify", "--data-dir", data]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for engine in [
        "engine system",
        "engine shared",
        "engine billing",
        "3 audit chains",
    ] {
        assert!(stdout.contains(engine), "{engine}: {stdout}");
    }
    let out = run_cli(&["compact", "--data-dir", data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compacted: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        compacted["compacted"].as_array().map(Vec::len),
        Some(3),
        "{compacted}"
    );
    let out = run_cli(&["verify", "--data-dir", data]);
    assert!(out.status.success(), "verifies after compaction");

    let segment = flip_a_byte_mid_segment(&data_dir.join("db").join("shared"));
    let out = run_cli(&["verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&segment.display().to_string()) && stderr.contains("at offset"),
        "names the file and offset: {stderr}"
    );
}
