//! Runs a sandbox organisation until Ctrl-C, printing its policy and demo users.
//!
//! `cargo run -p ema-sandbox --example serve [PORT]`

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::args().nth(1).map(|p| p.parse()).transpose()?.unwrap_or(0);
    let sandbox = ema_sandbox::Sandbox::start(ema_sandbox::SandboxOptions { port, ..Default::default() }).await?;
    println!("{}", serde_json::to_string_pretty(&sandbox.policy())?);
    eprintln!("sandbox at {} (password for every user: demo)", sandbox.base_url());
    for user in ema_sandbox::Sandbox::users() {
        eprintln!(
            "  {:<6} {:<15} {:<22} {}",
            user.username,
            user.name,
            user.groups.join(", "),
            sandbox.entitled_connectors(user.username).join(", ")
        );
    }
    sandbox.run_until_ctrl_c().await;
    Ok(())
}
