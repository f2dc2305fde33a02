use super::*;

fn check(origin: Option<&str>, base: Option<&str>, foreign: bool) {
    let failure = RequestFailure {
        origin: origin.map(str::to_owned),
        ..RequestFailure::transport("x")
    };
    assert_eq!(
        failure.is_foreign_to(base),
        foreign,
        "origin {origin:?} base {base:?}"
    );
}

#[test]
fn origins_compare_scheme_host_and_port() {
    check(
        Some("https://api.x.ai/v1/chat"),
        Some("https://api.x.ai/v1"),
        false,
    );
    check(
        Some("https://API.X.AI:443/x"),
        Some("https://api.x.ai/v1"),
        false,
    );
    check(
        Some("http://127.0.0.1:8080/v1/chat"),
        Some("http://127.0.0.1:8080/v1"),
        false,
    );
    check(
        Some("http://127.0.0.1:8081/v1"),
        Some("http://127.0.0.1:8080/v1"),
        true,
    );
    check(
        Some("http://api.x.ai/v1"),
        Some("https://api.x.ai/v1"),
        true,
    );
    check(
        Some("https://proxy.example.com/v1"),
        Some("https://api.x.ai/v1"),
        true,
    );
    check(
        Some("https://evil.api.x.ai/v1"),
        Some("https://api.x.ai/v1"),
        true,
    );
    check(None, Some("https://api.x.ai/v1"), false);
    check(Some("https://api.x.ai/v1"), None, false);
    check(Some("not a url"), Some("https://api.x.ai/v1"), false);
}

#[test]
fn debug_and_display_never_show_the_body() {
    let failure = RequestFailure::http(
        401,
        vec![("x-echo".to_owned(), "sk-canary".to_owned())],
        "bad key sk-canary",
        "https://api.openai.com/v1/chat?key=sk-canary",
    );
    let shown = format!("{failure:?} {failure}");
    assert!(!shown.contains("canary"), "{shown}");
    assert!(shown.contains("401"));
}
