//! Specification of the library: bulk ingestion (idempotent, re-ingesting changed files,
//! recovering interrupted runs, one bad file failing alone), the catalog and search.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use ingest::catalog::Catalog;
use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use ingest::index::Index;
use ingest::{
    parse, slice_chars, split_passages, DocumentRecord, Format, IngestOptions, IngestReport,
    Library, LibraryError, PdfIsolation, SearchOptions, Status,
};

fn options() -> IngestOptions {
    let mut options = IngestOptions::new(PdfIsolation::InProcess);
    options.jobs = 2;
    options
}

fn ingest(library: &Library, paths: &[PathBuf]) -> IngestReport {
    let mut last = None;
    let report = library
        .ingest(paths, &options(), &mut |p| {
            assert!(p.done <= p.total);
            last = Some(p.clone());
        })
        .unwrap();
    let done = report.ingested.len() + report.skipped.len() + report.failed.len();
    if let Some(last) = last {
        assert_eq!((last.done, last.total), (done, done));
        assert_eq!(last.failed, report.failed.len());
    }
    report
}

fn search(library: &Library, query: &str) -> Vec<ingest::Hit> {
    library.search(query, &SearchOptions::default()).unwrap()
}

fn long_text(topic: &str, sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("Note {i} records how the {topic} behaved on that day."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A folder with one good file of each format and one of each kind of bad file.
fn corpus(dir: &Path) {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    let pages = [long_text("glacier", 40), long_text("volcano", 40)];
    write("report.pdf", &fixtures::pdf(&[&pages[0], &pages[1]]));
    let chapters = [
        ("Herons", "The heron waits in the reeds."),
        ("Otters", "Otters slide down the bank."),
    ];
    write(
        "sub/birds.epub",
        &fixtures::epub(
            EpubVersion::Two,
            "River Life",
            "N. Walker",
            &chapters,
            EpubFlaws::default(),
        ),
    );
    write(
        "sub/deeper/birds3.epub",
        &fixtures::epub(
            EpubVersion::Three,
            "Pond Life",
            "N. Walker",
            &[("Frogs", "The frog sings at dusk.")],
            EpubFlaws::default(),
        ),
    );
    write("page.html", b"<html><head><title>Tides</title></head><body><p>The tide turns twice a day near the lighthouse.</p></body></html>");
    write(
        "notes.md",
        b"# Notes\n\nThe **comet** returns every seventy-six years.\n",
    );
    write(
        "story.txt",
        b"The baker rose before dawn to knead the bread.",
    );
    // Bad files.
    write("empty.txt", b"");
    let good = fixtures::pdf(&[&pages[0], &pages[1]]);
    write("truncated.pdf", &good[..good.len() / 2]);
    write(
        "locked.pdf",
        &fixtures::encrypted_pdf(&["secret words"], "hunter2"),
    );
    write("scan.pdf", &fixtures::image_only_pdf(3));
    write("picture.pdf", &fixtures::png());
    write(
        "broken.epub",
        &fixtures::epub(
            EpubVersion::Three,
            "B",
            "A",
            &chapters,
            EpubFlaws {
                missing_spine_item: true,
                ..EpubFlaws::default()
            },
        ),
    );
    write(
        "evil.epub",
        &fixtures::epub(
            EpubVersion::Two,
            "E",
            "A",
            &chapters,
            EpubFlaws {
                path_traversal: true,
                ..EpubFlaws::default()
            },
        ),
    );
    write("binary.txt", b"\x00\x01\x02\x00\x00");
    write("crash.pdf", &fixtures::panicking_pdf());
    // Not picked up when walking a folder: hidden, or not a document extension.
    write(".hidden.txt", b"hidden words");
    write("image.png", &fixtures::png());
}

#[test]
fn bulk_ingestion_reads_good_files_and_reports_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    corpus(&books);
    let library = Library::open(&dir.path().join("lib")).unwrap();
    let report = ingest(&library, std::slice::from_ref(&books));

    let mut ingested: Vec<_> = report.ingested.iter().map(|d| d.title.as_str()).collect();
    ingested.sort();
    assert_eq!(
        ingested,
        [
            "Fixture PDF",
            "Notes",
            "Pond Life",
            "River Life",
            "Tides",
            "story.txt"
        ]
    );

    let failure = |name: &str| {
        report
            .failed
            .iter()
            .find(|f| f.path.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not reported: {:?}", report.failed))
            .to_string()
    };
    let expect = [
        ("empty.txt", "the file is empty (0 bytes)"),
        ("truncated.pdf", "the PDF is truncated"),
        ("locked.pdf", "the PDF is encrypted"),
        ("scan.pdf", "the PDF has no text layer (3 page(s)"),
        (
            "picture.pdf",
            "is a PNG image although its name ends in .pdf",
        ),
        (
            "broken.epub",
            "spine lists OEBPS/Text/chapter 2.xhtml (item \"ch2\"), which is missing",
        ),
        ("evil.epub", "unsafe path \"../../evil.txt\""),
        ("binary.txt", "does not look like plain text"),
        (
            "crash.pdf",
            "the pdf parser crashed on this file: unexpected encoding",
        ),
    ];
    for (name, message) in expect {
        let line = failure(name);
        assert!(line.contains(name) && line.contains(message), "{line}");
    }
    assert_eq!(report.failed.len(), expect.len(), "{:?}", report.failed);
    assert!(report.skipped.is_empty());
    assert!(!report.cancelled);

    // The catalog has every document, failed ones with their error.
    let docs = library.documents().unwrap();
    assert_eq!(docs.iter().filter(|d| d.status == Status::Ready).count(), 6);
    let locked = docs
        .iter()
        .find(|d| d.path.ends_with("locked.pdf"))
        .unwrap();
    assert_eq!(locked.status, Status::Failed);
    assert_eq!(locked.format, Some(Format::Pdf));
    assert!(locked.error.as_deref().unwrap().contains("encrypted"));
    let pdf = docs
        .iter()
        .find(|d| d.path.ends_with("report.pdf"))
        .unwrap();
    assert_eq!((pdf.pages, pdf.format), (2, Some(Format::Pdf)));
    assert_eq!(pdf.id.len(), 64);
    assert_eq!(
        pdf.id,
        blake3::hash(&std::fs::read(&pdf.path).unwrap())
            .to_hex()
            .as_str()
    );
    assert!(pdf.passages >= 2 && pdf.words > 500);

    // Search: hits from the right page and chapter, with highlighted terms and exact ranges.
    let hits = search(&library, "volcano");
    assert!(!hits.is_empty());
    let text = library.text(&pdf.id).unwrap();
    for hit in &hits {
        assert_eq!(hit.title, "Fixture PDF");
        assert_eq!(hit.page, Some(2));
        assert!(!hit.snippet.highlights.is_empty());
        for h in &hit.snippet.highlights {
            assert_eq!(slice_chars(&text.text, h.clone()), "volcano");
            assert!(hit.snippet.range.start <= h.start && h.end <= hit.snippet.range.end);
        }
        assert_eq!(
            slice_chars(&text.text, hit.snippet.range.clone()),
            hit.snippet.text
        );
        assert!(
            hit.range.start <= hit.snippet.range.start && hit.snippet.range.end <= hit.range.end
        );
        assert!(hit.snippet.marked("[", "]").contains("[volcano]"));
    }
    let heron = search(&library, "herons");
    assert_eq!(heron.len(), 1);
    assert_eq!(heron[0].title, "River Life");
    assert_eq!(heron[0].chapter_title.as_deref(), Some("Herons"));
    assert_eq!(heron[0].chapter, Some(0));
    assert_eq!(heron[0].page, None);
    // Stemming: "heron" also finds "Herons"; a filter by document narrows the hits.
    let filtered = library
        .search(
            "heron OR frog",
            &SearchOptions {
                docs: vec![heron[0].doc_id[..10].to_owned()],
                limit: 10,
            },
        )
        .unwrap();
    assert!(filtered.iter().all(|h| h.doc_id == heron[0].doc_id) && !filtered.is_empty());
    assert_eq!(search(&library, "frog").len(), 1);
    assert!(
        search(&library, "hidden").is_empty(),
        "hidden files are not walked"
    );
}

#[test]
fn reingesting_is_idempotent_and_changed_files_replace_their_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    std::fs::create_dir_all(&books).unwrap();
    let a = books.join("a.md");
    std::fs::write(&a, "# Alpha\n\nThe walrus sleeps on the ice.\n").unwrap();
    std::fs::write(books.join("b.txt"), "The pelican dives for fish.").unwrap();
    let library = Library::open(&dir.path().join("lib")).unwrap();
    assert_eq!(
        ingest(&library, std::slice::from_ref(&books))
            .ingested
            .len(),
        2
    );

    let again = ingest(&library, std::slice::from_ref(&books));
    assert!(again.ingested.is_empty() && again.failed.is_empty());
    assert_eq!(again.skipped.len(), 2);
    assert!(again.skipped[0].reason.contains("already in the library"));

    let old_id = library
        .documents()
        .unwrap()
        .into_iter()
        .find(|d| d.path == std::fs::canonicalize(&a).unwrap())
        .unwrap()
        .id;
    std::fs::write(&a, "# Alpha\n\nThe narwhal sleeps under the ice.\n").unwrap();
    let changed = ingest(&library, std::slice::from_ref(&books));
    assert_eq!(changed.ingested.len(), 1);
    assert_eq!(
        changed.ingested[0].replaced.as_deref(),
        Some(old_id.as_str())
    );
    assert_eq!(changed.skipped.len(), 1);
    assert!(
        search(&library, "walrus").is_empty(),
        "old passages are gone"
    );
    assert_eq!(search(&library, "narwhal").len(), 1);
    assert_eq!(library.documents().unwrap().len(), 2);
    assert!(matches!(
        library.text(&old_id),
        Err(LibraryError::NotFound(_))
    ));

    // The same content under another name is skipped, naming the first file.
    std::fs::write(books.join("copy.txt"), "The pelican dives for fish.").unwrap();
    let copy = ingest(&library, &[books.join("copy.txt")]);
    assert!(
        copy.skipped[0].reason.contains("b.txt"),
        "{:?}",
        copy.skipped
    );
}

#[test]
fn an_interrupted_run_is_invisible_and_redone_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let book = dir.path().join("owl.txt");
    std::fs::write(&book, "The owl hunts at night over the meadow.").unwrap();
    drop(Library::open(&lib).unwrap());

    // A crash between the index commit and marking the document ready.
    let bytes = std::fs::read(&book).unwrap();
    let id = blake3::hash(&bytes).to_hex().to_string();
    let doc = parse(Format::Text, &bytes).unwrap();
    {
        let index = Index::open(&lib.join("index")).unwrap();
        let mut writer = index.writer().unwrap();
        writer.add(&doc, &split_passages(&doc, &id)).unwrap();
        writer.commit().unwrap();
        let catalog = Catalog::open(&lib.join("catalog.sqlite")).unwrap();
        catalog
            .put(&DocumentRecord {
                id: id.clone(),
                path: book.clone(),
                format: Some(Format::Text),
                title: None,
                author: None,
                language: None,
                status: Status::Indexing,
                bytes: bytes.len() as u64,
                pages: 0,
                chapters: 0,
                passages: 1,
                words: 8,
                error: None,
                added_at: 0,
                updated_at: 0,
            })
            .unwrap();
        assert_eq!(index.count(&id).unwrap(), 1);
    }

    let library = Library::open(&lib).unwrap();
    assert!(
        search(&library, "owl").is_empty(),
        "half-indexed passages must not be visible"
    );
    // Any ingestion first cleans up and redoes the interrupted document.
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "The fox waits by the hedge.").unwrap();
    let report = ingest(&library, &[other]);
    assert_eq!(report.recovered, 1);
    assert_eq!(report.ingested.len(), 2);
    assert_eq!(search(&library, "owl").len(), 1);
    assert_eq!(library.document(&id).unwrap().status, Status::Ready);
}

