//! The few HTML pages the sandbox shows: the IdP login page, error pages, help desk.
//!
//! The login page is parsed by scripted browsers in tests, so its markup is kept
//! deliberately simple and stable: `<form id="login" method="post" action="...">`,
//! one `<input type="hidden" name="..." value="...">` per request parameter, then
//! `username`, `password` and a submit button.

use crate::users::{DEMO_PASSWORD, USERS};

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         .error{{color:#b00020}}table{{border-collapse:collapse}}td,th{{padding:.2em .6em;text-align:left}}</style>\n\
         </head>\n<body>\n{body}</body>\n</html>\n",
        title = escape(title),
    )
}

/// The IdP login page. `hidden` are the authorization request parameters to carry
/// through the form; `error` is shown above the form (e.g. a wrong password).
pub fn login_page(action: &str, hidden: &[(&str, &str)], username: &str, error: Option<&str>) -> String {
    let mut body = String::from("<h1>Sandbox Org sign-in</h1>\n");
    if let Some(error) = error {
        body.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>\n", escape(error)));
    }
    body.push_str(&format!("<form id=\"login\" method=\"post\" action=\"{}\">\n", escape(action)));
    for (name, value) in hidden {
        body.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", escape(name), escape(value)));
    }
    body.push_str(&format!(
        "<p><label>Username <input name=\"username\" value=\"{}\" autocomplete=\"username\"></label></p>\n\
         <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label></p>\n\
         <p><button type=\"submit\">Sign in</button></p>\n</form>\n",
        escape(username)
    ));
    body.push_str(&format!(
        "<h2>Demo users</h2>\n<p>This is a sandbox. Every password is <code>{DEMO_PASSWORD}</code>.</p>\n\
         <table id=\"users\">\n<tr><th>Username</th><th>Name</th><th>Groups</th></tr>\n"
    ));
    for user in USERS {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(user.username),
            escape(user.name),
            escape(&user.groups.join(", "))
        ));
    }
    body.push_str("</table>\n");
    page("Sign in - Sandbox Org", &body)
}

/// An error page for requests that must not be redirected (bad client or redirect URI,
/// RFC 6749 §4.1.2.1).
pub fn error_page(title: &str, detail: &str) -> String {
    page(title, &format!("<h1>{}</h1>\n<p class=\"error\" id=\"error\">{}</p>\n", escape(title), escape(detail)))
}

/// The help desk page the policy points users at.
pub fn help_page() -> String {
    page(
        "Sandbox Help Desk",
        "<h1>Sandbox Help Desk</h1>\n<p>This organisation is a local sandbox. \
         Sign in with any demo user; the password is <code>demo</code>. \
         Connector access is decided by group: Engineering gets Linear, Supabase and \
         Atlassian; Design gets Figma and Canva; Sales gets Asana and Granola.</p>\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_page_escapes_hidden_values() {
        let html = login_page("/idp/login", &[("state", "a\"><script>")], "", Some("x<y"));
        assert!(html.contains("<input type=\"hidden\" name=\"state\" value=\"a&quot;&gt;&lt;script&gt;\">"));
        assert!(html.contains("<form id=\"login\" method=\"post\" action=\"/idp/login\">"));
        assert!(html.contains("x&lt;y"));
        assert!(!html.contains("<script>"));
    }
}
