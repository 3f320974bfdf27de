//! What the CLI's end-to-end tests share: the `ema` command in the environment a test needs,
//! and the text of its output.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use ema_e2e::{Org, ema_command};

/// Both streams of a finished `ema`, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    ema_e2e::output_text(o)
}

/// The `ema` binary under test, built up for one run.
pub struct Ema(Command);

impl Ema {
    /// For `user` of the sandbox org: its policy (`EMA_CONFIG`), the scripted browser signing in
    /// as `user`, trace logs.
    pub fn on(org: &Org, user: &str) -> Self {
        Ema(ema_command(env!("CARGO_BIN_EXE_ema"), org, user))
    }

    /// With nothing set but what the test adds.
    pub fn bare() -> Self {
        Ema(Command::new(env!("CARGO_BIN_EXE_ema")))
    }

    /// `HOME`, the working directory and the XDG config and data directories in `home` (made if
    /// missing): nothing of the real user's is read or written.
    pub fn home(mut self, home: &Path) -> Self {
        std::fs::create_dir_all(home).expect("the test home can be made");
        self.0
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .current_dir(home);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.0.env(key, value);
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.0.env_remove(key);
        self
    }

    /// The command, for a test that drives the process itself.
    pub fn command(self) -> Command {
        self.0
    }

    /// Runs `ema ARGS` to the end.
    pub fn run(mut self, args: &[&str]) -> Output {
        self.0.args(args).output().expect("the ema binary runs")
    }
}

/// Every string value under a key named like a secret, anywhere in `v`.
pub fn secrets_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if matches!(k.as_str(), "client_secret" | "access_token" | "refresh_token" | "id_token" | "private_key")
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_string());
                }
                secrets_in(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| secrets_in(v, out)),
        _ => {}
    }
}
