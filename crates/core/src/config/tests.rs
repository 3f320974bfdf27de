#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn base() -> serde_json::Value {
    json!({
        "schema_version": 1,
        "organization": {"name": "Acme"},
        "idp": {"issuer": "https://idp.example.com", "client_id": "c", "client_auth": {"method": "none"}},
        "connectors": [{"id": "a", "display_name": "A", "mcp_url": "https://mcp.example.com/mcp", "client_id": "x", "client_auth": {"method": "none"}}]
    })
}

fn p(v: &serde_json::Value) -> String {
    match Policy::parse(&v.to_string(), ConfigSource::Explicit("/tmp/p.json".into())) {
        Ok(_) => "OK".into(),
        Err(e) => format!("key={:?} | {}", e.key, e),
    }
}

#[test]
fn probe() {
    let mut v = base();
    v["idp"]["client_auht"] = json!(1);
    eprintln!("1 {}", p(&v));
    let mut v = base();
    v["idp"]["client_auth"]["client_secert"] = json!("s");
    eprintln!("2 {}", p(&v));
    let mut v = base();
    v["connectors"][0]["scoeps"] = json!([]);
    eprintln!("3 {}", p(&v));
    let mut v = base();
    v["settings"] = json!({"max_parallel_connectors": "canary-secret-123"});
    eprintln!("4 {}", p(&v));
    let mut v = base();
    v["idp"]["client_auth"] = json!({"method": "canary-secret-123"});
    eprintln!("5 {}", p(&v));
    let mut v = base();
    v["idp"]["client_auth"] = json!({"method": "client_secret_post", "client_secret": 5});
    eprintln!("6 {}", p(&v));
    let mut v = base();
    v["idp"]["client_auth"] = json!({"method": "client_secret_post"});
    eprintln!("7 {}", p(&v));
    let mut v = base();
    v.as_object_mut().unwrap().remove("idp");
    eprintln!("8 {}", p(&v));
    let mut v = base();
    v["connectors"][0].as_object_mut().unwrap().remove("mcp_url");
    eprintln!("9 {}", p(&v));
    let mut v = base();
    v["bogus"] = json!(1);
    eprintln!("10 {}", p(&v));
    let mut v = base();
    v["schema_version"] = json!("1");
    eprintln!("11 {}", p(&v));
    let mut v = base();
    v["connectors"][0]["idp_only"] = json!("yes");
    eprintln!("12 {}", p(&v));
    let mut v = base();
    v["idp"]["client_auth"] = json!({"method": "client_secret_post", "client_secret": "a\"b`canary-secret-123`c"});
    v["settings"] = json!({"max_parallel_connectors": "x\"canary-secret-123"});
    eprintln!("13 {}", p(&v));
    let mut v = base();
    v["idp"]["client_auth"] = json!("canary-secret-123");
    eprintln!("14 {}", p(&v));
    let mut v = base();
    v["idp"]["issuer"] = json!("https://user:hunter2@idp.example.com");
    eprintln!("15 {}", p(&v));
    let mut v = base();
    v["idp"]["issuer"] = json!("http://idp.example.com");
    eprintln!("16 {}", p(&v));
    let mut v = base();
    v["settings"] = json!({"expiry_warning_minutes": u64::MAX});
    eprintln!("17 {}", std::panic::catch_unwind(|| p(&v)).is_ok());
    eprintln!("18 {}", Policy::parse("not json", ConfigSource::Explicit("/tmp/p.json".into())).unwrap_err());
    eprintln!(
        "19 {}",
        Policy::parse("{\"schema_version\": 1, ", ConfigSource::Explicit("/tmp/p.json".into())).unwrap_err()
    );
    let mut v = base();
    v["idp"]["client_auth"] = json!({"method": "none", "client_secret": "canary-secret-123"});
    eprintln!("20 {}", p(&v));
    let mut v = base();
    v["canary-secret-123"] = json!(1);
    eprintln!("21 {}", p(&v));
}
