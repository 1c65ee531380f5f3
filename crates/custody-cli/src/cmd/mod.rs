//! One module per top-level command.

pub(crate) mod access;
pub(crate) mod approval;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod bench_audit;
pub(crate) mod bench_http;
pub(crate) mod bench_promotions;
pub(crate) mod bench_state;
pub(crate) mod catalog;
pub(crate) mod demo;
pub(crate) mod digest;
pub(crate) mod dsse;
pub(crate) mod environment;
pub(crate) mod history;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod log;
pub(crate) mod log_recover;
pub(crate) mod log_watch;
pub(crate) mod note;
pub(crate) mod policy;
pub(crate) mod promotion;
pub(crate) mod serve;
pub(crate) mod statement;
pub(crate) mod token;
pub(crate) mod whoami;
