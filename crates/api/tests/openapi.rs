//! `/v1/openapi.json` matches the routes that exist: every documented operation is routed (it
//! never reaches the fallback), and the routes we expect are all documented.

use nullspace_api::{router, Node, ServerConfig, VolumeBackend};
use serde_json::Value;

const EXPECTED: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/whoami"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("post", "/v1/volumes/{name}/tokens"),
    ("post", "/v1/admin/tenants"),
    ("put", "/v1/admin/tenants/{tenant}/volume-cap"),
    ("get", "/v1/admin/tenants/{tenant}/limits"),
    ("put", "/v1/admin/tenants/{tenant}/limits"),
    ("post", "/v1/volumes"),
    ("get", "/v1/volumes"),
    ("get", "/v1/volumes/{name}"),
    ("delete", "/v1/volumes/{name}"),
    ("post", "/v1/volumes/{name}/rename"),
    ("get", "/v1/volumes/{name}/files/content"),
    ("put", "/v1/volumes/{name}/files/content"),
    ("post", "/v1/volumes/{name}/files/batch"),
    ("post", "/v1/volumes/{name}/files/mkdir"),
    ("post", "/v1/volumes/{name}/files/move"),
    ("post", "/v1/volumes/{name}/files/copy"),
    ("delete", "/v1/volumes/{name}/files"),
    ("get", "/v1/volumes/{name}/files/list"),
    ("get", "/v1/volumes/{name}/files/stat"),
    ("get", "/v1/volumes/{name}/files/exists"),
    ("post", "/v1/volumes/{name}/files/search"),
    ("post", "/v1/volumes/{name}/files/replace"),
    ("post", "/v1/volumes/{name}/files/edit"),
    ("get", "/v1/volumes/{name}/watch"),
    ("options", "/v1/volumes/{name}/uploads"),
    ("post", "/v1/volumes/{name}/uploads"),
    ("get", "/v1/volumes/{name}/uploads"),
    ("head", "/v1/volumes/{name}/uploads/{id}"),
    ("patch", "/v1/volumes/{name}/uploads/{id}"),
    ("delete", "/v1/volumes/{name}/uploads/{id}"),
    ("options", "/v1/volumes/{name}/uploads/{id}"),
    ("get", "/v1/volumes/{name}/files/archive"),
    ("post", "/v1/volumes/{name}/files/url"),
    ("get", "/v1/signed/{tenant}/{name}"),
    ("put", "/v1/signed/{tenant}/{name}"),
    ("post", "/v1/sandboxes"),
    ("get", "/v1/sandboxes"),
    ("get", "/v1/sandboxes/{id}"),
    ("delete", "/v1/sandboxes/{id}"),
    ("post", "/v1/sandboxes/{id}/exec"),
    ("get", "/v1/sandboxes/{id}/files/content"),
    ("put", "/v1/sandboxes/{id}/files/content"),
    ("get", "/v1/sandboxes/{id}/files/list"),
    ("post", "/v1/sandboxes/{id}/attachments"),
    ("delete", "/v1/sandboxes/{id}/attachments"),
    ("get", "/v1/sandboxes/{id}/attachments"),
    ("post", "/v1/sandboxes/{id}/pause"),
    ("post", "/v1/sandboxes/{id}/resume"),
    ("post", "/v1/sandboxes/{id}/hibernate"),
    ("post", "/v1/sandboxes/{id}/fork"),
];

#[tokio::test]
async fn openapi_document_matches_the_router() {
    let tmp = tempfile::tempdir().unwrap();
    let key = "openapi-test-key-0123456789";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        listen: addr,
        data_dir: tmp.path().join("data"),
        database_url: None,
        bootstrap_key: Some(key.into()),
        server_id: Some("openapi-test".into()),
        volume_backend: Some(VolumeBackend::Directory),
        sandbox_limits: Default::default(),
        sandbox_runtime: Default::default(),
        connections: Default::default(),
    };
    let node = Node::start(&config, addr).await.unwrap();
    let app = router(node.clone());
    let base = format!("http://{addr}");
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    let mut expected: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    documented.sort();
    assert_eq!(
        documented, expected,
        "documented operations differ from the expected API"
    );

    for (method, path) in &documented {
        let url = format!(
            "{base}{}",
            path.replace("{name}", "no-such-volume")
                .replace("{tenant}", "default")
        );
        let req = http
            .request(method.to_uppercase().parse().unwrap(), &url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body("{}");
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert!(
            !body.contains("no such route"),
            "{method} {path} is documented but not routed: {body}"
        );
    }

    // And an undocumented path is a JSON not_found from the fallback.
    let resp = http.get(format!("{base}/v1/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    node.stop();
}
