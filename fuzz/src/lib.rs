//! Shared parts of the fuzz targets: the model configuration the model-file targets load
//! against, the invariants every parsed document must keep, and the library and model that
//! session snapshots are imported into.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use ingest::{split_passages, CharIndex, Document, MAX_WORDS};
use memmamba::{Config, MemMamba};
use memreader::library::Library;
use memreader::model::Model;
use memreader::snapshot::{self, ImportReport};

/// A very small but complete model configuration (notes, pool, cross-layer reads), so that
/// seed state and weights files are a few KiB and each run allocates little.
pub fn fuzz_config() -> Config {
    Config {
        vocab_size: 16,
        d_model: 8,
        n_layer: 2,
        d_state: 2,
        d_conv: 2,
        expand: 1,
        dt_rank: 1,
        pool_slots: 2,
        d_note: 4,
        heads: 1,
        chunk: 2,
        cross_layer_period: 2,
        ..Config::tiny()
    }
}

/// A freshly initialised model of [`fuzz_config`] on the CPU.
pub fn fuzz_model() -> MemMamba {
    let varmap = candle_nn::VarMap::new();
    MemMamba::init(&fuzz_config(), &varmap, &Device::Cpu, 0).expect("the fuzz config is valid")
}

/// What every parser promises of a document, and what passage splitting promises of it:
/// sections (char ranges) ordered and inside the text, passages inside the text, in order, not
/// overlapping, of at most [`MAX_WORDS`] words, pointing at existing chapters and pages.
pub fn check_document(doc: &Document) {
    let len = doc.text.chars().count();
    let index = CharIndex::new(&doc.text);
    for sections in [&doc.chapters, &doc.pages] {
        let mut previous_start = 0;
        for section in sections {
            assert!(
                section.range.start <= section.range.end && section.range.end <= len,
                "section {:?} outside a text of {len} chars",
                section.range
            );
            assert!(
                section.range.start >= previous_start,
                "sections out of order"
            );
            previous_start = section.range.start;
        }
    }
    let passages = split_passages(doc, "fuzz");
    let mut previous_end = 0;
    for passage in &passages {
        assert!(
            previous_end <= passage.range.start
                && passage.range.start < passage.range.end
                && passage.range.end <= len,
            "passage {:?} after {previous_end} in a text of {len} chars",
            passage.range
        );
        previous_end = passage.range.end;
        assert!(passage.chapter.is_none_or(|c| c < doc.chapters.len()));
        assert!(passage.page.is_none_or(|p| p < doc.pages.len()));
        let words = index
            .slice(passage.range.clone())
            .split_whitespace()
            .count();
        assert!(words <= MAX_WORDS, "a passage of {words} words");
    }
}

/// The configuration of the model that session snapshots are made and imported with:
/// [`fuzz_config`] with the bundled tokenizer's vocabulary (which `Model::load` requires), so
/// that its states are a few KiB.
pub fn snapshot_config() -> Config {
    Config {
        vocab_size: 16384,
        ..fuzz_config()
    }
}

/// Writes the snapshot model (`config.json`, `model.safetensors`) into `dir`: the same bytes
/// in every process (fresh weights of a fixed seed), so that the seed snapshots (whose
/// manifests name the weights' BLAKE3) match the model a target imports them with.
pub fn write_snapshot_model(dir: &Path) {
    std::fs::create_dir_all(dir).expect("the model folder can be made");
    let cfg = snapshot_config();
    let varmap = candle_nn::VarMap::new();
    let net = MemMamba::init(&cfg, &varmap, &Device::Cpu, 0).expect("the config is valid");
    net.save(dir.join("model.safetensors"))
        .expect("the weights can be written");
    std::fs::write(dir.join("config.json"), cfg.to_json_string())
        .expect("the config can be written");
}

