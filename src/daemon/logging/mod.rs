//! Log output (Core's `BCLog`): `tracing` events whose target is a Core-style category
//! (`net`, …), shown at debug level only for the categories switched on with `--debug`; written
//! to `debug.log` in the network's data directory (unconditional lines rate-limited per call
//! site, as Core) and to stderr, as Core-like text or as one JSON object per line. SIGHUP
//! reopens `debug.log` at its path ([`LogControl::reopen_file`]), for log rotation.

pub mod ratelimit;

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use std::collections::BTreeSet;
use tracing::{Event, Level, Subscriber};

use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry, reload};

use self::ratelimit::{RATELIMIT_MAX_BYTES, RATELIMIT_WINDOW, RateLimiter, Verdict};
use tracing_subscriber::util::SubscriberInitExt;

use crate::daemon::config::LogConfig;

/// Target of the detailed per-peer lines of `--debugpeer`.
pub const DEBUGPEER: &str = "debugpeer";

/// Debug categories btcloopd logs under (the `tracing` target of each event), sorted as Core
/// lists them: `cmpctblock` (BIP152 compact blocks), `http` (the RPC and metrics HTTP servers),
/// `net` (peers), `rpc` (RPC calls), `tor` (the Tor control connection), `validation` (the
/// validation thread's per-block lines and the kernel's own log).
pub const CATEGORIES: &[&str] = &["cmpctblock", "http", "net", "rpc", "tor", "validation"];

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
            "none" | "0" => out.clear(),
            other => out.extend(category_names(other)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The categories `name` stands for: every one for `all`/`1` (Core's special names), else the
/// one named.
fn category_names(name: &str) -> Result<&'static [&'static str], LoggingError> {
    match name {
        "all" | "1" => Ok(CATEGORIES),
        other => CATEGORIES
            .iter()
            .find(|c| **c == other)
            .map(std::slice::from_ref)
            .ok_or_else(|| LoggingError::UnknownCategory(other.to_string())),
    }
}

/// Switches debug categories on and off while the node runs (the `logging` RPC), and reopens
/// `debug.log` (SIGHUP).
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    active: parking_lot::Mutex<BTreeSet<&'static str>>,
    /// `--debugpeer` is on: its category stays enabled whatever the RPC does.
    debug_peer: bool,
    /// `debug.log`, shared with the layer that writes it (`None` without a log file).
    file: Option<Arc<LogFile>>,
}

impl LogControl {
    /// Reopens `debug.log` at its path (appending, created if it was moved away), so that
    /// after logrotate renames the file, new lines go to a new one (Core's SIGHUP). On failure
    /// the old file stays in use. Returns the path reopened, `None` without a log file.
    pub fn reopen_file(&self) -> Result<Option<&Path>, LoggingError> {
        match &self.file {
            Some(f) => f.reopen().map(|()| Some(f.path.as_path())),
            None => Ok(None),
        }
    }

    /// Every category and whether it is logged now (Core's `LogCategoriesList`).
    pub fn categories(&self) -> Vec<(&'static str, bool)> {
        let active = self.active.lock();
        CATEGORIES.iter().map(|c| (*c, active.contains(c))).collect()
    }

    /// Enables `include`, then disables `exclude` (`all`/`1` mean every category). Nothing
    /// changes if any name is unknown.
    pub fn update(&self, include: &[String], exclude: &[String]) -> Result<(), LoggingError> {
        let resolve = |names: &[String]| -> Result<Vec<&'static str>, LoggingError> {
            names.iter().map(|n| category_names(n)).collect::<Result<Vec<_>, _>>().map(|v| v.concat())
        };
        let (on, off) = (resolve(include)?, resolve(exclude)?);
        let mut active = self.active.lock();
        active.extend(on);
        for c in off {
            active.remove(c);
        }
        let mut cats: Vec<&str> = active.iter().copied().collect();
        if self.debug_peer {
            cats.push(DEBUGPEER);
        }
        // The reload fails only if the subscriber is gone (process exit): nothing to log then.
        let _ = self.handle.reload(filter(&cats));
        Ok(())
    }
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

/// `debug.log`: its path and the open file, which [`LogFile::reopen`] replaces.
struct LogFile {
    path: PathBuf,
    file: parking_lot::Mutex<std::fs::File>,
}

