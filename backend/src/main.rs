//! `distillery`: the studio's server and command line. Everything lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    backend::cli::run(backend::cli::Cli::parse())
}
