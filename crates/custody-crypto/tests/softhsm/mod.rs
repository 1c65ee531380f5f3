//! A real SoftHSM2 token in a temporary directory, for the PKCS#11 tests and the signing bench.
//!
//! SoftHSM2 reads its configuration file from the `SOFTHSM2_CONF` environment variable when the
//! module is initialised, and a module is initialised once per process. Setting the variable
//! from inside a test would be `unsafe` (edition 2024) and would race with other threads, so
//! each test instead runs in a child process: the parent makes a token directory and a
//! `softhsm2.conf`, and re-executes the current binary with `SOFTHSM2_CONF` set on the child's
//! command line ([`rerun_in_child`]). The child initialises a token there ([`init_token`]).

#![allow(
    dead_code,
    reason = "shared by the tests and the bench, which use different parts"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use custody_crypto::pkcs11::{PinSource, Pkcs11Config};

/// Set in a child process: the case it runs.
pub(crate) const CHILD_CASE: &str = "CUSTODY_TEST_PKCS11_CASE";
/// Set in a child process: its token directory (where the PIN file lives too).
pub(crate) const CHILD_DIR: &str = "CUSTODY_TEST_PKCS11_DIR";
/// Set in a child process: the user PIN, for `pin-source=env:` cases.
pub(crate) const PIN_VAR: &str = "CUSTODY_TEST_PKCS11_PIN";

pub(crate) const USER_PIN: &str = "4711-user";
const SO_PIN: &str = "0815-so";

/// Debian's softhsm2 module, or `CUSTODY_TEST_SOFTHSM2_MODULE`. Missing is a failure with
/// the remedy, never a skip.
pub(crate) fn module_path() -> PathBuf {
    let path = std::env::var_os("CUSTODY_TEST_SOFTHSM2_MODULE").map_or_else(
        || PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the PKCS#11 tests need SoftHSM2 and {} does not exist: run scripts/test.sh (it \
         installs Debian's softhsm2), or set CUSTODY_TEST_SOFTHSM2_MODULE to the module",
        path.display()
    );
    path
}

/// Runs `case` in a child process of this same binary, with a fresh token directory and
/// `SOFTHSM2_CONF` pointing at it; returns what it printed.
pub(crate) fn rerun_in_child(case: &str) -> Output {
    let dir = tempfile::tempdir().expect("temporary token directory");
    let output = child_command(case, dir.path())
        .output()
        .expect("running the child process");
    drop(dir);
    output
}

/// Like [`rerun_in_child`], passing this process's arguments on and its output through.
pub(crate) fn rerun_in_child_inheriting(case: &str) -> ExitStatus {
    let dir = tempfile::tempdir().expect("temporary token directory");
    let status = child_command(case, dir.path())
        .args(std::env::args_os().skip(1))
        .status()
        .expect("running the child process");
    drop(dir);
    status
}

fn child_command(case: &str, dir: &Path) -> Command {
    let module = module_path();
    let conf = write_conf(dir);
    let mut command = Command::new(std::env::current_exe().expect("this binary's path"));
    command
        .env("SOFTHSM2_CONF", conf)
        .env("CUSTODY_TEST_SOFTHSM2_MODULE", module)
        .env(CHILD_CASE, case)
        .env(CHILD_DIR, dir)
        .env(PIN_VAR, USER_PIN);
    command
}

/// Writes a softhsm2.conf keeping tokens under `dir/tokens`; returns its path.
pub(crate) fn write_conf(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    conf
}

/// The child's token directory.
pub(crate) fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(CHILD_DIR).expect("running as a PKCS#11 test child"))
}

/// The module's context in this process (initialised once; custody's signer shares it).
pub(crate) fn context() -> Pkcs11 {
    let ctx = Pkcs11::new(module_path()).expect("loading SoftHSM2");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("initialising SoftHSM2: {e}"),
    }
    ctx
}

/// Initialises a token labelled `label` in the child's token directory, with the user PIN
/// in `pin.txt` there; returns a config for a key labelled `key_label` on it.
pub(crate) fn init_token(label: &str, key_label: &str) -> Pkcs11Config {
    let ctx = context();
    let free = ctx
        .get_slots_with_token()
        .expect("listing slots")
        .into_iter()
        .find(|s| {
            !ctx.get_token_info(*s)
                .expect("token info")
                .token_initialized()
        })
        .expect("SoftHSM2 always offers one uninitialised token");
    let so_pin = AuthPin::from(SO_PIN.to_owned());
    ctx.init_token(free, &so_pin, label).expect("C_InitToken");
    // SoftHSM2 renumbers slots once a token is initialised: find it again by label.
    let slot = ctx
        .get_slots_with_initialized_token()
        .expect("listing slots")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).expect("token info").label() == label)
        .expect("the token just initialised");
    let session = ctx.open_rw_session(slot).expect("C_OpenSession");
    session
        .login(UserType::So, Some(&so_pin))
        .expect("SO login");
    session
        .init_pin(&AuthPin::from(USER_PIN.to_owned()))
        .expect("C_InitPIN");
    session.logout().expect("SO logout");
    let pin_file = child_dir().join("pin.txt");
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).expect("PIN file");
    Pkcs11Config {
        module_path: module_path(),
        token_label: label.to_owned(),
        key_label: key_label.to_owned(),
        key_id: None,
        pin: PinSource::File(pin_file),
    }
}
