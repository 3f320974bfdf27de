//! The tray app's command line: a few flags, `--help` and `--version`.

/// Command-line options of the tray app.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// `--sandbox`: start the embedded sandbox org and use it.
    pub(crate) sandbox: bool,
    /// `--open`: open the status window at start.
    pub(crate) open_window: bool,
    /// `--config PATH` (or `--config=PATH`): the policy file, as `ema --config`; else `EMA_CONFIG`,
    /// then the managed and user locations.
    pub(crate) config: Option<std::path::PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Invocation {
    Run(Options),
    Help,
    Version,
}

pub(crate) const USAGE: &str = "\
EMA: your company's MCP connectors, signed in through your identity provider, from the tray.

Usage: ema-tray [--open] [--config PATH] [--sandbox]

  --open           open the status window at start
  --config PATH    the policy file (default: EMA_CONFIG, then the managed and user locations)
  --sandbox        run on the embedded sandbox org (a local IdP and connectors; development builds)
  -h, --help       print this help
  -V, --version    print the version

Launching it again while it runs opens its window. The `ema` command has the same engine for the
terminal: `ema status`, `ema login`, `ema doctor`.
";

/// Parses the app's few flags; unknown arguments (a WebDriver's, say) are ignored.
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Invocation {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Invocation::Help,
            "-V" | "--version" => return Invocation::Version,
            "--sandbox" => o.sandbox = true,
            "--open" => o.open_window = true,
            "--config" => o.config = args.next().map(Into::into),
            _ => {
                if let Some(path) = a.strip_prefix("--config=") {
                    o.config = Some(path.into());
                }
            }
        }
    }
    Invocation::Run(o)
}

#[cfg(test)]
mod command_line {
    use super::*;

    fn parse(args: &[&str]) -> Invocation {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn flags_are_read_in_both_config_forms_and_unknown_ones_ignored() {
        let Invocation::Run(o) = parse(&["--open", "--config", "/etc/ema/policy.json", "--webdriver-port=1"]) else {
            panic!("a run")
        };
        assert!(o.open_window && !o.sandbox);
        assert_eq!(o.config.as_deref(), Some(std::path::Path::new("/etc/ema/policy.json")));
        let Invocation::Run(o) = parse(&["--sandbox", "--config=p.json"]) else { panic!("a run") };
        assert!(o.sandbox && !o.open_window);
        assert_eq!(o.config.as_deref(), Some(std::path::Path::new("p.json")));
    }

    #[test]
    fn help_and_version_win_over_everything_else() {
        assert!(matches!(parse(&["--sandbox", "--help"]), Invocation::Help));
        assert!(matches!(parse(&["-h"]), Invocation::Help));
        assert!(matches!(parse(&["-V", "--open"]), Invocation::Version));
        for flag in ["--open", "--config PATH", "--sandbox", "--help", "--version"] {
            assert!(USAGE.contains(flag), "the usage names {flag}");
        }
    }
}
