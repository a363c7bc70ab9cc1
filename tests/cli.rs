//! `omninode-bridge stamp|validate <paths…>`: offline stamping of local files.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_omninode-bridge"))
}

#[test]
fn stamp_then_validate_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..5 {
        std::fs::write(
            root.join(format!("doc{i}.md")),
            format!("# Doc {i}\n\nbody {i}\n"),
        )
        .unwrap();
    }
    std::fs::write(root.join("sub/code.rs"), "fn main() {}\n").unwrap();
    std::fs::write(root.join("sub/blob.bin"), [0xffu8, 0xfe, 0x00]).unwrap();

    // Before stamping, validation fails (no stamps) with a non-zero exit code.
    let out = bin().arg("validate").arg(root).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unstamped 6"),
        "{out:?}"
    );

    let out = bin()
        .args(["stamp", "--stamp-type", "rich"])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("stamped 6"), "{summary}");
    assert!(summary.contains("skipped 1"), "{summary}");
    let doc = std::fs::read_to_string(root.join("doc0.md")).unwrap();
    assert!(
        doc.starts_with("# Doc 0\n\nbody 0\n\n\n<!-- ONEX_METADATA_START -->"),
        "{doc}"
    );
    assert!(doc.contains("file_path: "), "{doc}");

    // Stamping again leaves valid files alone.
    let out = bin().arg("stamp").arg(root).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already stamped 6"),
        "{out:?}"
    );

    let out = bin().arg("validate").arg(root).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid 6, invalid 0"),
        "{out:?}"
    );

    // Tamper with one file: validation names it and fails.
    let tampered = root.join("doc3.md");
    let text = std::fs::read_to_string(&tampered)
        .unwrap()
        .replace("body 3", "body three");
    std::fs::write(&tampered, text).unwrap();
    let out = bin().arg("validate").arg(root).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("INVALID") && stdout.contains("doc3.md"),
        "{stdout}"
    );
    assert!(stdout.contains("valid 5, invalid 1"), "{stdout}");
}

#[test]
fn dry_run_writes_nothing_and_missing_paths_fail() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.txt");
    std::fs::write(&f, "hello").unwrap();
    let out = bin().args(["stamp", "--dry-run"]).arg(&f).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("would stamp 1"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello");

    let out = bin()
        .args(["validate", "/nonexistent/path/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = bin().arg("stamp").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "paths are required");
}
