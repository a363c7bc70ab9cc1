//! Offline `stamp` / `validate` of local files: the pure stamping core, no database, no network.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::stamping::core::{self, StampInput, StampType};

#[derive(Debug, clap::Args)]
pub struct StampArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Stamp format.
    #[arg(long, value_enum, default_value = "lightweight")]
    pub stamp_type: CliStampType,
    /// Report what would be stamped without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stamp files that already carry a valid stamp again (default: leave them).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CliStampType {
    Lightweight,
    Rich,
}

/// Every regular file under `paths`, sorted, with unreadable entries reported.
fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            for entry in walkdir::WalkDir::new(p).follow_links(false) {
                match entry {
                    Ok(e) if e.file_type().is_file() => files.push(e.into_path()),
                    Ok(_) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            errors.push(format!("{}: no such file or directory", p.display()));
        }
    }
    files.sort();
    files.dedup();
    (files, errors)
}

fn progress(len: usize) -> ProgressBar {
    if len < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Print a line above the progress bar (or plainly when there is no terminal).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}

enum FileOutcome {
    Stamped,
    AlreadyStamped,
    Skipped(String),
    Failed(String),
}

fn stamp_one(path: &Path, args: &StampArgs) -> FileOutcome {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return FileOutcome::Failed(e.to_string()),
    };
    let Ok(content) = String::from_utf8(bytes) else {
        return FileOutcome::Skipped("not UTF-8 text".into());
    };
    if !args.force && core::validate(&content, None).is_valid {
        return FileOutcome::AlreadyStamped;
    }
    let kind = match args.stamp_type {
        CliStampType::Lightweight => StampType::Lightweight,
        CliStampType::Rich => StampType::Rich,
    };
    let file_path = path.to_string_lossy();
    let rendered = core::render_stamp(
        &content,
        kind,
        &StampInput {
            file_path: Some(&file_path),
            ..Default::default()
        },
    );
    if args.dry_run {
        return FileOutcome::Stamped;
    }
    // Write to a temporary file beside the original, then rename: a crash never leaves half a file.
    let tmp = path.with_extension(format!(
        "{}.onex-tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let write = std::fs::write(&tmp, rendered.stamped_content.as_bytes()).and_then(|_| {
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        std::fs::rename(&tmp, path)
    });
    match write {
        Ok(()) => FileOutcome::Stamped,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            FileOutcome::Failed(e.to_string())
        }
    }
}

pub fn stamp_files(args: &StampArgs) -> ExitCode {
    let (files, errors) = collect_files(&args.paths);
    let bar = progress(files.len());
    let (mut stamped, mut already, mut skipped, mut failed) = (0, 0, 0, errors.len());
    for e in &errors {
        say(&bar, format!("error: {e}"));
    }
    for path in &files {
        bar.set_message(path.display().to_string());
        match stamp_one(path, args) {
            FileOutcome::Stamped => stamped += 1,
            FileOutcome::AlreadyStamped => already += 1,
            FileOutcome::Skipped(why) => {
                skipped += 1;
                say(&bar, format!("skipped {}: {why}", path.display()));
            }
            FileOutcome::Failed(why) => {
                failed += 1;
                say(&bar, format!("failed {}: {why}", path.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = if args.dry_run {
        "would stamp"
    } else {
        "stamped"
    };
    println!(
        "{verb} {stamped}, already stamped {already}, skipped {skipped}, failed {failed} ({} files)",
        files.len()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub fn validate_files(args: &ValidateArgs) -> ExitCode {
    let (files, errors) = collect_files(&args.paths);
    let bar = progress(files.len());
    let (mut valid, mut invalid, mut unstamped, mut skipped, mut failed) =
        (0, 0, 0, 0, errors.len());
    for e in &errors {
        say(&bar, format!("error: {e}"));
    }
    for path in &files {
        bar.set_message(path.display().to_string());
        match std::fs::read(path).map(String::from_utf8) {
            Err(e) => {
                failed += 1;
                say(&bar, format!("failed {}: {e}", path.display()));
            }
            Ok(Err(_)) => {
                skipped += 1;
            }
            Ok(Ok(content)) => {
                let v = core::validate(&content, None);
                if v.is_valid {
                    valid += 1;
                } else if v.stamps.is_empty() {
                    unstamped += 1;
                    say(&bar, format!("UNSTAMPED {}", path.display()));
                } else {
                    invalid += 1;
                    say(
                        &bar,
                        format!(
                            "INVALID {} (content hash {}, {} stamp(s))",
                            path.display(),
                            v.current_hash,
                            v.stamps.len()
                        ),
                    );
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "valid {valid}, invalid {invalid}, unstamped {unstamped}, skipped {skipped} (not UTF-8), failed {failed} ({} files)",
        files.len()
    );
    if invalid + unstamped + failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
