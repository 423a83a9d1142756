//! The logger behind `-v`/`-q` and `RUST_LOG`: warnings show by default (the library's
//! `log::warn!` calls: CUDA → CPU fallback, LLM retries, skipped tweets, cache-write failures),
//! `-v` adds info, `-vv` debug, `-vvv` trace; `-q` keeps errors only, `-qq` nothing. `RUST_LOG`,
//! when set, wins (env_logger syntax). Lines go to stderr as `warning: message`.

use std::io::Write;

use log::LevelFilter;

/// The level for `-v` × `verbose` and `-q` × `quiet`.
pub fn level(verbose: u8, quiet: u8) -> LevelFilter {
    match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => LevelFilter::Off,
        -1 => LevelFilter::Error,
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger once (later calls are ignored, e.g. in tests).
pub fn init(verbose: u8, quiet: u8) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level(verbose, quiet));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        if !spec.trim().is_empty() {
            builder.parse_filters(&spec);
        }
    }
    builder.format(|buf, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(buf, "{level}: {}", record.args())
    });
    let _ = builder.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_levels() {
        assert_eq!(level(0, 0), LevelFilter::Warn);
        assert_eq!(level(1, 0), LevelFilter::Info);
        assert_eq!(level(3, 0), LevelFilter::Trace);
        assert_eq!(level(9, 0), LevelFilter::Trace);
        assert_eq!(level(0, 1), LevelFilter::Error);
        assert_eq!(level(0, 2), LevelFilter::Off);
    }
}
