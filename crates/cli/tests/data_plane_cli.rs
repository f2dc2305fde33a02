#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The data plane of a real `credpool serve`: a 0600 Unix socket that leases without a token,
//! a TCP listener that takes only the lease token (and the admin API only the admin token), a
//! socket removed at a clean stop and a stale one replaced after a kill, and no secret in the
//! service's log.

mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use serde_json::json;
use support::*;

const KEY: &str = "sk-data-plane-cli-0123456789";

fn setup() -> Setup {
    Setup::new(
        "[data]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"lease.token\"\n\n[[providers]]\nid = \"openai\"\n\n[[providers.entries]]\nlabel = \"k1\"\napi_key_env = \"DATA_PLANE_KEY\"\n",
    )
}

#[test]
fn leases_over_the_socket_and_tcp_each_with_its_own_authentication() {
    let setup = setup();
    let env = [("DATA_PLANE_KEY", KEY)];
    let server = setup.serve(&env);
    let socket = setup.data_dir().join("credpool.sock");
    let metadata = std::fs::symlink_metadata(&socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);

    let (status, answer) = uds_call(
        &socket,
        "POST",
        "/v1/lease",
        Some(&json!({ "provider": "openai" })),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["lease"]["header"]["value"], format!("Bearer {KEY}"));
    let id = answer["lease"]["id"].as_str().unwrap().to_owned();
    let (status, answer) = uds_call(
        &socket,
        "POST",
        &format!("/v1/leases/{id}/report"),
        Some(&json!({ "outcome": "success" })),
    );
    assert_eq!((status, answer["action"].as_str()), (200, Some("released")));

    // TCP: the lease token opens it; the admin token does not, and the lease token does not
    // open the admin API.
    let tcp = format!(
        "http://{}",
        server.stdout_after("credpool serve: data plane on http://")
    );
    let lease_token = std::fs::read_to_string(setup.dir.path().join("lease.token"))
        .unwrap()
        .trim()
        .to_owned();
    let admin_token = setup.token();
    assert_ne!(lease_token, admin_token);
    let body = json!({ "provider": "openai" }).to_string();
    let (status, _) = http(
        "POST",
        &format!("{tcp}/v1/lease"),
        Some(&admin_token),
        Some(&body),
    );
    assert_eq!(status, 401, "the admin token is not a lease token");
    let (status, _) = http("POST", &format!("{tcp}/v1/lease"), None, Some(&body));
    assert_eq!(status, 401);
    let (status, answer) = http(
        "POST",
        &format!("{tcp}/v1/lease"),
        Some(&lease_token),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _) = http(
        "GET",
        &format!("{}/v1/status", server.url),
        Some(&lease_token),
        None,
    );
    assert_eq!(status, 401, "the lease token is not an admin token");

    let (exit, log) = server.terminate();
    assert!(exit.success(), "{log}");
    assert!(!socket.exists(), "a clean stop removes the socket");
    assert!(!log.contains(KEY), "{log}");
}

#[test]
fn a_socket_left_by_a_killed_service_is_replaced_at_the_next_start() {
    let setup = setup();
    let env = [("DATA_PLANE_KEY", KEY)];
    let server = setup.serve(&env);
    let socket = setup.data_dir().join("credpool.sock");
    let (exit, _) = server.stop_with("KILL");
    assert!(!exit.success());
    assert!(socket.exists(), "a killed service leaves its socket behind");
    let again = setup.serve(&env);
    let (status, answer) = uds_call(
        &socket,
        "POST",
        "/v1/lease",
        Some(&json!({ "provider": "openai" })),
    );
    assert_eq!(status, 200, "{answer}");
    let (exit, log) = again.terminate();
    assert!(exit.success(), "{log}");
}
