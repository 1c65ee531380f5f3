//! The keyring over HTTP: list it, see what a key's trust touches, rotate a key to a
//! successor (the hand-over signed by both), revoke one (see `custody_app::keyring`). A key
//! is named by its id or a unique prefix of it (the use cases resolve it).
//! Reading takes read access; rotating and revoking take the policy permission, and the
//! use cases check the rest (both signatures, the key's status).

use custody_app::{RevokeKey, RotateKey};

use crate::api::{Answer, Refusals, json};
use crate::extract::{ApiJson, ApiPath, Caller};

#[utoipa::path(get, path = "/api/v1/keys",
    responses((status = 200, description = "every key custody has trusted: purpose, algorithm, name, owner, status, spans, successor, revocation", body = Value), Refusals))]
pub(crate) async fn keys(caller: Caller) -> Answer {
    json(caller.app().keys().await?)
}

#[utoipa::path(get, path = "/api/v1/keys/{key}/impact", params(("key" = String, Path, description = "the key id, or its first 8 or more hex digits when only one key starts with them")),
    responses((status = 200, description = "everything whose trust depends on the key, how each environment's release depends on it (manifest, provenance, approval), and what the gate now denies because of it", body = Value), Refusals))]
pub(crate) async fn impact(caller: Caller, ApiPath(key): ApiPath<String>) -> Answer {
    json(caller.app().key_impact(&key, caller.actor.now).await?)
}

#[utoipa::path(post, path = "/api/v1/keys/rotate", request_body = RotateKey,
    responses((status = 200, description = "rotated: the old key retired, its successor trusted in its place", body = Value), Refusals))]
pub(crate) async fn rotate(caller: Caller, ApiJson(request): ApiJson<RotateKey>) -> Answer {
    json(caller.app().rotate_key(&caller.actor, &request).await?)
}

#[utoipa::path(post, path = "/api/v1/keys/{key}/revoke", params(("key" = String, Path, description = "the key id, or its first 8 or more hex digits when only one key starts with them")), request_body = RevokeKey,
    responses((status = 200, description = "revoked: nothing it signed from the cutoff on counts", body = Value), Refusals))]
pub(crate) async fn revoke(
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(request): ApiJson<RevokeKey>,
) -> Answer {
    json(
        caller
            .app()
            .revoke_key(&caller.actor, &key, &request)
            .await?,
    )
}