#[test]
fn cancelling_leaves_files_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("a.txt");
    std::fs::write(&book, "Some words.").unwrap();
    let library = Library::open(&dir.path().join("lib")).unwrap();
    let options = options();
    options.cancel.store(true, Ordering::SeqCst);
    let report = library
        .ingest(std::slice::from_ref(&book), &options, &mut |_| {})
        .unwrap();
    assert!(report.cancelled);
    assert_eq!(report.not_started, 1);
    assert!(library.documents().unwrap().is_empty());
    assert_eq!(ingest(&library, &[book]).ingested.len(), 1);
}

#[test]
fn removing_a_document_deletes_its_passages_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("a.txt");
    std::fs::write(&book, "The badger digs a sett.").unwrap();
    let library = Library::open(&dir.path().join("lib")).unwrap();
    let id = ingest(&library, &[book]).ingested[0].id.clone();
    assert!(matches!(
        library.remove("zzzz"),
        Err(LibraryError::NotFound(_))
    ));
    let removed = library.remove(&id[..8]).unwrap();
    assert_eq!(removed.id, id);
    assert!(search(&library, "badger").is_empty());
    assert!(library.documents().unwrap().is_empty());
    assert!(!library
        .dir()
        .join("documents")
        .join(format!("{id}.json"))
        .exists());
}

