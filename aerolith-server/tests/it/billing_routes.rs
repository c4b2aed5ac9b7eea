//! The billing routes of the real binary: a plan change invoices exactly
//! the previewed lines, cancellation (at period end, then now, then 409),
//! invoices read as JSON and as text, paying is
//! idempotent per key and refused twice under new keys, another tenant's
//! invoice is 404 (never 403), the operator marks a bank transfer paid, an
//! unknown plan is 422, and a tenant
//! suspended for non-payment gets 402 on its data but can still pay.

use aerolith_server::AdminClient;
use serde_json::{json, Value};

use crate::cli_binary::{read_admin_key, start, wait_healthy, Running};

const CARD_OK: &str = "4242424242424242";

/// A raw answer: status, content type, body text.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn new(server: &Running) -> Http {
        Http {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            base: server.url.clone(),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {key}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                body.to_string()
            }
            None => String::new(),
        };
        let mut response = self
            .agent
            .run(builder.body(body).expect("valid request"))
            .expect("the server answers");
        Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            text: response.body_mut().read_to_string().expect("body"),
        }
    }
}

fn running_server(dir: &tempfile::TempDir) -> (Running, AdminClient) {
    let mut server = start(&dir.path().join("data"));
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let operator = AdminClient::new(&server.url, server.admin_key.clone());
    (server, operator)
}

/// Creates a tenant billed from today; returns the created JSON and its key.
fn paid_tenant(operator: &AdminClient, slug: &str, card: Option<&str>) -> (Value, String) {
    let mut request = json!({"name": slug, "plan": "starter", "trial_days": 0});
    if let Some(number) = card {
        request["payment_method"] = json!({"type": "card", "number": number});
    }
    let created = operator
        .post("/v1/admin/tenants", &request)
        .expect("tenant created");
    let key = created["owner_key"]["key"]
        .as_str()
        .expect("owner key")
        .to_owned();
    (created, key)
}

#[test]
fn plan_change_invoices_exactly_the_previewed_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, operator) = running_server(&dir);
    let http = Http::new(&server);
    let (created, key) = paid_tenant(&operator, "acme", Some(CARD_OK));
    assert_eq!(created["subscription"]["status"], "active", "{created}");

    let preview = http.call(
        "POST",
        "/v1/subscription/preview",
        &key,
        &[],
        Some(json!({"plan": "professional"})),
    );
    assert_eq!(preview.status, 200, "{}", preview.text);
    let preview = preview.json();
    let lines = preview["lines"].as_array().expect("lines").clone();
    assert!(
        !lines.is_empty(),
        "an upgrade mid-period has lines: {preview}"
    );
    assert!(
        preview["net_minor"].as_i64().expect("net") > 0,
        "an upgrade costs: {preview}"
    );

    let changed = http.call(
        "POST",
        "/v1/subscription/change",
        &key,
        &[],
        Some(json!({"plan": "professional"})),
    );
    assert_eq!(changed.status, 200, "{}", changed.text);
    let changed = changed.json();
    assert_eq!(changed["subscription"]["plan_id"], "professional");
    // The applied change is the same computation as the preview: same
    // descriptions; amounts equal unless a second passed in between
    // (proration is to the second), and then within one cent.
    let applied = changed["preview"]["lines"].as_array().expect("lines");
    assert_eq!(applied.len(), lines.len());
    for (shown, done) in lines.iter().zip(applied) {
        assert_eq!(shown["description"], done["description"]);
        let (a, b) = (
            shown["amount_minor"].as_i64().expect("amount"),
            done["amount_minor"].as_i64().expect("amount"),
        );
        if preview["change_at_unix_ms"] == changed["preview"]["change_at_unix_ms"] {
            assert_eq!(a, b);
        } else {
            assert!((a - b).abs() <= 1, "{a} vs {b}");
        }
    }
    // ... and the invoice carries exactly the applied lines.
    let invoice = &changed["invoice"];
    let invoiced = invoice["lines"].as_array().expect("invoice lines");
    assert_eq!(invoiced.len(), applied.len(), "{invoice}");
    for (line, done) in invoiced.iter().zip(applied) {
        assert_eq!(line["description"], done["description"]);
        assert_eq!(line["amount"]["amount_minor"], done["amount_minor"]);
    }
    assert_eq!(
        invoice["status"], "paid",
        "the card on file paid it: {invoice}"
    );
    let tenant = operator
        .get(&format!(
            "/v1/admin/tenants/{}",
            created["id"]
                .as_str()
                .map_or_else(|| created["id"].to_string(), str::to_owned)
        ))
        .expect("tenant");
    assert_eq!(tenant["plan"], "professional", "quotas follow the plan");

    let canceled = http.call(
        "POST",
        "/v1/subscription/cancel",
        &key,
        &[],
        Some(json!({})),
    );
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(
        canceled.json()["subscription"]["cancel_at_period_end"],
        true,
        "the default is at the end of the period"
    );
    let again = http.call(
        "POST",
        "/v1/subscription/cancel",
        &key,
        &[],
        Some(json!({"mode": "now"})),
    );
    assert_eq!(
        again.status, 200,
        "canceling now after scheduling it: {}",
        again.text
    );
    assert_eq!(again.json()["subscription"]["status"], "canceled");
    let twice = http.call(
        "POST",
        "/v1/subscription/cancel",
        &key,
        &[],
        Some(json!({"mode": "now"})),
    );
    assert_eq!(twice.status, 409, "{}", twice.text);

    let unknown = http.call(
        "POST",
        "/v1/subscription/preview",
        &key,
        &[],
        Some(json!({"plan": "platinum"})),
    );
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    let refused = operator.post(
        "/v1/admin/tenants",
        &json!({"name": "other", "plan": "platinum"}),
    );
    assert!(
        matches!(
            refused,
            Err(aerolith_server::ClientError::Api { status: 422, .. })
        ),
        "{refused:?}"
    );
}

