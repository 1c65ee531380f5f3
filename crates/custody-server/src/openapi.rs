//! The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json`. Written by hand
//! beside the router (no macro generates it); `tests` in custody-cli check that every
//! route the router serves is in it and every path in it is served.

use serde_json::{Value, json};

fn error() -> Value {
    json!({"description": "an error, with what to do next",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn any_object() -> Value {
    json!({"type": "object"})
}

fn query(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

fn idempotency() -> Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
           "description": "A retry with the same key returns the first result; the same key with another request is 409.",
           "schema": {"type": "string", "maxLength": 256}})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn guarded(op: Value, roles: &str) -> Value {
    let mut op = op;
    op["security"] = json!([{"token": []}]);
    op["description"] = json!(format!("Roles: {roles} (or admin)."));
    op["responses"]["401"] = json!({"description": "no valid token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    op["responses"]["403"] = error();
    op
}

/// The document.
pub fn document() -> Value {
    let mut doc = routes();
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), identity_routes()) {
        paths.extend(more);
    }
    doc
}

/// Tokens, the access review and replays (apart only because one `json!` cannot hold
/// every route).
fn identity_routes() -> Value {
    json!({
            "/api/v1/decisions/{id}/replay": {"get": guarded(json!({"summary": "Evaluate a decision again from its recorded facts and policy version",
                "parameters": [path_param("id", "the decision id")],
                "responses": {"200": ok("the recorded and the replayed decision, and whether they are the same", any_object()), "404": error()}}), "auditor, viewer, security, approver, signer, deployer")},
            "/api/v1/access-review": {"get": guarded(json!({"summary": "Who holds which role, when each last used it, and which went unused",
                "parameters": [query("unused_days", "a role unused this many days is reported (default 90)", json!({"type": "integer", "minimum": 1, "maximum": 3650}), false)],
                "responses": {"200": ok("role holdings", json!({"type": "array"})), "400": error()}}), "auditor")},
            "/api/v1/tokens": {
                "post": guarded(json!({"summary": "Create an API token (its text is in this answer only)",
                    "parameters": [idempotency()],
                    "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["principal"],
                        "properties": {"principal": {"type": "string"}, "expires": {"type": "string", "description": "90s, 30m, 24h, 90d (default 90d)"},
                                       "description": {"type": "string"}}})),
                    "responses": {"201": ok("the token and its record", any_object()), "200": ok("a retry: the first token's record, without its text", any_object()), "400": error()}}), "none"),
                "get": guarded(json!({"summary": "Every token's record (never a secret)",
                    "responses": {"200": ok("token records", json!({"type": "array"}))}}), "auditor"),
            },
            "/api/v1/tokens/{id}/revoke": {"post": guarded(json!({"summary": "Revoke a token; it stops working at once",
                "parameters": [path_param("id", "the token id (tok…)")],
                "responses": {"200": ok("the token's record", any_object()), "404": error()}}), "none")},
    })
}

