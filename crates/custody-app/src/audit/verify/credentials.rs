//! The credentials entries were made with. An event made with an API token says, in its
//! `auth`, who created the token and whether it is its holder's own (an approval counts
//! only then). The server reads that from its token record, which lives in the database
//! beside the ledger, not in it: an operator who edits the record can have an admin-made
//! token pass as the person's own. So the claim is checked against the ledger's own
//! `token.created` entry: the same principal, the same creator (its actor), and the same
//! `personal` flag. An export carries every `token.created` entry, so that a scoped bundle
//! can be checked too.

use std::collections::HashMap;

use custody_model::Authentication;

use super::{Check, Failure, fail};
use crate::events::{Event, TokenCreated};

/// What the ledger says of one token.
struct Issued {
    index: u64,
    principal: String,
    created_by: String,
    personal: Option<bool>,
}

/// The tokens the ledger made, by id (entries in ledger order).
#[derive(Default)]
pub(crate) struct Tokens(HashMap<String, Issued>);

impl Tokens {
    /// A `token.created` entry, made by `actor`.
    pub(crate) fn created(&mut self, index: u64, actor: &str, t: &TokenCreated) {
        self.0.entry(t.token.clone()).or_insert(Issued {
            index,
            principal: t.principal.clone(),
            created_by: actor.to_owned(),
            personal: t.personal,
        });
    }

    /// Whether `event` (entry `index`) was made with a token as the ledger made it.
    pub(crate) fn check(&self, index: u64, event: &Event) -> Option<Failure> {
        let Some(Authentication::Token {
            token,
            created_by,
            personal,
        }) = &event.auth
        else {
            return None;
        };
        let failed = |why: String| Some(fail(Some(index), Check::Credential, why));
        let Some(issued) = self.0.get(token) else {
            return failed(format!(
                "it was made with token {token}, which no token.created entry before it in the bundle made"
            ));
        };
        let from = issued.index;
        if issued.principal != event.actor {
            return failed(format!(
                "it is {}'s, made with token {token}, which entry {from} made for {}",
                event.actor, issued.principal
            ));
        }
        if created_by
            .as_deref()
            .is_some_and(|by| by != issued.created_by)
        {
            return failed(format!(
                "it says token {token} was created by {}, but entry {from} shows {} created it: the token's record was altered",
                created_by.as_deref().unwrap_or_default(),
                issued.created_by
            ));
        }
        if issued.personal.is_some_and(|p| p != *personal) {
            return failed(format!(
                "it says token {token} is {}, but entry {from} made it {}: the token's record was altered",
                if *personal {
                    "its holder's own"
                } else {
                    "not its holder's own"
                },
                if *personal {
                    "not its holder's own"
                } else {
                    "its holder's own"
                },
            ));
        }
        None
    }
}
