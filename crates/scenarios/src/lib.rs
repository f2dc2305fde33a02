//! Nothing to link: this package exists so that `cargo test --workspace` runs the scenario
//! tests kept in the repository's top-level `tests/` directory (listed in its `Cargo.toml`).
//! Those tests drive the whole tree through the `credpool` facade against the fake provider.
