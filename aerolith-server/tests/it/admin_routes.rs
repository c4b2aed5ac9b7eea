//! The operator routes of the real binary: tenant lifecycle and tenant API
//! keys under `/v1/admin`, with the admin key required on every route.

use aerolith_server::{AdminClient, ClientError};
use serde_json::json;

use crate::cli_binary::{read_admin_key, start, terminate, wait_healthy};

fn api_error(result: Result<serde_json::Value, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn operator_creates_lists_suspends_resumes_and_deletes_tenants_and_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(&dir.path().join("data"));
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let operator = AdminClient::new(&server.url, server.admin_key.clone());
    let anonymous = AdminClient::new(&server.url, None);

    assert_eq!(
        api_error(anonymous.get("/v1/admin/tenants")),
        (401, "unauthenticated".to_owned())
    );

    let created = operator
        .post("/v1/admin/tenants", &json!({"name": "acme-corp"}))
        .expect("created");
    let id = created["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            created["id"]
                .as_u64()
                .map(|n| n.to_string())
                .expect("tenant id")
        });
    assert_eq!(created["slug"], "acme-corp");
    let owner_key = created["owner_key"]["key"]
        .as_str()
        .expect("owner key text");
    assert!(!owner_key.is_empty());
    assert!(created["owner_key"]["record"].get("hash").is_none());

    assert_eq!(
        api_error(operator.post("/v1/admin/tenants", &json!({"name": "acme-corp"}))),
        (409, "conflict".to_owned()),
        "slug taken"
    );
    assert_eq!(
        api_error(operator.post("/v1/admin/tenants", &json!({"name": "Bad Slug!"}))),
        (422, "unprocessable".to_owned())
    );
    assert_eq!(
        api_error(operator.post(
            "/v1/admin/tenants",
            &json!({"name": "other-co", "plan": "gold-plated"})
        )),
        (422, "unprocessable".to_owned()),
        "unknown plan"
    );

    let listed = operator.get("/v1/admin/tenants").expect("listed");
    assert_eq!(listed["tenants"].as_array().map(Vec::len), Some(1));
    let got = operator
        .get(&format!("/v1/admin/tenants/{id}"))
        .expect("got");
    assert_eq!(got["slug"], "acme-corp");
    assert_eq!(
        api_error(operator.get("/v1/admin/tenants/999999")),
        (404, "not_found".to_owned())
    );

    let key = operator
        .post(
            &format!("/v1/admin/tenants/{id}/keys"),
            &json!({"role": "reader", "name": "ci"}),
        )
        .expect("key created");
    let key_id = key["record"]["key_id"].as_str().expect("key id").to_owned();
    let keys = operator
        .get(&format!("/v1/admin/tenants/{id}/keys"))
        .expect("keys");
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(2), "{keys}");
    let revoked = operator
        .delete(&format!("/v1/admin/tenants/{id}/keys/{key_id}"))
        .expect("revoked");
    assert!(revoked["revoked_unix_ms"].is_i64(), "{revoked}");

    let suspended = operator
        .post(&format!("/v1/admin/tenants/{id}/suspend"), &json!({}))
        .expect("suspended");
    assert_eq!(suspended["status"]["status"], "suspended", "{suspended}");
    let resumed = operator
        .post(&format!("/v1/admin/tenants/{id}/resume"), &json!({}))
        .expect("resumed");
    assert_eq!(resumed["status"]["status"], "active", "{resumed}");

    operator
        .delete(&format!("/v1/admin/tenants/{id}"))
        .expect("deleted");
    let gone = operator
        .get(&format!("/v1/admin/tenants/{id}"))
        .expect("a deleted tenant is still shown to the operator");
    assert!(gone["deleted_unix_ms"].is_i64(), "{gone}");
    let listed = operator.get("/v1/admin/tenants").expect("listed");
    assert_eq!(
        listed["tenants"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert_eq!(
        api_error(operator.delete(&format!("/v1/admin/tenants/{id}"))),
        (404, "not_found".to_owned()),
        "deleting twice"
    );

    let (status, _) = terminate(server);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn serve_refuses_existing_data_when_the_master_key_was_just_generated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut server = start(&data_dir);
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let operator = AdminClient::new(&server.url, server.admin_key.clone());
    operator
        .post("/v1/admin/tenants", &json!({"name": "keeps-data"}))
        .expect("created");
    let (status, _) = terminate(server);
    assert!(status.success());

    std::fs::remove_file(data_dir.join("master.key")).expect("master key removed");
    let refused = crate::cli_binary::command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
    ])
    .output()
    .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("master key was just generated"), "{stderr}");
}

#[test]
fn openapi_document_lists_the_admin_and_tenant_routes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(&dir.path().join("data"));
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let document = AdminClient::new(&server.url, None)
        .get("/openapi.json")
        .expect("document");
    for path in [
        "/v1/admin/tenants",
        "/v1/admin/tenants/{id}/keys/{key_id}",
        "/v1/collections/{name}/docs/{id}",
        "/v1/collections/{name}/query",
        "/v1/collections/{name}/indexes/{path}",
        "/v1/usage",
        "/v1/usage/history",
        "/v1/admin/tenants/{id}/usage",
        "/v1/admin/tenants/{id}/export",
        "/v1/admin/tenants/{id}/import",
        "/v1/tokens/refresh",
        "/v1/audit/verify",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
}
