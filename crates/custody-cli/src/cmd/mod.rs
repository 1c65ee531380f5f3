//! One module per top-level command.

pub(crate) mod bench;
pub(crate) mod digest;
pub(crate) mod dsse;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod log;
pub(crate) mod note;
pub(crate) mod statement;
