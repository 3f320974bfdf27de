#!/usr/bin/env python3
"""A scripted browser for tests, used as $BROWSER.

It does what a person does on the sandbox IdP's login page: opens the sign-in URL, fills in the
form (user from EMA_TEST_USER, password from EMA_TEST_PASSWORD, default `demo`), submits it and
follows the redirects to the app's loopback callback. It is a real HTTP client on real sockets:
the app's loopback listener cannot tell it from a browser. Standard library only.

EMA_TEST_BROWSER_LOG, if set, receives one line per step (never the code or tokens).
EMA_TEST_BROWSER_MODE selects an attack or fault to play:
  tamper-state  changes `state` on the final redirect (a CSRF attempt);
  tamper-pkce   replaces `code_challenge` in the authorization request (an intercepted request);
  strip-pkce    removes `code_challenge` and its method from the authorization request.
"""
import html.parser
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "login":
            self.in_form = True
            self.action = a.get("action")
        elif tag == "input" and self.in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def log(msg):
    path = os.environ.get("EMA_TEST_BROWSER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(msg + "\n")


def fetch(opener, url, data=None):
    req = urllib.request.Request(url, data=data)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


def main():
    url = sys.argv[-1]
    user = os.environ.get("EMA_TEST_USER", "alice")
    password = os.environ.get("EMA_TEST_PASSWORD", "demo")
    mode = os.environ.get("EMA_TEST_BROWSER_MODE", "")
    opener = urllib.request.build_opener(NoRedirect)
    if mode in ("tamper-pkce", "strip-pkce"):
        parts = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qsl(parts.query)
        if mode == "tamper-pkce":
            q = [(k, "A" * 43 if k == "code_challenge" else v) for k, v in q]
        else:
            q = [(k, v) for k, v in q if k not in ("code_challenge", "code_challenge_method")]
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
    status, headers, page = fetch(opener, url)
    if status in (301, 302, 303):
        location = headers.get("Location") or headers.get("location")
        log(f"authorize-redirect {status}")
        if location:
            status, _, page = fetch(opener, location)
            log("done " + ("signed-in" if "You are signed in" in page else "failed"))
        return 0
    log(f"login-page {status}")
    form = FormParser()
    form.feed(page)
    if not form.action:
        log("no-login-form")
        return 1
    form.fields["username"] = user
    form.fields["password"] = password
    action = urllib.parse.urljoin(url, form.action)
    status, headers, _ = fetch(opener, action, urllib.parse.urlencode(form.fields).encode())
    location = headers.get("Location") or headers.get("location")
    log(f"login-post {status}")
    hops = 0
    while location and hops < 5:
        if mode == "tamper-state" and location.startswith("http://127.0.0.1"):
            parts = urllib.parse.urlsplit(location)
            q = [(k, "forged" if k == "state" else v) for k, v in urllib.parse.parse_qsl(parts.query)]
            location = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
        status, headers, page = fetch(opener, location)
        target = urllib.parse.urlsplit(location)
        log(f"redirect {target.scheme}://{target.netloc}{target.path} {status}")
        location = headers.get("Location") or headers.get("location")
        hops += 1
    log("done " + ("signed-in" if "You are signed in" in page else "failed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
