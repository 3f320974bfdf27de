//! Opening the sign-in URL.
//!
//! RFC 8252 §4.1: native apps use the system browser, never an embedded web view, so the
//! user's SSO session, password manager and phishing protection all apply. The core asks a
//! [`BrowserOpener`]; the CLI passes [`SystemBrowser`] (or [`PrintUrl`] for `--no-browser`),
//! the tray its own. On Linux `$BROWSER` is honoured, as xdg-open does, which is also how
//! tests supply a scripted browser.

/// Something that shows the user a URL to open.
pub trait BrowserOpener: Send + Sync + std::fmt::Debug {
    /// Opens (or shows) `url`. Errors are a reason in words.
    fn open(&self, url: &str) -> Result<(), String>;
}

/// The system's default browser (`$BROWSER`, then xdg-open / open / ShellExecute).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemBrowser;

impl BrowserOpener for SystemBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        opener::open_browser(url)
            .map_err(|e| format!("could not open the browser ({e}); use --no-browser and open the URL yourself"))
    }
}

/// Prints the URL instead of opening it (`--no-browser`, remote shells).
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintUrl;

impl BrowserOpener for PrintUrl {
    fn open(&self, url: &str) -> Result<(), String> {
        eprintln!("Open this URL in a browser on this machine to sign in:\n\n  {url}\n");
        Ok(())
    }
}