/// A folder of its own under the temporary directory (`/dev/shm` where there is one, so that
/// the files written for each input cost no disk I/O), emptied first. The folders of earlier
/// fuzzing processes that are gone (libFuzzer exits without cleaning up) are removed.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_owned()
    } else {
        std::env::temp_dir()
    };
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let pid = file_name.rsplit('-').next().unwrap_or_default();
        if Path::new("/proc/self").exists()
            && file_name.starts_with("memreader-fuzz-")
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("memreader-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the scratch folder can be made");
    dir
}

/// The input of `session_snapshot_structured`: a manifest length (u32, little-endian, cut to
/// what the input holds), that many bytes of manifest, then the states region.
pub fn split_structured(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return (&[], &[]);
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    rest.split_at(len)
}

/// [`split_structured`]'s input for a snapshot file: its manifest and states region.
pub fn join_structured(snapshot: &[u8]) -> Vec<u8> {
    let manifest_len = u64::from_le_bytes(snapshot[24..32].try_into().expect("8 bytes")) as usize;
    let mut out = (manifest_len as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&snapshot[32..snapshot.len() - 32]);
    out
}

/// A library (empty: no documents, memories or sessions) and the snapshot model, once per
/// process, and the file each input is written to before it is imported.
struct Importer {
    library: Library,
    model: Model,
    file: PathBuf,
}

fn importer() -> &'static Importer {
    static IMPORTER: OnceLock<Importer> = OnceLock::new();
    IMPORTER.get_or_init(|| {
        let dir = scratch_dir("snapshot-import");
        write_snapshot_model(&dir.join("model"));
        Importer {
            library: Library::open(&dir.join("library")).expect("a fresh library opens"),
            model: Model::load(&dir.join("model"), &Device::Cpu).expect("the model loads"),
            file: dir.join("input.memsnap"),
        }
    })
}

/// The names in `dir` (none if it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.expect("a readable entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Imports `bytes` as a snapshot file with `memreader snapshot import`'s code into an empty
/// library, and checks what import promises: a refused file is refused with a message that
/// names it and leaves the library untouched; an imported one leaves exactly its documents'
/// memories, each loading for the model with the manifest's token count, and its session
/// listing them. The library is emptied again after a successful import. Returns the report
/// or the error's message.
pub fn import_snapshot(bytes: &[u8]) -> Result<ImportReport, String> {
    let im = importer();
    std::fs::write(&im.file, bytes).expect("the input can be written");
    let memories = memreader::memory::memories_dir(&im.library);
    let sessions = im.library.dir().join("sessions");
    match snapshot::import(&im.library, &im.model, &im.file, None) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(&im.file.display().to_string()),
                "the error does not name the file: {message}"
            );
            assert!(
                entries(&memories).is_empty() && entries(&sessions).is_empty(),
                "a refused snapshot wrote to the library: {message}"
            );
            Err(message)
        }
        Ok(report) => {
            let ids: Vec<String> = report.documents.iter().map(|d| d.id.clone()).collect();
            let session = memreader::session::load(&im.library, &report.session)
                .expect("the imported session loads");
            assert_eq!(session.documents, ids);
            assert_eq!(session.history.len(), report.questions);
            // a state file and an info file per document, nothing else
            assert_eq!(entries(&memories).len(), 2 * ids.len());
            for doc in &report.documents {
                let info = memreader::memory::info(&im.library, &doc.id)
                    .expect("an imported memory's info reads")
                    .expect("and is there");
                assert_eq!(info.weights_blake3, im.model.weights_blake3());
                let path = memreader::memory::state_path(&im.library, &doc.id);
                let state = memmamba::MemoryState::load(im.model.config(), &path, &Device::Cpu)
                    .expect("an imported memory loads");
                assert_eq!(state.tokens_read(), doc.tokens_read);
                assert_eq!(info.tokens_read, doc.tokens_read);
            }
            for dir in [&memories, &sessions] {
                std::fs::remove_dir_all(dir).expect("the library can be emptied");
            }
            Ok(report)
        }
    }
}
