//! The `riveg-bench` binary: parse arguments, call the library, map errors to exit codes.

use clap::Parser;
use riveg_bench::cli::{self, exit};

fn main() {
    let cli = cli::Cli::parse();
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::error_text(&e));
            exit::ERROR
        }
    };
    std::process::exit(code);
}
