//! Shared by the reading, asking and snapshot tests: a tiny random model (never the shipped
//! one), the demo books with a pass key hidden in one, and a library holding them.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use candle_nn::VarMap;
use memmamba::{Config, MemMamba};
use memreader::library::{Library, PdfIsolation};
use memreader::model::Model;

pub const PASS_KEY: &str = "The pass key is 68491. Remember it. 68491 is the pass key.";

/// A fact stated once, hidden in the second book.
pub const FACT: &str = "The lighthouse keeper's daughter was called Ottoline Fairweather.";

/// Questions about the bundled books (with the two sentences above hidden in them), the text
/// their cited sentence must hold, and the title of the chapter it is in (None: not checked).
pub const KNOWN: [(&str, &str, Option<&str>); 5] = [
    ("What is the pass key?", "68491", None),
    (
        "What was the lighthouse keeper's daughter called?",
        "Ottoline Fairweather",
        None,
    ),
    (
        "What did Little Red-cap take to her grandmother?",
        "cakes and a flask of wine",
        Some("LITTLE RED CAP"),
    ),
    (
        "How long had Hans served his master?",
        "seven years",
        Some("HANS IN LUCK"),
    ),
    ("Does Life imitate Art?", "Life imitates Art", None),
];

/// The tiny preset with the shipped tokenizer's vocabulary, random weights saved in `dir`
/// (config.json + model.safetensors), as the shipped model is laid out.
pub fn tiny_model(dir: &Path) -> PathBuf {
    tiny_model_seeded(dir, 0)
}

/// A tiny model like [`tiny_model`]'s, with the same configuration and other weights.
pub fn other_tiny_model(dir: &Path) -> PathBuf {
    tiny_model_seeded(dir, 1)
}

fn tiny_model_seeded(dir: &Path, seed: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = Config {
        vocab_size: 16384,
        ..Config::tiny()
    };
    let varmap = VarMap::new();
    let net = MemMamba::init(&cfg, &varmap, &Device::Cpu, seed).unwrap();
    net.save(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), cfg.to_json_string()).unwrap();
    dir.to_owned()
}

pub fn load(dir: &Path) -> Model {
    Model::load(dir, &Device::Cpu).unwrap()
}

/// Copies the demo books into `dir`: Grimm with [`PASS_KEY`] as a paragraph halfway through,
/// Wilde with [`FACT`] as a paragraph a third of the way through.
pub fn books(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let demo = memreader::demo_books_dir();
    let mut out = Vec::new();
    for (name, sentence, depth) in [
        ("household-stories-grimm.txt", PASS_KEY, 0.5),
        ("intentions-wilde.txt", FACT, 0.33),
    ] {
        let text = std::fs::read_to_string(demo.join(name)).unwrap();
        let mut at = (text.len() as f64 * depth) as usize;
        while !text.is_char_boundary(at) {
            at += 1;
        }
        let at = at + text[at..].find("\n\n").unwrap();
        let staged = format!("{}\n\n{sentence}{}", &text[..at], &text[at..]);
        let path = dir.join(name);
        std::fs::write(&path, staged).unwrap();
        out.push(path);
    }
    out
}

/// A library in `dir` with the books of [`books`] (staged in `dir/books`) ingested.
pub fn library(dir: &Path) -> Library {
    let paths = books(&dir.join("books"));
    let library = Library::open(&dir.join("library")).unwrap();
    let report = library
        .ingest(
            &paths,
            &ingest::IngestOptions::new(PdfIsolation::InProcess),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(report.ingested.len(), 2, "{report:?}");
    library
}

/// The id of the library's document whose file name contains `part`.
pub fn doc_id(library: &Library, part: &str) -> String {
    library
        .documents()
        .unwrap()
        .into_iter()
        .find(|d| d.path.to_string_lossy().contains(part))
        .unwrap_or_else(|| panic!("no document from a file named like {part:?}"))
        .id
}

/// The CLI with `args` on library `lib` and model `model` (on the CPU), not yet started.
pub fn cli_command(lib: &Path, model: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memreader"));
    command
        .arg("--library")
        .arg(lib)
        .arg("--model")
        .arg(model)
        .args(["--device", "cpu"])
        .args(args);
    command
}

/// Runs the CLI with `args` on library `lib` and model `model`.
pub fn cli(lib: &Path, model: &Path, args: &[&str]) -> Output {
    cli_command(lib, model, args).output().unwrap()
}

/// stdout of a CLI run that must succeed.
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

/// stderr of a CLI run that must fail.
pub fn fails(out: Output) -> String {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

/// xorshift64*: the kill points of the crash tests, reproducible from a seed (each test
/// prints its seed with every failure).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a run that a crash test meant to kill ended.
#[derive(Debug)]
pub enum Run {
    /// It exited first, with this status.
    Finished(std::process::ExitStatus),
    /// It was SIGKILLed.
    Killed,
}

/// Waits for `child` until it exits, or SIGKILLs it as soon as `kill_now` (polled every
/// 100 µs while it runs) says so.
pub fn kill_when(child: &mut std::process::Child, mut kill_now: impl FnMut() -> bool) -> Run {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Run::Finished(status);
        }
        if kill_now() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return Run::Killed;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}
