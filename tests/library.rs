//! The library commands of the CLI (`ingest`, `list`, `search`, `remove`), run as a user runs
//! them, with PDFs extracted by real worker processes.

use std::path::Path;
use std::process::{Command, Output};

use ingest::fixtures;
use serde_json::Value;

fn memreader(library: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memreader"));
    command
        .env_remove("MEMREADER_HOME")
        .arg("--library")
        .arg(library);
    command
}

fn run(command: &mut Command) -> (Output, String, String) {
    let out = command.output().unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

fn pages() -> [String; 2] {
    let page = |topic: &str| {
        (0..40)
            .map(|i| format!("Entry {i} describes the {topic} in some detail."))
            .collect::<Vec<_>>()
            .join(" ")
    };
    [page("glacier"), page("volcano")]
}

#[test]
fn ingest_list_search_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    std::fs::create_dir_all(&books).unwrap();
    let [a, b] = pages();
    let pdf = fixtures::pdf(&[&a, &b]);
    std::fs::write(books.join("atlas.pdf"), &pdf).unwrap();
    std::fs::write(
        books.join("notes.md"),
        "# Field notes\n\nThe *heron* stood still.\n",
    )
    .unwrap();
    std::fs::write(books.join("cut.pdf"), &pdf[..pdf.len() / 3]).unwrap();
    std::fs::write(
        books.join("locked.pdf"),
        fixtures::encrypted_pdf(&["x"], "pw"),
    )
    .unwrap();
    std::fs::write(books.join("scan.pdf"), fixtures::image_only_pdf(1)).unwrap();
    std::fs::write(books.join("photo.pdf"), fixtures::png()).unwrap();
    std::fs::write(books.join("zero.txt"), b"").unwrap();
    std::fs::write(books.join("crash.pdf"), fixtures::panicking_pdf()).unwrap();
    let library = dir.path().join("lib");

    let (out, stdout, stderr) = run(memreader(&library)
        .args(["ingest", "--jobs", "2"])
        .arg(&books));
    assert_eq!(
        out.status.code(),
        Some(2),
        "some files failed: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("2 ingested, 0 skipped, 6 failed"),
        "{stdout}"
    );
    for (name, message) in [
        ("cut.pdf", "the PDF is truncated"),
        ("locked.pdf", "the PDF is encrypted"),
        ("scan.pdf", "no text layer"),
        ("photo.pdf", "a PNG image although its name ends in .pdf"),
        ("zero.txt", "the file is empty (0 bytes)"),
        ("crash.pdf", "the PDF parser crashed on this file"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("failed") && l.contains(name) && l.contains(message)),
            "{name}: {message}\n{stdout}"
        );
    }

    let (out, stdout, _) = run(memreader(&library).args(["list", "--json"]));
    assert!(out.status.success());
    let docs: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(docs.len(), 8);
    let atlas = docs
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("atlas.pdf"))
        .unwrap();
    assert_eq!(atlas["status"], "ready");
    assert_eq!(atlas["pages"], 2);
    assert_eq!(atlas["title"], "Fixture PDF");
    let id = atlas["id"].as_str().unwrap().to_owned();
    let (_, table, _) = run(memreader(&library).arg("list"));
    assert!(
        table.contains(&id[..12]) && table.contains("Fixture PDF (Test Author)"),
        "{table}"
    );

    let (out, stdout, _) =
        run(memreader(&library).args(["search", "volcano", "--json", "--limit", "3"]));
    assert!(out.status.success());
    let hits: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3);
    assert_eq!(hits[0]["page"], 2);
    assert_eq!(hits[0]["doc_id"], id.as_str());
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0);
    let snippet = &hits[0]["snippet"];
    let start = snippet["range"]["start"].as_u64().unwrap();
    let h = &snippet["highlights"][0];
    let (hs, he) = (h["start"].as_u64().unwrap(), h["end"].as_u64().unwrap());
    let text = snippet["text"].as_str().unwrap();
    assert_eq!(
        &text[(hs - start) as usize..(he - start) as usize],
        "volcano"
    );

    let (_, stdout, _) = run(memreader(&library).args(["search", "heron"]));
    assert!(
        stdout.contains("Field notes") && stdout.contains("«heron»"),
        "{stdout}"
    );
    let (_, stdout, _) = run(memreader(&library).args(["search", "heron", "--doc", &id[..8]]));
    assert!(stdout.contains("No passages match"), "{stdout}");

    let (out, stdout, _) = run(memreader(&library).args(["remove", &id[..10]]));
    assert!(out.status.success());
    assert!(stdout.contains("Removed Fixture PDF"), "{stdout}");
    let (_, stdout, _) = run(memreader(&library).args(["search", "volcano"]));
    assert!(stdout.contains("No passages match"), "{stdout}");
    let (out, _, stderr) = run(memreader(&library).args(["remove", &id[..10]]));
    assert!(!out.status.success());
    assert!(stderr.contains("no document with id"), "{stderr}");
}

#[test]
fn a_pdf_worker_past_its_time_limit_is_stopped_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = pages();
    std::fs::write(dir.path().join("slow.pdf"), fixtures::pdf(&[&a, &b])).unwrap();
    std::fs::write(dir.path().join("fine.txt"), "The kettle sings.").unwrap();
    let (out, stdout, _) = run(memreader(&dir.path().join("lib"))
        .args(["ingest", "--pdf-timeout", "0.001"])
        .arg(dir.path().join("slow.pdf"))
        .arg(dir.path().join("fine.txt")));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout.contains("1 ingested, 0 skipped, 1 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("slow.pdf: the PDF parser did not finish within 0.001 s"),
        "{stdout}"
    );
}

#[test]
fn a_pdf_worker_past_its_memory_limit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let [a, _] = pages();
    std::fs::write(dir.path().join("big.pdf"), fixtures::pdf(&[&a])).unwrap();
    let (out, stdout, _) = run(memreader(&dir.path().join("lib"))
        .args(["ingest", "--pdf-memory", "1"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout.contains("big.pdf: the PDF parser ran out of memory (limit 1 MiB)"),
        "{stdout}"
    );
}

#[test]
fn the_worker_subcommand_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.pdf");
    std::fs::write(&file, fixtures::pdf(&["First page.", "Second page."])).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_memreader"))
        .arg("__extract-pdf")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pages = answer["Ok"]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[1].as_str().unwrap().contains("Second page."));
}

#[test]
fn the_library_defaults_to_memreader_home() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run(Command::new(env!("CARGO_BIN_EXE_memreader"))
        .env("MEMREADER_HOME", dir.path())
        .arg("list"));
    assert!(out.status.success());
    assert!(
        stdout.contains(&format!("The library at {} is empty", dir.path().display())),
        "{stdout}"
    );
    assert!(dir.path().join("catalog.sqlite").exists());
}