impl LogFile {
    /// Opens `path` for appending, creating it owner-only (like every file in the data
    /// directory; Core: umask 077).
    fn open_file(path: &Path) -> Result<std::fs::File, LoggingError> {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::base::sys::PRIVATE_FILE_MODE)
            .open(path)
            .map_err(|source| LoggingError::File { path: path.display().to_string(), source })
    }

    fn open(path: &Path) -> Result<LogFile, LoggingError> {
        Ok(LogFile { path: path.to_path_buf(), file: parking_lot::Mutex::new(Self::open_file(path)?) })
    }

    /// Opens the path anew and writes there from now on.
    fn reopen(&self) -> Result<(), LoggingError> {
        let fresh = Self::open_file(&self.path)?;
        *self.file.lock() = fresh;
        Ok(())
    }

    fn write(&self, text: &str) {
        // A failed log write has nowhere to be reported; the console copy still shows the line.
        let _ = self.file.lock().write_all(text.as_bytes());
    }
}

/// The `debug.log` writer: formats each event itself so that unconditional lines (info and
/// above) can be rate-limited per call site before they reach the disk (Core's
/// `LogRateLimiter`); while any site is suppressed, lines start with `[*] ` as in Core.
struct FileLayer {
    file: Arc<LogFile>,
    limiter: parking_lot::Mutex<RateLimiter>,
    json: bool,
}

impl FileLayer {
    fn new(file: Arc<LogFile>, json: bool) -> Self {
        FileLayer {
            file,
            limiter: parking_lot::Mutex::new(RateLimiter::new(RATELIMIT_MAX_BYTES, RATELIMIT_WINDOW, Instant::now())),
            json,
        }
    }

    /// One line for `level`/`target`/`message` (with `fields`), in the configured format.
    fn line(&self, level: Level, target: &str, message: &str, fields: &[(String, String)], starred: bool) -> String {
        let mut ts = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut ts));
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("timestamp".into(), ts.into());
            obj.insert("level".into(), level.as_str().into());
            obj.insert("message".into(), message.into());
            obj.insert("target".into(), target.into());
            for (k, v) in fields {
                obj.insert(k.clone(), v.clone().into());
            }
            return format!("{}\n", serde_json::Value::Object(obj));
        }
        let mut out = String::with_capacity(ts.len() + message.len() + 24);
        if starred {
            out.push_str("[*] ");
        }
        out.push_str(&ts);
        match level {
            Level::ERROR => out.push_str(" [error]"),
            Level::WARN => out.push_str(" [warning]"),
            Level::INFO => {}
            _ => {
                out.push_str(" [");
                out.push_str(target);
                out.push(']');
            }
        }
        out.push(' ');
        out.push_str(message);
        for (k, v) in fields {
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
        out
    }

    fn write(&self, text: &str) {
        self.file.write(text);
    }
}

/// Collects an event's message and other fields.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push((field.name().to_string(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push((field.name().to_string(), value.to_string()));
        }
    }
}

impl<S: Subscriber> Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *meta.level();
        if level > Level::INFO {
            // Debug categories are opt-in: not rate-limited (as Core).
            let line =
                self.line(level, meta.target(), &fields.message, &fields.rest, self.limiter.lock().suppressing());
            return self.write(&line);
        }
        let site = (meta.file().unwrap_or("?"), meta.line().unwrap_or(0));
        let (restarted, verdict, starred) = {
            let mut lim = self.limiter.lock();
            let restarted = lim.roll(Instant::now());
            let probe = self.line(level, meta.target(), &fields.message, &fields.rest, false);
            let verdict = lim.consume(site, probe.len() as u64);
            (restarted, verdict, lim.suppressing())
        };
        for r in restarted {
            self.write(&self.line(Level::WARN, "btcloop", &r, &[], starred));
        }
        match verdict {
            Verdict::Drop => {}
            Verdict::Write => self.write(&self.line(level, meta.target(), &fields.message, &fields.rest, starred)),
            Verdict::WriteThenSuppress(warning) => {
                self.write(&self.line(Level::WARN, "btcloop", &warning, &[], true));
                self.write(&self.line(level, meta.target(), &fields.message, &fields.rest, true));
            }
        }
    }
}

/// A filter layer whose categories a [`LogControl`] can change.
fn reloadable(cfg: &LogConfig) -> Result<(reload::Layer<EnvFilter, Registry>, LogControl), LoggingError> {
    let chosen = expand_categories(&cfg.categories)?;
    let debug_peer = !cfg.debug_peers.is_empty();
    let mut categories = chosen.clone();
    if debug_peer {
        // `--debugpeer` lines are a debug category of their own, on only for that.
        categories.push(DEBUGPEER);
    }
    let (layer, handle) = reload::Layer::new(filter(&categories));
    let control =
        LogControl { handle, active: parking_lot::Mutex::new(chosen.into_iter().collect()), debug_peer, file: None };
    Ok((layer, control))
}

