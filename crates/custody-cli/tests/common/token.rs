//! A real SoftHSM2 token in a temporary directory, set up with Debian's `softhsm2-util`, for
//! the tests that give custody a `pkcs11:` URI. Commands get `SOFTHSM2_CONF` on their own
//! environment (never this process's).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{custody, expect_code, run};

pub(crate) const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub(crate) const USER_PIN: &str = "4711";

/// A token directory with its softhsm2.conf; commands get `SOFTHSM2_CONF` on their own
/// environment (never this process's).
pub(crate) struct Token {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) conf: PathBuf,
}

impl Token {
    pub(crate) fn new() -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "this test needs SoftHSM2 ({MODULE} is missing): run scripts/test.sh, which \
             installs Debian's softhsm2"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let token = Token { dir, conf };
        token.util(&[
            "--init-token",
            "--free",
            "--label",
            "custody",
            "--so-pin",
            "0815",
        ]);
        std::fs::write(token.dir.path().join("pin.txt"), format!("{USER_PIN}\n")).unwrap();
        token
    }

    pub(crate) fn util(&self, args: &[&str]) {
        let out = run(Command::new("softhsm2-util")
            .args(args)
            .args(["--pin", USER_PIN])
            .env("SOFTHSM2_CONF", &self.conf));
        expect_code(&out, 0);
    }

    /// Imports a PKCS#8 key file as the key pair `label`.
    pub(crate) fn import(&self, key: &Path, label: &str, id: &str) {
        let key = key.to_str().unwrap();
        self.util(&[
            "--import", key, "--token", "custody", "--label", label, "--id", id,
        ]);
    }

    pub(crate) fn uri(&self, label: &str, pin_file: &str) -> String {
        format!(
            "pkcs11:token=custody;object={label}?module-path={MODULE}&pin-source=file:{}",
            self.dir.path().join(pin_file).display()
        )
    }

    pub(crate) fn custody(&self) -> Command {
        let mut cmd = custody();
        cmd.env("SOFTHSM2_CONF", &self.conf);
        cmd
    }
}