fn routes() -> Value {
    let u64s = json!({"type": "integer", "minimum": 0});
    let review = body(
        json!({"type": "object", "additionalProperties": false, "required": ["rationale", "risk"],
        "properties": {"rationale": {"type": "string"}, "risk": {"enum": ["low", "medium", "high"]}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "custody", "version": env!("CARGO_PKG_VERSION"),
                 "description": "A chain of custody from source commit to running release."},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer", "description": "An API token: cst_…"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}
        },
        "paths": {
            "/healthz": {"get": {"summary": "The process answers", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "The store answers", "responses": {"200": {"description": "ready"}, "503": error()}}},
            "/metrics": {"get": guarded(json!({"summary": "Delivery and service metrics, counted from the ledger (OpenMetrics text); scrape with a bearer token",
                "responses": {"200": {"description": "the exposition", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}, "503": error()}}), "auditor, viewer, security, approver, signer, deployer")},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("the OpenAPI document", any_object())}}},
            "/api/v1/log/checkpoint": {"get": {"summary": "The latest signed checkpoint (C2SP signed note)",
                "responses": {"200": {"description": "the note", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/api/v1/log/entries": {"get": {"summary": "Leaves [start, end), one RFC 8785 JSON event per line (at most 1000)",
                "parameters": [query("start", "first index", u64s.clone(), true), query("end", "one past the last", u64s.clone(), true)],
                "responses": {"200": {"description": "the leaves", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}, "400": error()}}},
            "/api/v1/log/proof/inclusion": {"get": {"summary": "RFC 9162 inclusion proof",
                "parameters": [query("index", "the entry", u64s.clone(), true), query("size", "the tree size", u64s.clone(), true)],
                "responses": {"200": ok("hex hashes and the root", any_object()), "400": error()}}},
            "/api/v1/log/proof/consistency": {"get": {"summary": "RFC 9162 consistency proof",
                "parameters": [query("from", "older size", u64s.clone(), true), query("to", "newer size", u64s.clone(), true)],
                "responses": {"200": ok("hex hashes and both roots", any_object()), "400": error()}}},
            "/api/v1/verify": {"get": guarded(json!({"summary": "The deploy gate: may this digest run in this environment?",
                "parameters": [query("env", "the environment", json!({"type": "string"}), true), query("digest", "sha256:HEX", json!({"type": "string"}), true)],
                "responses": {"200": ok("allowed, with the evidence", any_object()), "400": error()}}), "deployer, auditor, viewer, security")},
            "/api/v1/history": {"get": guarded(json!({"summary": "Ledger events, sliced",
                "parameters": [query("artifact", "sha256:HEX", json!({"type": "string"}), false), query("build", "invocation id", json!({"type": "string"}), false),
                               query("principal", "who", json!({"type": "string"}), false), query("env", "environment", json!({"type": "string"}), false),
                               query("since", "RFC 3339", json!({"type": "string"}), false), query("until", "RFC 3339", json!({"type": "string"}), false),
                               query("before", "only ledger indices below this (the next page back)", u64s.clone(), false),
                               query("limit", "newest N (≤ 1000)", u64s.clone(), false)],
                "responses": {"200": ok("events with their ledger index", json!({"type": "array"})), "400": error()}}), "auditor, viewer, security, approver, signer, deployer")},
            "/api/v1/decisions/{id}": {"get": guarded(json!({"summary": "A recorded decision with its facts and VSA",
                "parameters": [path_param("id", "the decision id")],
                "responses": {"200": ok("the decision", any_object()), "404": error()}}), "auditor, viewer, security, approver, signer, deployer")},
            "/api/v1/access-log": {"get": guarded(json!({"summary": "The access log",
                "parameters": [query("after", "entries after this id", u64s.clone(), false), query("limit", "at most (≤ 1000)", u64s, false)],
                "responses": {"200": ok("entries", json!({"type": "array"}))}}), "auditor")},
            "/api/v1/artifacts": {"post": guarded(json!({"summary": "Register an artifact with its SLSA provenance (signed by the builder before it is sent)",
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["name", "digest"],
                    "properties": {"name": {"type": "string"}, "digest": {"type": "string"}, "size": {"type": "integer"},
                                   "build": {"type": "object"}, "provenance": {"type": "object", "description": "a DSSE envelope"}}})),
                "responses": {"200": ok("the artifact and its provenance facts", any_object()), "400": error()}}), "builder")},
            "/api/v1/artifacts/{digest}/evidence": {"post": guarded(json!({"summary": "Attach evidence to an artifact (its digest; the file stays with the caller)",
                "parameters": [path_param("digest", "the artifact's sha256:HEX"), idempotency()],
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["kind", "format", "digest"],
                    "properties": {"kind": {"type": "string"}, "format": {"type": "string"}, "digest": {"type": "string"}}})),
                "responses": {"200": ok("the ledger index", any_object()), "400": error()}}), "builder, security")},
            "/api/v1/releases": {"post": guarded(json!({"summary": "Record a release from its manifest, signed by the release signer before it is sent",
                "parameters": [idempotency()],
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["manifest"],
                    "properties": {"manifest": {"type": "object", "description": "a DSSE envelope of a custody release manifest"}}})),
                "responses": {"200": ok("the release", any_object()), "400": error()}}), "signer")},
            "/api/v1/promotions": {"post": guarded(json!({"summary": "Request a promotion; its gates are evaluated at once",
                "parameters": [idempotency()],
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["release", "environment"],
                    "properties": {"release": {"type": "string", "description": "NAME@VERSION"}, "environment": {"type": "string"},
                        "break_glass": {"type": "string", "description": "Break glass, for this reason: overrides the previous-environment, evidence, freeze and approvals gates if the policy lets the caller; recorded, alerted, and due for an after-the-fact review"}}})),
                "responses": {"200": ok("the promotion, its decision and VSA", any_object()), "400": error(), "409": error()}}), "signer, deployer")},
            "/api/v1/promotions/{id}": {"get": guarded(json!({"summary": "A promotion with its reviews (a confidential rationale only for auditors and the people involved)",
                "parameters": [path_param("id", "the promotion")],
                "responses": {"200": ok("the promotion and its reviews", any_object()), "404": error()}}), "auditor, viewer, security, approver, signer, deployer")},
            "/api/v1/promotions/{id}/approve": {"post": guarded(json!({"summary": "Approve a pending promotion",
                "parameters": [path_param("id", "the promotion"), idempotency()], "requestBody": review.clone(),
                "responses": {"200": ok("the promotion and the new decision", any_object()), "400": error(), "409": error()}}), "approver")},
            "/api/v1/promotions/{id}/reject": {"post": guarded(json!({"summary": "Reject a pending promotion",
                "parameters": [path_param("id", "the promotion"), idempotency()], "requestBody": review,
                "responses": {"200": ok("the promotion and the new decision", any_object()), "400": error(), "409": error()}}), "approver")},
            "/api/v1/deploys": {"post": guarded(json!({"summary": "Report what runs in an environment; a failure rolls back",
                "parameters": [idempotency()],
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["environment", "digests", "status"],
                    "properties": {"environment": {"type": "string"}, "digests": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                                   "status": {"enum": ["succeeded", "failed"]}}})),
                "responses": {"200": ok("drift and rollback", any_object()), "400": error(), "413": {"description": "body too large"}}}), "deployer")},
            "/api/v1/environments/{env}/rollback": {"post": guarded(json!({"summary": "Roll back to the previous certified release that still passes",
                "parameters": [path_param("env", "the environment"), idempotency()],
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {"reason": {"type": "string"}}})),
                "responses": {"200": ok("the rollback and its diff", any_object()), "400": error()}}), "deployer")},
            "/api/v1/policy": {"put": guarded(json!({"summary": "Apply a policy bundle (custody.toml and key files)",
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["files"],
                    "properties": {"files": {"type": "object", "additionalProperties": {"type": "string"}}}})),
                "responses": {"200": ok("the policy digest now in force", any_object()), "400": error()}}), "security")},
        }
    })
}
