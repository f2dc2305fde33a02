# Developer chores; .ci/run runs the same commands as plain cargo calls.

default: test

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

test:
    cargo test --workspace

demo *ARGS:
    cargo run --release -p credpool-cli -- demo {{ARGS}}

bench *ARGS:
    cargo run --release -p credpool-cli -- bench {{ARGS}}

fuzz TARGET:
    cd fuzz && cargo +nightly fuzz run {{TARGET}} -- -max_total_time=60
