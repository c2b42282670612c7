//! The `natter` binary: everything lives in the library; see `natter::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    natter::cli::main()
}