/// Installs the global subscriber; the returned control changes its categories at run time.
pub fn init(cfg: &LogConfig, net_dir: &Path) -> Result<LogControl, LoggingError> {
    let (filter_layer, mut control) = reloadable(cfg)?;
    let file = if cfg.to_file {
        let log_file = Arc::new(LogFile::open(&net_dir.join("debug.log"))?);
        control.file = Some(log_file.clone());
        Some(FileLayer::new(log_file, cfg.json))
    } else {
        None
    };
    let registry = tracing_subscriber::registry().with(filter_layer).with(file);
    let console = cfg.print_to_console.then_some(std::io::stderr);
    let result = if cfg.json {
        registry.with(console.map(json_layer)).try_init()
    } else {
        registry.with(console.map(text_layer)).try_init()
    };
    result.map_err(|_| LoggingError::AlreadySet)?;
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_log_is_rate_limited_per_call_site_and_marks_suppression() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("debug.log");
        let layer = FileLayer {
            file: Arc::new(LogFile::open(&path).unwrap()),
            limiter: parking_lot::Mutex::new(RateLimiter::new(300, RATELIMIT_WINDOW, Instant::now())),
            json: false,
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..20 {
                tracing::info!("noisy line number {i}");
            }
            tracing::info!("another call site");
            tracing::debug!(target: "net", "debug lines are not limited");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let noisy = text.lines().filter(|l| l.contains("noisy line number")).count();
        assert!((2..20).contains(&noisy), "{text}");
        assert_eq!(text.matches("Excessive logging detected from").count(), 1, "{text}");
        // The last noisy line written follows the warning; nothing from that site after it.
        let after: Vec<&str> = text.lines().skip_while(|l| !l.contains("Excessive logging")).collect();
        assert!(after[1].contains("noisy line number"));
        assert_eq!(after.iter().filter(|l| l.contains("noisy")).count(), 1);
        // Other sites still write, marked while a suppression is active.
        assert!(text.lines().any(|l| l.starts_with("[*] ") && l.contains("another call site")), "{text}");
        assert!(text.contains("debug lines are not limited"));
    }

    #[test]
    fn reopen_writes_to_a_new_file_at_the_path_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("debug.log");
        let log_file = Arc::new(LogFile::open(&path).unwrap());
        let (_, mut control) = reloadable(&LogConfig::default()).unwrap();
        control.file = Some(log_file.clone());
        let subscriber = tracing_subscriber::registry().with(FileLayer::new(log_file, false));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before the rotation");
            std::fs::rename(&path, dir.path().join("debug.log.1")).unwrap();
            tracing::info!("after the rename, before the reopen");
            assert_eq!(control.reopen_file().unwrap(), Some(path.as_path()));
            tracing::info!("after the reopen");
        });
        let old = std::fs::read_to_string(dir.path().join("debug.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(old.contains("before the rotation") && old.contains("before the reopen"), "{old}");
        assert!(!old.contains("after the reopen"), "{old}");
        assert!(new.contains("after the reopen") && !new.contains("before"), "{new}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A path that cannot be opened is an error, and the old file stays in use.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(control.reopen_file().is_err());
    }

    #[test]
    fn log_control_switches_categories_at_run_time() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let (layer, control) = reloadable(&LogConfig::default()).unwrap();
        let out = sink.clone();
        let subscriber = tracing_subscriber::registry().with(layer).with(text_layer(move || out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "net", "hidden before");
            control.update(&["net".into()], &[]).unwrap();
            tracing::debug!(target: "net", "shown while on");
            tracing::debug!(target: "rpc", "rpc still off");
            let err = control.update(&["rpc".into(), "bogus".into()], &[]).unwrap_err();
            assert!(err.to_string().contains("bogus"));
            assert!(!control.categories().contains(&("rpc", true)), "a failed update changes nothing");
            control.update(&["all".into()], &["net".into()]).unwrap();
            tracing::debug!(target: "net", "hidden again");
            tracing::debug!(target: "rpc", "rpc now on");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.contains("shown while on") && text.contains("rpc now on"), "{text}");
        assert!(!text.contains("rpc still off"), "{text}");
        assert_eq!(
            control.categories(),
            vec![
                ("cmpctblock", true),
                ("http", true),
                ("net", false),
                ("rpc", true),
                ("tor", true),
                ("validation", true)
            ]
        );
    }

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
