//! `[server]` and `[access_log]` in config.toml: how `custody serve` treats connections,
//! requests, dashboard sessions and its access log. Each value has a default fit for a
//! service on the open network; [`ServerConfig::compile`] checks them all into
//! [`Settings`], the only form the server reads.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server]` in config.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How long a connection may take to send a request's headers (from when it opens, or
    /// from when its previous request was answered) before it is closed ("10s").
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: String,
    /// How long a keep-alive connection may sit idle between requests ("60s").
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    /// How long a client may take to send a request's body once its headers are in ("30s";
    /// 408 after, and nothing is changed). The server's own work on a request is not timed:
    /// a change, once its body is in, is made and answered.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    /// Open connections at most. When full, the connection idle longest is closed to make
    /// room; the server also stays below its open-file limit.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address at most (0: no limit, e.g. behind a proxy
    /// that is every client's address). At the cap, the client's connection idle longest is
    /// closed to make room; only a client whose every connection is busy is refused.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Requests without credentials (public routes, the sign-in page) in flight from one
    /// client address at most; beyond it they are answered 429 (0: no limit).
    #[serde(default = "default_anonymous_in_flight")]
    pub anonymous_in_flight_per_client: usize,
    /// How long a dashboard session lasts after sign-in ("12h").
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: String,
}

/// `[access_log]` in config.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// How long entries are kept ("90d"); older ones are removed hourly.
    #[serde(default = "default_retention")]
    pub retention: String,
    /// Anonymous requests (no valid credential) recorded in full per client address and
    /// minute…
    #[serde(default = "default_anonymous_per_minute")]
    pub anonymous_per_minute: u32,
    /// …and beyond that, one in this many (1: every one).
    #[serde(default = "default_anonymous_sample")]
    pub anonymous_sample: u32,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_header_read_timeout() -> String {
    "10s".into()
}
fn default_idle_timeout() -> String {
    "60s".into()
}
fn default_request_timeout() -> String {
    "30s".into()
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_client() -> usize {
    256
}
fn default_anonymous_in_flight() -> usize {
    16
}
fn default_session_lifetime() -> String {
    "12h".into()
}
fn default_retention() -> String {
    "90d".into()
}
fn default_anonymous_per_minute() -> u32 {
    60
}
fn default_anonymous_sample() -> u32 {
    100
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            anonymous_in_flight_per_client: default_anonymous_in_flight(),
            session_lifetime: default_session_lifetime(),
        }
    }
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            retention: default_retention(),
            anonymous_per_minute: default_anonymous_per_minute(),
            anonymous_sample: default_anonymous_sample(),
        }
    }
}

/// `[server]` and `[access_log]`, checked. Made only by [`ServerConfig::compile`] (or
/// [`Settings::default`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How connections are kept.
    pub connections: ConnectionLimits,
    /// How long a client may take to send a request's body once its headers are in.
    pub request_timeout: Duration,
    /// Anonymous requests in flight per client address (0: no limit).
    pub anonymous_in_flight_per_client: usize,
    /// A dashboard session's life, in seconds.
    pub session_lifetime: i64,
    /// The access log's retention and sampling.
    pub access_log: AccessLogSettings,
}

/// How connections are kept (see [`ServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Until a request's headers are in.
    pub header_read_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections per client address at most (0: no limit).
    pub max_connections_per_client: usize,
}

/// The access log's retention and sampling (see [`AccessLogConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct AccessLogSettings {
    /// Entries older than this many seconds are removed.
    pub retention: i64,
    /// Anonymous requests recorded in full per client and minute.
    pub anonymous_per_minute: u32,
    /// Beyond that, one in this many.
    pub anonymous_sample: u32,
}

impl Default for Settings {
    fn default() -> Self {
        // The defaults are valid by construction; compile cannot refuse them.
        ServerConfig::default()
            .compile(&AccessLogConfig::default())
            .unwrap_or(Settings {
                connections: ConnectionLimits {
                    header_read_timeout: Duration::from_secs(10),
                    idle_timeout: Duration::from_secs(60),
                    max_connections: 1024,
                    max_connections_per_client: 256,
                },
                request_timeout: Duration::from_secs(30),
                anonymous_in_flight_per_client: 16,
                session_lifetime: 12 * 3600,
                access_log: AccessLogSettings {
                    retention: 90 * 86_400,
                    anonymous_per_minute: 60,
                    anonymous_sample: 100,
                },
            })
    }
}

/// A duration in config.toml ("90s", "30m", "24h", "90d"), in seconds, positive.
fn seconds(section: &str, name: &str, text: &str) -> Result<u64, String> {
    let span = custody_policy::Span::parse(text).map_err(|e| format!("[{section}] {name}: {e}"))?;
    if span.seconds() == 0 {
        return Err(format!("[{section}] {name}: must be longer than nothing"));
    }
    Ok(span.seconds())
}

impl ServerConfig {
    /// Checks `[server]` and `[access_log]`, naming the key of any mistake.
    pub fn compile(&self, access_log: &AccessLogConfig) -> Result<Settings, String> {
        let duration =
            |name: &str, text: &str| seconds("server", name, text).map(Duration::from_secs);
        if self.max_connections == 0 {
            return Err("[server] max_connections: must be at least 1".into());
        }
        if access_log.anonymous_sample == 0 {
            return Err(
                "[access_log] anonymous_sample: must be at least 1 (1: every request)".into(),
            );
        }
        let whole = |section: &str, name: &str, text: &str| {
            seconds(section, name, text)
                .and_then(|s| i64::try_from(s).map_err(|_| format!("[{section}] {name}: too long")))
        };
        Ok(Settings {
            connections: ConnectionLimits {
                header_read_timeout: duration("header_read_timeout", &self.header_read_timeout)?,
                idle_timeout: duration("idle_timeout", &self.idle_timeout)?,
                max_connections: self.max_connections,
                max_connections_per_client: self.max_connections_per_client,
            },
            request_timeout: duration("request_timeout", &self.request_timeout)?,
            anonymous_in_flight_per_client: self.anonymous_in_flight_per_client,
            session_lifetime: whole("server", "session_lifetime", &self.session_lifetime)?,
            access_log: AccessLogSettings {
                retention: whole("access_log", "retention", &access_log.retention)?,
                anonymous_per_minute: access_log.anonymous_per_minute,
                anonymous_sample: access_log.anonymous_sample,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_compile_and_mistakes_name_their_key() {
        let settings = ServerConfig::default()
            .compile(&AccessLogConfig::default())
            .unwrap();
        assert_eq!(
            settings.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(settings.access_log.retention, 90 * 86_400);
        let bad = ServerConfig {
            idle_timeout: "soon".into(),
            ..ServerConfig::default()
        };
        assert!(
            bad.compile(&AccessLogConfig::default())
                .unwrap_err()
                .contains("idle_timeout")
        );
        let zero = AccessLogConfig {
            anonymous_sample: 0,
            ..AccessLogConfig::default()
        };
        assert!(
            ServerConfig::default()
                .compile(&zero)
                .unwrap_err()
                .contains("anonymous_sample")
        );
    }
}