#[test]
fn missing_paths_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("a.txt");
    std::fs::write(&book, "The mole tunnels.").unwrap();
    let library = Library::open(&dir.path().join("lib")).unwrap();
    let report = ingest(&library, &[dir.path().join("nope.pdf"), book]);
    assert_eq!(report.ingested.len(), 1);
    assert!(
        report.failed[0].to_string().contains("nope.pdf"),
        "{:?}",
        report.failed
    );
}

#[test]
fn hits_and_highlights_are_char_ranges_in_text_with_accents_cjk_and_emoji() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("carnet.txt");
    let text: String = (0..80)
        .map(|i| match i % 4 {
            0 => format!("Le café 東京 ouvrit à l'aube, jour {i}. "),
            1 => format!("Un crabe 🦀 marchait sur la plage {i}. "),
            2 => format!("Nobody in Zürich saw the volcano on day {i}. "),
            _ => format!("Ça ne faisait rien à personne {i}. "),
        })
        .collect();
    std::fs::write(&book, text).unwrap();
    let library = Library::open(&dir.path().join("lib")).unwrap();
    let id = ingest(&library, &[book]).ingested[0].id.clone();
    let doc = library.text(&id).unwrap();
    for (query, term) in [
        ("volcano", "volcano"),
        ("zürich", "Zürich"),
        ("café", "café"),
    ] {
        let hits = search(&library, query);
        assert!(!hits.is_empty(), "{query}");
        for hit in &hits {
            assert_eq!(
                slice_chars(&doc.text, hit.snippet.range.clone()),
                hit.snippet.text
            );
            assert!(!hit.snippet.highlights.is_empty());
            for h in &hit.snippet.highlights {
                assert_eq!(slice_chars(&doc.text, h.clone()), term, "{query}");
            }
            assert!(hit.range.start <= hit.snippet.range.start);
            assert!(hit.snippet.range.end <= hit.range.end);
            assert!(hit.range.end <= doc.text.chars().count());
            assert!(
                hit.snippet.marked("[", "]").contains(&format!("[{term}]")),
                "{}",
                hit.snippet.marked("[", "]")
            );
        }
    }
}

#[test]
fn a_version_1_library_of_byte_offsets_is_ingested_again_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let book = dir.path().join("owl.txt");
    std::fs::write(&book, "L'chouette 🦉 hunts at night over the prairie.").unwrap();
    ingest(&Library::open(&lib).unwrap(), std::slice::from_ref(&book));
    let catalog = rusqlite::Connection::open(lib.join("catalog.sqlite")).unwrap();
    catalog.pragma_update(None, "user_version", 1).unwrap();
    drop(catalog);

    let library = Library::open(&lib).unwrap();
    assert_eq!(library.documents().unwrap()[0].status, Status::Indexing);
    assert!(search(&library, "prairie").is_empty());
    let report = ingest(&library, &[]);
    assert_eq!((report.recovered, report.ingested.len()), (1, 1));
    let hits = search(&library, "prairie");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].snippet.highlights, vec![37..44]);
}
