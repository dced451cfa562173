//! `btcloop-cli decode-capture PATH…`: prints message captures (`--capturemessages`) as JSON
//! lines decoded with the `bitcoin` crate, merged by time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use btcloop::base::message::decode_payload;
use btcloop::daemon::capture::parse_records;
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "btcloop-cli", version, about = "btcloopd's command-line client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print captured messages as JSON lines, merged by time. PATHs are capture files
    /// (msgs_recv.dat, msgs_sent.dat) or directories holding them (searched recursively).
    DecodeCapture {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Every capture file at or under `path`.
fn capture_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            capture_files(&p, out)?;
        }
    } else if path.extension().is_some_and(|e| e == "dat") || path.is_file() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn decode_capture(paths: &[PathBuf]) -> Result<(), String> {
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(format!("{}: no such file or directory", p.display()));
        }
        capture_files(p, &mut files).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut lines: Vec<(u64, String)> = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let direction = match f.file_name().and_then(|n| n.to_str()) {
            Some("msgs_recv.dat") => "recv",
            Some("msgs_sent.dat") => "sent",
            _ => return Err(format!("{}: not a capture file (msgs_recv.dat or msgs_sent.dat)", f.display())),
        };
        let peer = f.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (records, torn) = parse_records(&bytes);
        if let Some(at) = torn {
            eprintln!("warning: {}: truncated record at byte {at} ignored", f.display());
        }
        for r in records {
            let body = match decode_payload(&r.command, r.payload) {
                Ok(msg) => json!(format!("{msg:?}")),
                Err(e) => json!({ "error": e.to_string() }),
            };
            let line = json!({
                "time": r.time_us,
                "peer": peer,
                "direction": direction,
                "msgtype": r.command,
                "size": r.payload.len(),
                "body": body,
            });
            lines.push((r.time_us, line.to_string()));
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    for (_, l) in lines {
        println!("{l}");
    }
    Ok(())
}

/// Runs `decode-capture` with `args` (`decode-capture` first), parsed and reported as before
/// btcloop-cli became an RPC client.
pub fn run(args: &[String]) -> ExitCode {
    let argv = std::iter::once("btcloop-cli").chain(args.iter().map(String::as_str));
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            eprintln!("Error: {}", text.lines().next().unwrap_or("invalid command line").trim_start_matches("error: "));
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::DecodeCapture { paths } => decode_capture(&paths),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
