//! The `memreader` CLI, run as a user runs it.

use std::process::Command;

fn memreader() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memreader"))
}

#[test]
fn version_names_the_package_version() {
    let out = memreader().arg("--version").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
}

#[test]
fn demo_opens_every_bundled_book_and_says_what_is_missing() {
    let out = memreader().arg("demo").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");
    assert!(stdout.contains("household-stories-grimm.txt"), "{stdout}");
    assert!(stdout.contains("intentions-wilde.txt"), "{stdout}");
    assert!(stdout.contains("passages"), "{stdout}");
    assert!(stdout.contains("Ingested 2 book(s)"), "{stdout}");
    // Searches print hits with their citation and the matched terms marked.
    assert!(
        stdout.contains("Search wolf grandmother: 2 hit(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("«wolf»") || stdout.contains("«grandmother»"),
        "{stdout}"
    );
    assert!(stdout.contains("«imitates»"), "{stdout}");
    assert!(stdout.contains("[chars "), "{stdout}");
    // Questions whose answers are known, answered with citations (tests/demo.rs has more).
    assert!(stdout.contains("Q: What is the pass key?"), "{stdout}");
    assert!(
        stdout.contains("answers hold the expected text"),
        "{stdout}"
    );
}

#[test]
fn demo_on_a_missing_folder_names_it() {
    let out = memreader()
        .args(["demo", "--books", "/nonexistent/books"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/books"), "{stderr}");
}

#[test]
fn a_binary_file_is_skipped_with_its_name_and_the_problem() {
    let dir = std::env::temp_dir().join(format!("memreader-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), b"\x00\x01\x02\x00binary\x00").unwrap();
    std::fs::write(dir.join("b.txt"), "A short book.\n\nIt has two sentences.").unwrap();
    let out = memreader()
        .args(["demo", "--books"])
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("a.txt") && stderr.contains("plain text"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("b.txt"), "{stdout}");
}
