//! `credpool demo --serve`: the demo's pool and fake providers, served on the data plane's
//! socket until Ctrl-C, so that a process in another language can lease from it.

use std::path::Path;

use anyhow::Context;
use credpool::Credpool;
use credpool_test_support::FakeProvider;

/// Serves `pool` on `<data_dir>/credpool.sock` until Ctrl-C or SIGTERM.
pub(super) async fn serve(
    pool: &Credpool,
    fake: &FakeProvider,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let mut config = credpool_server::config::DataConfig::defaults(data_dir);
    if let Ok(absolute) = std::path::absolute(&config.socket) {
        config.socket = absolute;
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let served = {
        let config = config.clone();
        async move { credpool_server::run_data_plane(pool, &config, stopping).await }
    };
    let socket = config.socket.display().to_string();
    let api = fake.api_url();
    println!(
        "The demo's pool is served on unix:{socket} (xai-oauth: 3 OAuth grants, openai: 3 API keys)."
    );
    println!("Its fake providers answer at {api}. From Python:");
    println!();
    println!("    pip install ./clients/python");
    println!("    python3 - <<'PY'");
    println!("    import credpool, httpx");
    println!("    client = credpool.Client(socket={socket:?})");
    println!("    http = httpx.Client(auth=credpool.CredpoolAuth(client, provider=\"xai-oauth\"))");
    println!(
        "    r = http.post(\"{api}/chat/completions\", json={{\"model\": \"grok\", \"messages\": []}})"
    );
    println!("    print(r.status_code, r.json()[\"choices\"][0][\"message\"][\"content\"])");
    println!("    PY");
    println!();
    println!("Ctrl-C stops it (the store is flushed).");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let waiting = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        let _ = stop.send(true);
    };
    let (served, ()) = tokio::join!(served, waiting);
    served
}