#[test]
fn invoices_read_as_json_or_text_and_pay_once_per_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, operator) = running_server(&dir);
    let http = Http::new(&server);
    let (created, key) = paid_tenant(&operator, "acme", None);
    let invoice_id = created["invoice_id"]
        .as_str()
        .expect("first invoice")
        .to_owned();
    let (other, other_key) = paid_tenant(&operator, "globex", None);

    let listed = http.call("GET", "/v1/invoices", &key, &[], None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["invoices"][0]["id"], invoice_id.as_str());

    let as_json = http.call(
        "GET",
        &format!("/v1/invoices/{invoice_id}"),
        &key,
        &[],
        None,
    );
    assert_eq!(as_json.status, 200);
    assert!(as_json.content_type.starts_with("application/json"));
    let invoice = as_json.json();
    assert_eq!(invoice["status"], "finalized", "no card on file: unpaid");
    let number = invoice["number"].clone();
    assert!(!number.is_null(), "a finalized invoice has a number");

    for (path, headers) in [
        (format!("/v1/invoices/{invoice_id}?format=text"), vec![]),
        (
            format!("/v1/invoices/{invoice_id}"),
            vec![("accept", "text/plain")],
        ),
    ] {
        let text = http.call("GET", &path, &key, &headers, None);
        assert_eq!(text.status, 200, "{}", text.text);
        assert!(
            text.content_type.starts_with("text/plain"),
            "{}",
            text.content_type
        );
        assert!(
            text.text.contains("Starter") || text.text.contains("starter"),
            "{}",
            text.text
        );
    }

    // Another tenant's invoice does not exist for it: 404, never 403.
    for (method, path, body) in [
        ("GET", format!("/v1/invoices/{invoice_id}"), None),
        (
            "POST",
            format!("/v1/invoices/{invoice_id}/pay"),
            Some(json!({"method": {"type": "card", "number": CARD_OK}})),
        ),
    ] {
        let answer = http.call(
            method,
            &path,
            &other_key,
            &[("idempotency-key", "k-other")],
            body,
        );
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.text);
        assert_eq!(answer.json()["error"]["code"], "not_found");
    }

    // A bank transfer arrived for globex's invoice: the operator marks it paid.
    let other_invoice = other["invoice_id"].as_str().expect("first invoice");
    let marked = operator
        .post(
            &format!("/v1/admin/tenants/globex/invoices/{other_invoice}/mark-paid"),
            &json!({"reference": "bank-2026-11-23-001"}),
        )
        .expect("marked paid");
    assert_eq!(marked["status"], "paid", "{marked}");

    let pay = |idempotency_key: &str| {
        http.call(
            "POST",
            &format!("/v1/invoices/{invoice_id}/pay"),
            &key,
            &[("idempotency-key", idempotency_key)],
            Some(json!({"method": {"type": "card", "number": CARD_OK}})),
        )
    };
    let missing_key = http.call(
        "POST",
        &format!("/v1/invoices/{invoice_id}/pay"),
        &key,
        &[],
        Some(json!({"method": {"type": "card", "number": CARD_OK}})),
    );
    assert_eq!(missing_key.status, 400, "{}", missing_key.text);

    let first = pay("k-1");
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.json();
    assert_eq!(first["outcome"]["outcome"], "succeeded", "{first}");
    assert_eq!(first["invoice"]["status"], "paid");
    let again = pay("k-1");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        again.json()["outcome"],
        first["outcome"],
        "the same key returns the first outcome (same reference: no second charge)"
    );
    let second = pay("k-2");
    assert_eq!(second.status, 409, "{}", second.text);
    assert_eq!(second.json()["error"]["code"], "conflict");

    // The operator sees the same invoice, by id or by number, as the CLI does.
    let listed = operator
        .get("/v1/admin/tenants/acme/invoices")
        .expect("operator list");
    assert_eq!(listed["invoices"][0]["status"], "paid");
    let by_number = operator
        .get(&format!(
            "/v1/admin/tenants/acme/invoices/{}",
            number
                .as_str()
                .map_or_else(|| number.to_string(), str::to_owned)
        ))
        .expect("by number");
    assert_eq!(by_number["id"], invoice_id.as_str());
}

#[test]
fn a_tenant_suspended_for_non_payment_gets_402_on_data_but_can_read_invoices() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, operator) = running_server(&dir);
    let http = Http::new(&server);
    let (_, key) = paid_tenant(&operator, "acme", None);
    operator
        .post(
            "/v1/admin/tenants/acme/suspend",
            &json!({"reason": "non_payment"}),
        )
        .expect("suspended");
    let write = http.call(
        "POST",
        "/v1/collections",
        &key,
        &[],
        Some(json!({"name": "orders"})),
    );
    assert_eq!(write.status, 402, "{}", write.text);
    assert_eq!(write.json()["error"]["code"], "payment_required");
    let invoices = http.call("GET", "/v1/invoices", &key, &[], None);
    assert_eq!(invoices.status, 200, "{}", invoices.text);
    let subscription = http.call("GET", "/v1/subscription", &key, &[], None);
    assert_eq!(subscription.status, 200, "{}", subscription.text);
}
