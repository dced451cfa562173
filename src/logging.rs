//! Log output (Core's `BCLog`): `tracing` events whose target is a Core-style category
//! (`net`, …), shown at debug level only for the categories switched on with `--debug`; written
//! to `debug.log` in the network's data directory and to stderr, as Core-like text or as one
//! JSON object per line.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogConfig;

/// Debug categories btcloopd logs under (the `tracing` target of each event).
pub const CATEGORIES: &[&str] = &["net"];

/// Setting up logging failed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `--debug` named a category that does not exist.
    #[error("unsupported logging category --debug={0} (known: {known}, all)", known = CATEGORIES.join(", "))]
    UnknownCategory(String),
    /// `debug.log` could not be opened.
    #[error("cannot open log file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A global subscriber was already installed.
    #[error("logging already initialised")]
    AlreadySet,
}

/// Expands `--debug` values into categories: `all`/`1` is every category, `none`/`0` none.
pub fn expand_categories(values: &[String]) -> Result<Vec<&'static str>, LoggingError> {
    let mut out: Vec<&'static str> = Vec::new();
    for v in values {
        match v.as_str() {
            "all" | "1" => out.extend(CATEGORIES),
            "none" | "0" => out.clear(),
            other => match CATEGORIES.iter().find(|c| **c == other) {
                Some(c) => out.push(c),
                None => return Err(LoggingError::UnknownCategory(other.to_string())),
            },
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The filter: info for everything, debug for the chosen categories.
pub fn filter(categories: &[&str]) -> EnvFilter {
    let mut directives = String::from("info");
    for c in categories {
        directives.push_str(&format!(",{c}=debug"));
    }
    EnvFilter::new(directives)
}

/// Core-like text: `2026-11-23T10:00:00.123456Z [net] received: ping (8 bytes) peer=3`.
struct CoreFormat;

impl<S, N> FormatEvent<S, N> for CoreFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        SystemTime.format_time(&mut w)?;
        let meta = event.metadata();
        match *meta.level() {
            Level::ERROR => w.write_str(" [error]")?,
            Level::WARN => w.write_str(" [warning]")?,
            Level::INFO => {}
            _ => write!(w, " [{}]", meta.target())?,
        }
        w.write_char(' ')?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// A layer writing one JSON object per event to `writer`.
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_writer(writer)
}

/// A layer writing Core-style text lines to `writer`.
fn text_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer().event_format(CoreFormat).with_ansi(false).with_writer(writer)
}

/// Installs the global subscriber.
pub fn init(cfg: &LogConfig, net_dir: &Path) -> Result<(), LoggingError> {
    let categories = expand_categories(&cfg.categories)?;
    let file = if cfg.to_file {
        let path = net_dir.join("debug.log");
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| LoggingError::File { path: path.display().to_string(), source })?;
        Some(Arc::new(f))
    } else {
        None
    };
    let registry = tracing_subscriber::registry().with(filter(&categories));
    let console = cfg.print_to_console.then_some(std::io::stderr);
    let result = if cfg.json {
        registry.with(file.map(json_layer)).with(console.map(json_layer)).try_init()
    } else {
        registry.with(file.map(text_layer)).with(console.map(text_layer)).try_init()
    };
    result.map_err(|_| LoggingError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_expand_like_core() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(expand_categories(&s(&["net"])).unwrap(), vec!["net"]);
        assert_eq!(expand_categories(&s(&["all"])).unwrap(), CATEGORIES.to_vec());
        assert_eq!(expand_categories(&s(&["net", "0"])).unwrap(), Vec::<&str>::new());
        let err = expand_categories(&s(&["bogus"])).unwrap_err().to_string();
        assert!(err.contains("--debug=bogus"), "{err}");
    }
}
