//! The OpenAPI document: derived from the handlers, valid by the reference validator, and
//! served at its route. (That every route is in it and walked is routes.rs.)

use crate::support::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_and_valid() {
    let server = TestServer::start(Backend::Sqlite).await;
    let served = server
        .call("GET", "/api/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body,
        serde_json::to_value(custody_server::openapi()).unwrap()
    );
    // Every guarded operation says who may call it.
    for item in served.body["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if op.get("security").is_some() {
                assert!(
                    op[custody_server::PERMISSION_EXTENSION]["roles"].is_array(),
                    "{op}"
                );
            }
        }
    }
    let python = std::env::var("CUSTODY_TEST_PYTHON").expect(
        "CUSTODY_TEST_PYTHON is not set: the OpenAPI check needs openapi-spec-validator. \
         Run scripts/test.sh (it makes .venv), or export CUSTODY_TEST_PYTHON=.venv/bin/python",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, served.body.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../custody-cli/tests/interop/openapi_validate.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
