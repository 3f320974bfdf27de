//! Which log events the tray and the CLI keep: on stderr, what `EMA_LOG` asks for; in the
//! diagnostics ring ([`crate::diagnostics::log_ring`]), our own crates' debug lines.
//!
//! Why `Targets` and not `EnvFilter`: `EMA_LOG` only ever names targets and levels
//! (`EMA_LOG=debug`, `EMA_LOG=warn,ema_core=trace`), and `EnvFilter` compiles its directive
//! grammar with a regex engine at every start, code and heap the idle tray would carry for nothing
//! (docs/tray.md, footprint).

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

/// The variable that sets the stderr log: `level` or `target=level,...` (as `RUST_LOG`, without
/// span or field filters).
pub const ENV_VAR: &str = "EMA_LOG";

/// The stderr filter: [`ENV_VAR`] when set and well formed, else warnings and errors only.
pub fn from_env() -> Targets {
    parse(std::env::var(ENV_VAR).ok().as_deref())
}

/// [`from_env`]'s rule on a given value; a malformed value falls back to warnings and says so.
pub fn parse(value: Option<&str>) -> Targets {
    let warn = || Targets::new().with_default(LevelFilter::WARN);
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => warn(),
        Some(v) => v.parse().unwrap_or_else(|e| {
            eprintln!("{ENV_VAR}={v:?} is not a log filter ({e}); logging warnings only. Example: {ENV_VAR}=debug");
            warn()
        }),
    }
}

/// The diagnostics ring's filter: warnings from everyone, debug from ema-core and `app_crate`
/// (the tray's or the CLI's own crate).
pub fn ring(app_crate: &str) -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("ema_core", LevelFilter::DEBUG)
        .with_target(app_crate, LevelFilter::DEBUG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn unset_or_blank_means_warnings_only() {
        for v in [None, Some(""), Some("  ")] {
            let t = parse(v);
            assert!(t.would_enable("ema_core::engine", &Level::WARN));
            assert!(!t.would_enable("ema_core::engine", &Level::INFO));
        }
    }

    #[test]
    fn a_level_and_per_target_levels_are_understood() {
        let t = parse(Some("debug"));
        assert!(t.would_enable("hyper::proto", &Level::DEBUG));
        assert!(!t.would_enable("hyper::proto", &Level::TRACE));
        let t = parse(Some("warn,ema_core=trace"));
        assert!(t.would_enable("ema_core::grant", &Level::TRACE));
        assert!(!t.would_enable("reqwest::connect", &Level::INFO));
    }

    #[test]
    fn a_malformed_value_falls_back_to_warnings() {
        let t = parse(Some("ema_core=loud"));
        assert!(t.would_enable("ema_core", &Level::WARN));
        assert!(!t.would_enable("ema_core", &Level::INFO));
    }

    #[test]
    fn the_ring_keeps_our_debug_lines_and_only_warnings_from_others() {
        let t = ring("ema_tray_lib");
        assert!(t.would_enable("ema_core::engine", &Level::DEBUG));
        assert!(t.would_enable("ema_tray_lib::personal", &Level::DEBUG));
        assert!(!t.would_enable("ema_tray_lib::personal", &Level::TRACE));
        assert!(!t.would_enable("hyper::proto", &Level::INFO));
        assert!(t.would_enable("hyper::proto", &Level::WARN));
    }
}
