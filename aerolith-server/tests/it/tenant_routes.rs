//! The tenant data routes of the real binary: documents written and read
//! with the owner key, the error statuses of bad requests, isolation between
//! tenants, suspension, and durability across `kill -9`.

use aerolith_server::{AdminClient, ClientError};
use serde_json::{json, Value};

use crate::cli_binary::{read_admin_key, start, wait_healthy};

fn api_error(result: Result<Value, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
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

#[test]
fn tenants_write_and_query_their_own_documents_only_and_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut server = start(&data_dir);
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let admin_key = server.admin_key.clone();
    let operator = AdminClient::new(&server.url, admin_key.clone());
    let (id_a, key_a) = create_tenant(&operator, "tenant-a");
    let (_id_b, key_b) = create_tenant(&operator, "tenant-b");
    let a = AdminClient::new(&server.url, Some(key_a.clone()));
    let b = AdminClient::new(&server.url, Some(key_b));
    let anonymous = AdminClient::new(&server.url, None);

    assert_eq!(
        api_error(anonymous.get("/v1/collections")),
        (401, "unauthenticated".to_owned())
    );
    assert_eq!(
        api_error(
            AdminClient::new(&server.url, Some("ak_bogus".to_owned())).get("/v1/collections")
        ),
        (401, "unauthenticated".to_owned())
    );

    for client in [&a, &b] {
        client
            .post("/v1/collections", &json!({"name": "users"}))
            .expect("collection created");
    }
    assert_eq!(
        api_error(a.post("/v1/collections", &json!({"name": "users"}))),
        (409, "conflict".to_owned())
    );
    assert_eq!(
        api_error(a.post("/v1/collections", &json!({"name": "bad name!"}))),
        (422, "unprocessable".to_owned())
    );

    a.post(
        "/v1/collections/users/docs",
        &json!({"_id": "u1", "name": "ada", "age": 36}),
    )
    .expect("inserted");
    b.post(
        "/v1/collections/users/docs",
        &json!({"_id": "u1", "name": "bob", "age": 50}),
    )
    .expect("the same id in another tenant is a different document");
    let bulk = a
        .post(
            "/v1/collections/users/docs",
            &json!({"documents": [
                {"_id": "u2", "name": "grace", "age": 45},
                {"_id": "u3", "name": "linus", "age": 20}
            ]}),
        )
        .expect("bulk inserted");
    assert_eq!(bulk["ids"], json!(["u2", "u3"]));
    assert_eq!(
        api_error(a.post("/v1/collections/users/docs", &json!({"_id": "u1"}))),
        (409, "conflict".to_owned())
    );

    assert_eq!(
        a.get("/v1/collections/users/docs/u1").expect("read")["name"],
        "ada"
    );
    assert_eq!(
        b.get("/v1/collections/users/docs/u1").expect("read")["name"],
        "bob"
    );
    assert_eq!(
        api_error(b.get("/v1/collections/users/docs/u2")),
        (404, "not_found".to_owned()),
        "tenant b cannot see tenant a's document"
    );
    assert_eq!(
        api_error(a.get("/v1/collections/users/docs/nope")),
        (404, "not_found".to_owned())
    );
    assert_eq!(
        api_error(a.get("/v1/collections/nope/docs/u1")),
        (404, "not_found".to_owned())
    );

    let found = a
        .post(
            "/v1/collections/users/query",
            &json!({"filter": {"age": {"$gte": 30}}}),
        )
        .expect("query");
    let mut names: Vec<_> = found["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ada", "grace"]);
    let counted = b
        .post("/v1/collections/users/query", &json!({"count": true}))
        .expect("count");
    assert_eq!(counted["count"], 1, "tenant b counts only its own");
    assert_eq!(
        api_error(a.post(
            "/v1/collections/users/query",
            &json!({"filter": {"age": {"$bogus": 1}}})
        )),
        (422, "unprocessable".to_owned())
    );
    assert_eq!(
        api_error(b.delete("/v1/collections/users/docs/u2")),
        (404, "not_found".to_owned()),
        "tenant b cannot delete tenant a's document"
    );

    let page = a
        .get("/v1/collections/users/docs?limit=2")
        .expect("first page");
    assert_eq!(page["documents"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["next_after"], "u2");
    let page = a
        .get("/v1/collections/users/docs?after=u2&limit=2")
        .expect("second page");
    assert_eq!(page["documents"][0]["_id"], "u3");
    assert!(page["next_after"].is_null(), "{page}");
    assert_eq!(
        api_error(a.get("/v1/collections/users/docs?limit=0")),
        (422, "unprocessable".to_owned())
    );

    a.post(
        "/v1/collections/users/indexes",
        &json!({"path": "name", "unique": true}),
    )
    .expect("index created");
    assert_eq!(
        api_error(a.post("/v1/collections/users/indexes", &json!({"path": "name"}))),
        (409, "conflict".to_owned())
    );
    assert_eq!(
        api_error(a.post(
            "/v1/collections/users/docs",
            &json!({"_id": "u5", "name": "ada"})
        )),
        (409, "conflict".to_owned()),
        "unique violation"
    );
    let indexes = a.get("/v1/collections/users/indexes").expect("indexes");
    assert_eq!(indexes["indexes"][0]["path"], "name", "{indexes}");
    assert!(
        b.get("/v1/collections/users/indexes").expect("b's indexes")["indexes"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    a.delete("/v1/collections/users/indexes/name")
        .expect("index dropped");

    let stats = a.get("/v1/collections/users/stats").expect("stats");
    assert_eq!(stats["documents"], 3, "{stats}");
    let usage = a.get("/v1/usage").expect("usage");
    assert_eq!(usage["documents"], 3, "{usage}");
    assert_eq!(usage["collections"], 1, "{usage}");
    let usage_b = b.get("/v1/usage").expect("usage");
    assert_eq!(usage_b["documents"], 1, "{usage_b}");

    operator
        .post(&format!("/v1/admin/tenants/{id_a}/suspend"), &json!({}))
        .expect("suspended");
    assert_eq!(
        api_error(a.post("/v1/collections/users/docs", &json!({"_id": "u9"}))),
        (403, "forbidden".to_owned())
    );
    assert_eq!(
        a.get("/v1/collections/users/docs/u1").expect("reads work")["name"],
        "ada"
    );
    operator
        .post(&format!("/v1/admin/tenants/{id_a}/resume"), &json!({}))
        .expect("resumed");
    a.post(
        "/v1/collections/users/docs",
        &json!({"_id": "u4", "age": 1}),
    )
    .expect("writes work again");

    // kill -9 after acknowledged writes: all of them are there after restart.
    drop(server);
    let restarted = start(&data_dir);
    wait_healthy(&restarted.url);
    let a = AdminClient::new(&restarted.url, Some(key_a));
    for id in ["u1", "u2", "u3", "u4"] {
        a.get(&format!("/v1/collections/users/docs/{id}"))
            .unwrap_or_else(|e| panic!("{id} lost after kill -9: {e:?}"));
    }
}

#[test]
fn session_tokens_act_for_the_key_and_the_audit_chain_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(&dir.path().join("data"));
    read_admin_key(&mut server);
    wait_healthy(&server.url);
    let operator = AdminClient::new(&server.url, server.admin_key.clone());
    let (_id, key) = create_tenant(&operator, "tokens-co");
    let owner = AdminClient::new(&server.url, Some(key));

    let issued = owner.post("/v1/tokens", &json!({})).expect("issued");
    let token = issued["token"].as_str().expect("token").to_owned();
    assert_eq!(issued["role"], "owner");
    let session = AdminClient::new(&server.url, Some(token));
    session
        .post("/v1/collections", &json!({"name": "notes"}))
        .expect("the token acts for the key");
    let refreshed = session
        .post("/v1/tokens/refresh", &json!({"lifetime_ms": 60_000}))
        .expect("refreshed");
    assert!(refreshed["token"].is_string());
    assert_eq!(
        api_error(owner.post("/v1/tokens/refresh", &json!({}))),
        (401, "unauthenticated".to_owned()),
        "an API key is not a session token"
    );
    assert_eq!(
        api_error(owner.post("/v1/tokens", &json!({"lifetime_ms": 0}))),
        (422, "unprocessable".to_owned()),
        "a lifetime out of range is invalid input"
    );

    let audit = owner.get("/v1/audit").expect("audit log");
    assert!(audit["entries"].is_array(), "{audit}");
    let verified = owner.get("/v1/audit/verify").expect("verify");
    assert_eq!(verified["verified"], true, "{verified}");
}
