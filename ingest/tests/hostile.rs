//! Hostile and broken files, generated here: encrypted PDFs of every revision with and without
//! a user password, truncated and damaged PDFs, PDF bombs, EPUB zip bombs (declared and
//! actual), path-traversal entries, EPUBs without their container or package document,
//! billion-laughs XML, deeply nested markup, huge single-line text, binary files named as
//! books, NUL-filled files, invalid UTF-8 and UTF-16. Each must end in its specific error or a
//! correct document: no panic, no hang past its time limit, no memory blow-up.
//!
//! Then real files: the test PDFs of qpdf and pypdf (damaged, looping, encrypted with every
//! revision, found by OSS-Fuzz, ...) and the test EPUBs of FlightCrew, fast-ebook and pandoc
//! (no container, missing spine items, no spine, wrong mimetype, ...), which
//! scripts/hostile-corpus.sh downloads.
//!
//! The cases run one at a time (so that each one's peak memory can be measured) on a thread
//! with a time limit. PDFs go through a real worker process with time and memory limits, as
//! in the app: this test binary started again runs [`pdf_worker_entry`].

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use ingest::{parse, sniff, Document, Format, IngestOptions, Library, PdfIsolation, PdfWorker};
use lopdf::encryption::crypt_filters::{Aes128CryptFilter, Aes256CryptFilter, CryptFilter};
use lopdf::{EncryptionState, EncryptionVersion, Object, Permissions, StringFormat};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Set in the environment of this binary when it is started as a PDF worker.
const WORKER_VARIABLE: &str = "INGEST_HOSTILE_PDF_WORKER";

/// The worker's entry point, not a test: the PDF worker processes are this binary started
/// with `pdf_worker_entry --exact --ignored FILE` and [`WORKER_VARIABLE`] set; it extracts
/// FILE as `memreader __extract-pdf FILE` does and exits. Run directly, it does nothing.
#[test]
#[ignore = "the PDF worker's entry point; the hostile PDF cases start it"]
fn pdf_worker_entry() {
    if std::env::var_os(WORKER_VARIABLE).is_some() {
        let path = std::env::args_os()
            .last()
            .expect("the file is the last argument");
        std::process::exit(ingest::worker_main(Path::new(&path)));
    }
}

fn worker() -> PdfWorker {
    // The workers inherit it; this process never runs the (ignored) entry itself.
    std::env::set_var(WORKER_VARIABLE, "1");
    let mut worker = PdfWorker::new(
        std::env::current_exe().expect("the test binary's path"),
        ["pdf_worker_entry", "--exact", "--ignored", "--nocapture"]
            .map(Into::into)
            .to_vec(),
    );
    worker.timeout = Duration::from_secs(20);
    worker.memory_limit_mib = 1024;
    worker
}

/// One case at a time, so that peak memory is one case's.
static SERIAL: Mutex<()> = Mutex::new(());

/// A field of /proc/self/status in MiB (`VmRSS`, `VmHWM`).
fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb >> 10)
        .expect("the field is there")
}

/// Runs `f` on a thread of its own and returns its result; fails the test if it panics, takes
/// longer than `limit`, or raises the process's peak resident memory more than `memory_mib`
/// above what it was when the case started.
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    memory_mib: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Resets the peak (VmHWM) to the current resident size (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").expect("the peak RSS can be reset");
    let before = status_mib("VmRSS");
    let started = Instant::now();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    let result = match receive.recv_timeout(limit) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    };
    let grown = status_mib("VmHWM").saturating_sub(before);
    assert!(
        grown <= memory_mib,
        "{what}: peak memory grew by {grown} MiB (limit {memory_mib} MiB)"
    );
    eprintln!("{what}: {:?}, peak +{grown} MiB", started.elapsed());
    result
}

/// Reads a file as the library does: format by content, PDFs in a worker process.
fn read(name: &str, bytes: Vec<u8>) -> Result<Document, String> {
    let format = sniff(&bytes, Path::new(name)).map_err(|e| e.to_string())?;
    if format != Format::Pdf {
        return parse(format, &bytes).map_err(|e| e.to_string());
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes).expect("the file is written");
    worker()
        .extract(&path)
        .and_then(ingest::formats::pdf::pdf_document)
        .map_err(|e| e.to_string())
}

/// [`read`] under [`bounded`] with `seconds` and `memory_mib`.
fn read_bounded(
    name: &str,
    bytes: Vec<u8>,
    seconds: u64,
    memory_mib: u64,
) -> Result<Document, String> {
    let owned = name.to_owned();
    bounded(name, Duration::from_secs(seconds), memory_mib, move || {
        read(&owned, bytes)
    })
}

/// Asserts that reading fails with a message containing `expected`.
fn assert_error(name: &str, bytes: Vec<u8>, expected: &str) -> String {
    match read_bounded(name, bytes, 30, 256) {
        Ok(doc) => panic!(
            "{name}: read {} bytes of text, expected {expected:?}",
            doc.text.len()
        ),
        Err(message) => {
            assert!(message.contains(expected), "{name}: {message}");
            message
        }
    }
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

const PAGES: [&str; 2] = [
    "The orchard was quiet in the early light.",
    "Down in the quarry the stones were cold.",
];

// ---------------------------------------------------------------------------------------------
// PDF

/// The fixture PDF encrypted with `version`'s handler: 1 (RC4 40-bit), 2 (RC4 128-bit),
/// 4 (AES-128) or 5 (AES-256, revision 6).
fn encrypted(version: u8, user_password: &str) -> Vec<u8> {
    let mut doc = lopdf::Document::load_mem(&fixtures::pdf(&PAGES)).expect("the fixture loads");
    let id = Object::String(b"0123456789abcdef".to_vec(), StringFormat::Literal);
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
    let owner_password = "owner-secret";
    let permissions = Permissions::all();
    let filters = |filter: Arc<dyn CryptFilter>| BTreeMap::from([(b"StdCF".to_vec(), filter)]);
    let key = [7u8; 32];
    let state = EncryptionState::try_from(match version {
        1 => EncryptionVersion::V1 {
            document: &doc,
            owner_password,
            user_password,
            permissions,
        },
        2 => EncryptionVersion::V2 {
            document: &doc,
            owner_password,
            user_password,
            key_length: 128,
            permissions,
        },
        4 => EncryptionVersion::V4 {
            document: &doc,
            encrypt_metadata: true,
            crypt_filters: filters(Arc::new(Aes128CryptFilter)),
            stream_filter: b"StdCF".to_vec(),
            string_filter: b"StdCF".to_vec(),
            owner_password,
            user_password,
            permissions,
        },
        _ => EncryptionVersion::V5 {
            encrypt_metadata: true,
            crypt_filters: filters(Arc::new(Aes256CryptFilter)),
            file_encryption_key: &key,
            stream_filter: b"StdCF".to_vec(),
            string_filter: b"StdCF".to_vec(),
            owner_password,
            user_password,
            permissions,
        },
    })
    .expect("valid encryption parameters");
    doc.encrypt(&state).expect("the document encrypts");
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("the document saves");
    out
}

#[test]
fn encrypted_pdfs_of_every_revision_open_with_an_empty_user_password() {
    for version in [1, 2, 4, 5] {
        let name = format!("encrypted-v{version}-empty.pdf");
        let doc = read_bounded(&name, encrypted(version, ""), 30, 256)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(words(&doc.text).contains(PAGES[1]), "{name}: {}", doc.text);
    }
}

#[test]
fn encrypted_pdfs_of_every_revision_with_a_password_are_refused_as_encrypted() {
    for version in [1, 2, 4, 5] {
        let name = format!("encrypted-v{version}-secret.pdf");
        let message = assert_error(&name, encrypted(version, "secret"), "encrypted");
        assert!(message.contains("needs a password"), "{name}: {message}");
    }
}

#[test]
fn an_aes_128_pdf_without_a_key_length_opens_with_an_empty_user_password() {
    // V 4 keys are 128 bits, /Length or not; lopdf alone takes a missing one as 40 bits and
    // needed a password (pypdf's r4-aes-v2-no-key-length.pdf).
    let mut bytes = encrypted(4, "");
    let length = b"/Length 128";
    let at = bytes
        .windows(length.len())
        .position(|w| w == length)
        .expect("lopdf writes the key length");
    assert!(
        String::from_utf8_lossy(&bytes[at.saturating_sub(300)..at + 300]).contains("/Standard"),
        "the first /Length 128 is the encryption dictionary's"
    );
    // Blanked out, so that every offset stays right.
    bytes[at..at + length.len()].fill(b' ');
    let doc = read_bounded("no-key-length.pdf", bytes, 30, 256).unwrap();
    assert!(words(&doc.text).contains(PAGES[1]), "{}", doc.text);
}

#[test]
fn truncated_pdfs_are_reported_as_truncated() {
    let bytes = fixtures::pdf(&PAGES);
    for percent in [1, 10, 30, 50, 70, 90] {
        let cut = bytes[..bytes.len() * percent / 100].to_vec();
        assert_error(&format!("cut-{percent}.pdf"), cut, "the PDF is truncated");
    }
}

#[test]
fn pdfs_with_damaged_structure_are_malformed() {
    let mut garbage = b"%PDF-1.7\n".to_vec();
    garbage.extend(std::iter::repeat_n(b"\xde\xad\xbe\xef".as_slice(), 500).flatten());
    garbage.extend_from_slice(b"\n%%EOF\n");
    assert_error("garbage.pdf", garbage, "damaged or malformed");

    // Every "obj" keyword broken: the cross-reference table points at nothing.
    let text = String::from_utf8_lossy(&fixtures::pdf(&PAGES)).replace(" obj", " jbo");
    assert_error("no-objects.pdf", text.into_bytes(), "damaged or malformed");
}

/// A minimal PDF, its objects given in order (numbered from 1, the first is the catalog), with
/// a correct cross-reference table.
fn raw_pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// One page whose content stream is `content` (with `filter`, if any), in Helvetica.
fn one_page_pdf(content: &[u8], filter: Option<&str>) -> Vec<u8> {
    let filter = filter.map_or(String::new(), |f| format!(" /Filter /{f}"));
    let mut stream = format!("<< /Length {}{filter} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    raw_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        stream,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    ])
}

#[test]
fn a_page_tree_that_loops_back_on_itself_ends() {
    let pdf = raw_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>".to_vec(),
    ]);
    assert_error("cycle.pdf", pdf, "the PDF has no pages");
}

#[test]
fn a_huge_page_is_read_within_the_limits() {
    let mut content = b"BT /F1 10 Tf 72 700 Td\n".to_vec();
    for i in 0..40_000 {
        content
            .extend_from_slice(format!("(Line {i} of a very long page.) Tj 0 -1 Td\n").as_bytes());
    }
    content.extend_from_slice(b"ET");
    let doc = read_bounded("huge-page.pdf", one_page_pdf(&content, None), 60, 256).unwrap();
    assert!(doc.text.contains("Line 39999 of a very long page."));
}

#[test]
fn a_deflate_bomb_in_a_pdf_stays_in_its_worker() {
    // 2 GiB of zeros in a 2 MiB stream: the worker's memory limit stops it.
    let stream = zlib_zeros(2 << 30);
    let message = assert_error(
        "bomb.pdf",
        one_page_pdf(&stream, Some("FlateDecode")),
        "ran out of memory (limit 1024 MiB)",
    );
    assert!(message.contains("stopped it"), "{message}");
}

/// A stream object: `dict`'s entries and `content`, with its /Length.
fn stream(dict: &str, content: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", content.len()).into_bytes();
    out.extend_from_slice(content);
    out.extend_from_slice(b"\nendstream");
    out
}

/// The text of every page, extracted in this process: no worker, no catching, so a panic in
/// lopdf or pdf-extract fails the test.
fn extract_here(bytes: &[u8]) -> Result<String, String> {
    let pdf = ingest::formats::pdf::extract_pdf(bytes).map_err(|e| e.to_string())?;
    Ok(words(&pdf.pages.join(" ")))
}

// pdf-extract panicked on each of the following (qpdf's and pypdf's test files, see
// `real_hostile_files_end_in_their_error_or_a_document`); vendor/pdf-extract now does what
// poppler does with them (vendor/README.md lists the patches).

#[test]
fn content_operators_with_missing_or_wrong_operands_are_skipped() {
    let content = b"BT /F1 12 Tf 72 700 Td (Kept. ) Tj\n\
        12 Tf (Still Helvetica. ) Tj\n\
        7 Tj 0 -14 /F1 Td (Kept too.) Tj\n\
        1 0 0 1 v\n\
        /F9 12 Tf (Shown without a font.) Tj\n\
        ET";
    let text = extract_here(&one_page_pdf(content, None)).unwrap();
    // Too few operands (`12 Tf`), a number for a string (`7 Tj`), a name for a number (`Td`),
    // a curve without a current point: skipped. A font that is not in the page's resources
    // sets no font, and text shown without one is not shown.
    assert_eq!(text, "Kept. Still Helvetica. Kept too.");
}

#[test]
fn a_content_stream_that_does_not_parse_fails_its_page_alone() {
    // An inline image that runs to the end of the stream (qpdf's eof-in-inline-image.pdf).
    let broken = b"BT /F1 12 Tf 72 700 Td (Lost.) Tj ET BI /W 8 /H 8 /BPC 8 /CS /G ID \x00\x01";
    let message = extract_here(&one_page_pdf(broken, None)).unwrap_err();
    assert!(
        message.starts_with("the PDF is damaged or malformed: page 1: ")
            && message.contains("invalid content stream"),
        "{message}"
    );

    let font = "/Resources << /Font << /F1 6 0 R >> >> /MediaBox [0 0 612 792]";
    let two_pages = raw_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".to_vec(),
        format!("<< /Type /Page /Parent 2 0 R /Contents 5 0 R {font} >>").into_bytes(),
        format!("<< /Type /Page /Parent 2 0 R /Contents 7 0 R {font} >>").into_bytes(),
        stream("", broken),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        stream("", b"BT /F1 12 Tf 72 700 Td (Page two is read.) Tj ET"),
    ]);
    assert_eq!(extract_here(&two_pages).unwrap(), "Page two is read.");
}

#[test]
fn form_xobjects_use_the_pages_resources_and_are_drawn_once() {
    // The form's resources lack the font it uses, which the page's have (qpdf's
    // form-xobjects-some-resources1.pdf); the form draws itself; the image's data is not a
    // content stream.
    let pdf = raw_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R >> /XObject << /Fx 6 0 R /Im 7 0 R >> >> >>"
            .to_vec(),
        stream(
            "",
            b"/Im Do /Fx Do BT /F1 12 Tf 72 600 Td (On the page.) Tj ET /Nothing Do",
        ),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        stream(
            "/Type /XObject /Subtype /Form /BBox [0 0 612 792] \
             /Resources << /XObject << /Fx 6 0 R >> >>",
            b"BT /F1 12 Tf 72 700 Td (In the form.) Tj ET /Fx Do",
        ),
        stream(
            "/Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray \
             /BitsPerComponent 8",
            b"((\xff",
        ),
    ]);
    assert_eq!(extract_here(&pdf).unwrap(), "In the form. On the page.");
}

#[test]
fn a_page_without_a_media_box_and_a_font_whose_to_unicode_is_broken_are_read() {
    // qpdf's page-no-content.pdf and issue-449.pdf have no /MediaBox; pypdf's issue-301.pdf
    // has a /ToUnicode that is a dictionary; a box of three numbers is no box either.
    let pdf = raw_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /ArtBox [0 0 612] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        stream("", b"BT /F1 12 Tf 72 700 Td (No media box.) Tj ET"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding \
           /ToUnicode << /Filter /FlateDecode /Length 334 >> >>"
            .to_vec(),
    ]);
    assert_eq!(extract_here(&pdf).unwrap(), "No media box.");
}

#[test]
fn references_to_missing_objects_are_null_and_fonts_without_names_are_simple_fonts() {
    // Found by running the `pdf` fuzz target's corpus through the worker's extraction (88 of
    // 4 809 inputs): a reference to an object that is not there is null (ISO 32000-1,
    // 7.3.10), as is an entry whose value is null; a font without /Subtype and /BaseFont.
    let pdf = raw_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R /Gone 99 0 R >> >> >>"
            .to_vec(),
        stream(
            "",
            b"BT /Gone 12 Tf (Not shown.) Tj /F1 12 Tf 72 700 Td (Shown without a name.) Tj ET",
        ),
        b"<< /Type /Font /Encoding /WinAnsiEncoding /FontDescriptor 98 0 R /ToUnicode 97 0 R >>"
            .to_vec(),
    ]);
    assert_eq!(extract_here(&pdf).unwrap(), "Shown without a name.");
}

/// A zip archive with one deflated entry `name` holding `len` zero bytes (written in pieces,
/// so never held whole), plus `more` entries as given.
fn zip_with_zeros(name: &str, len: u64, more: &[(&str, &[u8])]) -> Vec<u8> {
    zip_filled(name, len, 0, more)
}

/// [`zip_with_zeros`] with `fill` bytes instead of zeros.
fn zip_filled(name: &str, len: u64, fill: u8, more: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(len >= u64::from(u32::MAX));
    for (entry, body) in more {
        zip.start_file(*entry, deflated).unwrap();
        zip.write_all(body).unwrap();
    }
    zip.start_file(name, deflated).unwrap();
    let piece = vec![fill; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        zip.write_all(&piece[..n]).unwrap();
        left -= n as u64;
    }
    zip.finish().unwrap().into_inner()
}

/// A zlib stream (what a PDF's /FlateDecode holds) of `len` zeros: the deflate data of a zip
/// entry between a zlib header and the Adler-32 of the zeros.
fn zlib_zeros(len: u64) -> Vec<u8> {
    let archive = zip_with_zeros("zeros", len, &[]);
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let mut raw = zip.by_index_raw(0).unwrap();
    let mut out = vec![0x78, 0x9c];
    std::io::copy(&mut raw, &mut out).unwrap();
    // Adler-32 of n zeros: a = 1, b = n mod 65521.
    let adler = (((len % 65521) as u32) << 16) | 1;
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// EPUB

const CONTAINER: &str = r#"<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#;

/// A package document whose spine lists `spine` (manifest ids `c0`, `c1`, ... for each href).
fn opf(spine: &[&str]) -> String {
    let mut manifest = String::new();
    let mut refs = String::new();
    for (i, href) in spine.iter().enumerate() {
        manifest.push_str(&format!(
            r#"<item id="c{i}" href="{href}" media-type="application/xhtml+xml"/>"#
        ));
        refs.push_str(&format!(r#"<itemref idref="c{i}"/>"#));
    }
    format!(
        r#"<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Hostile</dc:title></metadata>
<manifest>{manifest}</manifest><spine>{refs}</spine></package>"#
    )
}

/// An EPUB of the given entries after `mimetype`, all deflated.
fn epub(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    for (name, body) in entries {
        zip.start_file(*name, deflated).unwrap();
        zip.write_all(body).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const CHAPTER: &[u8] = b"<html><body><h1>One</h1><p>A quiet chapter.</p></body></html>";

#[test]
fn an_epub_entry_that_inflates_past_the_cap_is_refused_without_reading_it_all() {
    // 1 GiB of zeros as a chapter: about 1 MiB on disk.
    let opf = opf(&["bomb.xhtml"]);
    let bytes = zip_with_zeros(
        "OEBPS/bomb.xhtml",
        1 << 30,
        &[
            ("META-INF/container.xml", CONTAINER.as_bytes()),
            ("OEBPS/content.opf", opf.as_bytes()),
        ],
    );
    assert!(bytes.len() < 4 << 20);
    let message = assert_error("bomb.epub", bytes, "is larger than 32 MiB");
    assert!(message.contains("OEBPS/bomb.xhtml"), "{message}");
}

/// Sets the uncompressed size that the central directory declares for every entry.
fn declare_size(archive: &mut [u8], size: u32) {
    let mut at = 0;
    while let Some(found) = archive[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let header = at + found;
        archive[header + 24..header + 28].copy_from_slice(&size.to_le_bytes());
        at = header + 4;
    }
}

#[test]
fn an_epub_entry_that_declares_a_huge_size_is_refused_before_inflating() {
    let opf = opf(&["ch.xhtml"]);
    let mut bytes = epub(&[
        ("META-INF/container.xml", CONTAINER.as_bytes()),
        ("OEBPS/content.opf", opf.as_bytes()),
        ("OEBPS/ch.xhtml", CHAPTER),
    ]);
    declare_size(&mut bytes, u32::MAX - 1);
    assert_error("declared.epub", bytes, "is larger than 32 MiB");
}

#[test]
fn an_epub_entry_that_inflates_past_its_declared_size_is_cut_at_the_cap() {
    // Declares 100 bytes, inflates to 64 MiB.
    let opf = opf(&["bomb.xhtml"]);
    let mut bytes = zip_with_zeros(
        "OEBPS/bomb.xhtml",
        64 << 20,
        &[
            ("META-INF/container.xml", CONTAINER.as_bytes()),
            ("OEBPS/content.opf", opf.as_bytes()),
        ],
    );
    declare_size(&mut bytes, 100);
    let message = match read_bounded("liar.epub", bytes, 30, 256) {
        Ok(_) => panic!("liar.epub was read"),
        Err(message) => message,
    };
    assert!(
        message.contains("is larger than 32 MiB") || message.contains("not a readable zip"),
        "{message}"
    );
}

#[test]
fn an_epub_whose_spine_repeats_a_large_entry_stops_at_the_total_cap() {
    // A 30 MiB chapter of spaces (under the per-entry cap) listed 100 times: 3 GiB to inflate.
    let spine = vec!["big.xhtml"; 100];
    let opf = opf(&spine);
    let bytes = zip_filled(
        "OEBPS/big.xhtml",
        30 << 20,
        b' ',
        &[
            ("META-INF/container.xml", CONTAINER.as_bytes()),
            ("OEBPS/content.opf", opf.as_bytes()),
        ],
    );
    assert_error(
        "repeated.epub",
        bytes,
        "inflate to more than 256 MiB in all",
    );
}

#[test]
fn epub_entries_with_unsafe_paths_are_refused() {
    for name in ["../../evil.txt", "/etc/passwd", "OEBPS/../../evil.xhtml"] {
        let bytes = epub(&[
            ("META-INF/container.xml", CONTAINER.as_bytes()),
            (name, b"pwned"),
        ]);
        let message = assert_error(&format!("{name}.epub"), bytes, "unsafe path");
        assert!(message.contains(name), "{message}");
    }
    let bytes = fixtures::epub(
        EpubVersion::Three,
        "T",
        "A",
        &[("One", "Text.")],
        EpubFlaws {
            path_traversal: true,
            ..EpubFlaws::default()
        },
    );
    assert_error("traversal.epub", bytes, "../../evil.txt");
}

#[test]
fn epubs_missing_their_container_or_package_document_name_what_is_missing() {
    let no_container = epub(&[("OEBPS/content.opf", opf(&["ch.xhtml"]).as_bytes())]);
    // Without container.xml the zip is not recognised as an EPUB unless `mimetype` says so.
    assert_error(
        "no-container.epub",
        no_container,
        "has no META-INF/container.xml",
    );

    let no_opf = epub(&[("META-INF/container.xml", CONTAINER.as_bytes())]);
    assert_error(
        "no-opf.epub",
        no_opf,
        "has no package document OEBPS/content.opf",
    );

    let no_rootfile = epub(&[("META-INF/container.xml", b"<container/>")]);
    assert_error("no-rootfile.epub", no_rootfile, "names no root file");

    let broken_opf = epub(&[
        ("META-INF/container.xml", CONTAINER.as_bytes()),
        ("OEBPS/content.opf", b"<package><manifest>"),
    ]);
    assert_error(
        "broken-opf.epub",
        broken_opf,
        "content.opf is not well-formed XML",
    );

    let missing = fixtures::epub(
        EpubVersion::Two,
        "T",
        "A",
        &[("One", "Text.")],
        EpubFlaws {
            missing_spine_item: true,
            ..EpubFlaws::default()
        },
    );
    assert_error("missing-item.epub", missing, "missing from the archive");
}

#[test]
fn billion_laughs_in_an_epubs_xml_is_refused() {
    let mut entities = String::from(r#"<!ENTITY lol0 "lollollollollollollollollollol">"#);
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        entities.push_str(&format!(r#"<!ENTITY lol{i} "{refs}">"#));
    }
    let container = format!(
        r#"<?xml version="1.0"?><!DOCTYPE container [{entities}]>
<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>
<rootfile full-path="&lol9;"/></rootfiles></container>"#
    );
    let bytes = epub(&[("META-INF/container.xml", container.as_bytes())]);
    assert_error(
        "laughs.epub",
        bytes,
        "META-INF/container.xml is not well-formed XML",
    );
}

#[test]
fn deeply_nested_xhtml_and_ncx_are_refused_or_read_within_the_limits() {
    let nested = |depth: usize| {
        let chapter = format!(
            "<html><body>{}<p>Deep inside the nest.</p>{}</body></html>",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        epub(&[
            ("META-INF/container.xml", CONTAINER.as_bytes()),
            ("OEBPS/content.opf", opf(&["deep.xhtml"]).as_bytes()),
            ("OEBPS/deep.xhtml", chapter.as_bytes()),
        ])
    };
    // html5ever's time grows with the square of the depth: 100 000 took minutes.
    assert_error(
        "deep.epub",
        nested(100_000),
        "the EPUB's OEBPS/deep.xhtml: the HTML nests elements more than 4096 deep",
    );
    let doc = read_bounded("less-deep.epub", nested(3000), 30, 256).unwrap();
    assert_eq!(doc.text.trim(), "Deep inside the nest.");
    let depth = 100_000;

    // An NCX of 100 000 nested navPoints.
    let mut ncx = String::from(r#"<?xml version="1.0"?><ncx><navMap>"#);
    ncx.push_str(
        &r#"<navPoint><navLabel><text>x</text></navLabel><content src="ch.xhtml"/>"#.repeat(depth),
    );
    ncx.push_str(&"</navPoint>".repeat(depth));
    ncx.push_str("</navMap></ncx>");
    let opf = r#"<?xml version="1.0"?><package><manifest>
<item id="c0" href="ch.xhtml" media-type="application/xhtml+xml"/>
<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
</manifest><spine toc="ncx"><itemref idref="c0"/></spine></package>"#;
    let bytes = epub(&[
        ("META-INF/container.xml", CONTAINER.as_bytes()),
        ("OEBPS/content.opf", opf.as_bytes()),
        ("OEBPS/ch.xhtml", CHAPTER),
        ("OEBPS/toc.ncx", ncx.as_bytes()),
    ]);
    // roxmltree overflowed the stack on it, which no catch_unwind survives.
    assert_error(
        "deep-ncx.epub",
        bytes,
        "toc.ncx is not well-formed XML: elements nested more than 1024 deep",
    );
}

// ---------------------------------------------------------------------------------------------
// Text, HTML, Markdown and files that are none of them

#[test]
fn binary_files_named_as_books_are_refused_for_what_they_are() {
    let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01".repeat(100);
    assert_error(
        "photo.pdf",
        jpeg,
        "a JPEG image although its name ends in .pdf",
    );
    assert_error(
        "image.epub",
        fixtures::png(),
        "a PNG image although its name ends in .epub",
    );
    let elf = [b"\x7fELF\x02\x01\x01".as_slice(), &[0u8; 500]].concat();
    assert_error(
        "program.txt",
        elf,
        "an executable (ELF) although its name ends in .txt",
    );
    let docx = zip_with_zeros("word/document.xml", 100, &[]);
    assert_error("book.epub", docx, "a zip archive (not an EPUB)");
    // Random bytes: not text.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..65536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for name in [
        "noise.txt",
        "noise.epub",
        "noise.pdf",
        "noise.md",
        "noise.html",
    ] {
        assert_error(name, noise.clone(), "does not look like plain text");
    }
}

#[test]
fn empty_and_nul_filled_files_are_refused() {
    assert_error("empty.txt", Vec::new(), "the file is empty (0 bytes)");
    assert_error("nul.txt", vec![0; 1 << 20], "does not look like plain text");
    assert_error("nul.epub", vec![0; 4096], "does not look like plain text");
    assert_error("blank.txt", b" \n\t\r\n ".repeat(1000), "contains no text");
}

#[test]
fn invalid_utf8_is_read_as_windows_1252_and_utf16_is_refused_by_name() {
    let bytes = b"Caf\xe9 \x93quoted\x94 \xff\xfe broken \xc3\x28 sequence.".to_vec();
    let doc = read_bounded("latin.txt", bytes, 10, 64).unwrap();
    assert_eq!(doc.text, "Café “quoted” ÿþ broken Ã( sequence.");

    let utf16: Vec<u8> = "\u{feff}Plain text in UTF-16.\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_error(
        "utf16.txt",
        utf16.clone(),
        "is it a binary file or a UTF-16 text?",
    );
    // Cut in the middle of a code unit, with an unpaired surrogate.
    let mut broken = utf16;
    broken.extend_from_slice(&[0x00, 0xd8, 0x41]);
    assert_error(
        "utf16-broken.txt",
        broken,
        "is it a binary file or a UTF-16 text?",
    );
}

#[test]
fn huge_single_line_text_is_read_within_the_limits() {
    // 16 MiB on one line: words without a sentence end, then one 4 MiB "word".
    let mut line = "word ".repeat((12 << 20) / 5);
    line.push_str(&"x".repeat(4 << 20));
    let len = line.len();
    let doc = read_bounded("line.txt", line.into_bytes(), 60, 512).unwrap();
    assert_eq!(doc.text.len(), len);
    let passages = bounded(
        "line.txt passages",
        Duration::from_secs(60),
        512,
        move || ingest::split_passages(&doc, "line"),
    );
    assert!(passages.len() > 1000, "{} passages", passages.len());
}

#[test]
fn deeply_nested_and_misnested_markup_is_refused_or_read_within_the_limits() {
    let nested = |open: &str, close: &str, depth: usize| {
        format!(
            "<!DOCTYPE html><html><body>{}<p>Found it.</p>{}</body></html>",
            open.repeat(depth),
            close.repeat(depth)
        )
        .into_bytes()
    };
    let too_deep = "the HTML nests elements more than 4096 deep";
    assert_error("deep.html", nested("<div>", "</div>", 100_000), too_deep);
    // Closed paragraphs between the divs do not hide the depth; unknown elements count too.
    assert_error(
        "deep-p.html",
        nested("<div><p></p>", "</div>", 100_000),
        too_deep,
    );
    assert_error(
        "deep-custom.html",
        nested("<x-a class='>'>", "</x-a>", 10_000),
        too_deep,
    );
    let doc = read_bounded("less-deep.html", nested("<div>", "</div>", 4000), 30, 256).unwrap();
    assert_eq!(doc.text, "Found it.");
    // 100 000 paragraphs and list items left open do not nest: read.
    let flat = nested("<p>x<li>y", "", 100_000);
    let doc = read_bounded("flat.html", flat, 60, 512).unwrap();
    assert!(doc.text.ends_with("Found it."));

    // Formatting elements closed out of order make html5ever's adoption agency work hard.
    let misnested = format!(
        "<!DOCTYPE html><html><body><p>{}Tangled.</p></body></html>",
        "<b><i></b></i>".repeat(20_000)
    );
    let doc = read_bounded("misnested.html", misnested.into_bytes(), 60, 512).unwrap();
    assert!(doc.text.contains("Tangled."));

    let quotes = format!(
        "# Deep\n\n{}Deep quote. **Bold** [link](x)\n",
        "> ".repeat(50_000)
    );
    let doc = read_bounded("deep.md", quotes.into_bytes(), 60, 512).unwrap();
    assert!(
        doc.text.contains("Deep quote."),
        "{}",
        &doc.text[..200.min(doc.text.len())]
    );

    let brackets = format!(
        "# Brackets\n\n{}text{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let doc = read_bounded("brackets.md", brackets.into_bytes(), 60, 512).unwrap();
    assert!(doc.text.contains("text"));
}

// ---------------------------------------------------------------------------------------------
// The library

#[test]
fn a_library_ingests_the_good_files_among_hostile_ones_and_names_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("locked.pdf", encrypted(4, "secret"), "encrypted"),
        (
            "cut.pdf",
            fixtures::pdf(&PAGES)[..400].to_vec(),
            "truncated",
        ),
        ("photo.pdf", fixtures::png(), "PNG image"),
        ("nul.txt", vec![0; 4096], "does not look like plain text"),
        ("empty.md", Vec::new(), "empty"),
        (
            "traversal.epub",
            epub(&[
                ("META-INF/container.xml", CONTAINER.as_bytes()),
                ("../x", b"x"),
            ]),
            "unsafe path",
        ),
    ];
    let good: Vec<(&str, Vec<u8>)> = vec![
        ("open.pdf", encrypted(5, "")),
        ("latin.txt", b"Caf\xe9 society met at dawn.".to_vec()),
        (
            "book.epub",
            fixtures::epub(
                EpubVersion::Three,
                "Book",
                "Author",
                &[("One", "The lighthouse keeper slept.")],
                EpubFlaws::default(),
            ),
        ),
    ];
    for (name, bytes, _) in &bad {
        std::fs::write(files.join(name), bytes).unwrap();
    }
    for (name, bytes) in &good {
        std::fs::write(files.join(name), bytes).unwrap();
    }
    let library = Library::open(&dir.path().join("library")).unwrap();
    let mut options = IngestOptions::new(PdfIsolation::Worker(worker()));
    options.jobs = 2;
    let files_dir: PathBuf = files.clone();
    let report = bounded("library", Duration::from_secs(120), 512, move || {
        library
            .ingest(&[files_dir], &options, &mut |_| {})
            .map(|report| (report, library))
    });
    let (report, library) = report.unwrap();
    assert_eq!(report.ingested.len(), good.len(), "{:#?}", report);
    assert_eq!(report.failed.len(), bad.len(), "{:#?}", report.failed);
    for (name, _, expected) in &bad {
        let failure = report
            .failed
            .iter()
            .find(|f| f.path.ends_with(name))
            .unwrap_or_else(|| panic!("{name} is not among the failures"));
        assert!(failure.error.contains(expected), "{failure}");
    }
    for query in ["dawn", "lighthouse", "quarry"] {
        let hits = library.search(query, &Default::default()).unwrap();
        assert_eq!(hits.len(), 1, "{query}");
    }
}

// ---------------------------------------------------------------------------------------------
// Real hostile files (scripts/hostile-corpus.sh)

/// The errors a real file may end in, each saying what is wrong with it, by the start of its
/// message; anything else fails the test. Not among them: "the PDF parser crashed on this
/// file", a panic in lopdf or pdf-extract that the worker caught; the corpus's eight were fixed
/// in vendor/pdf-extract, and a new one is a bug to fix there.
const REAL_FILE_ERRORS: &[(&str, &str)] = &[
    ("encrypted", "the PDF is encrypted and needs a password"),
    ("no text layer", "the PDF has no text layer"),
    ("no pages", "the PDF has no pages"),
    ("truncated", "the PDF is truncated"),
    ("damaged or malformed", "the PDF is damaged or malformed"),
    ("parser time limit", "the PDF parser did not finish within"),
    ("parser memory limit", "the PDF parser ran out of memory"),
    ("worker failed", "the PDF worker process failed"),
    ("not a document (sniffed)", "the file "),
    ("EPUB not a zip", "the EPUB is not a readable zip archive"),
    (
        "EPUB unsafe path",
        "the EPUB has an entry with an unsafe path",
    ),
    ("EPUB without text", "the EPUB has no text"),
    ("EPUB entry missing", "the EPUB has no "),
    ("EPUB without spine", "the EPUB's package document "),
    ("EPUB spine item missing", "the EPUB's spine "),
    ("EPUB too large", "the EPUB's entry "),
    ("EPUB too large in all", "the EPUB's documents inflate"),
];

/// Where scripts/hostile-corpus.sh puts the corpus: `$MEMREADER_HOSTILE_DIR`, else
/// `$XDG_CACHE_HOME/memreader/hostile`, else `~/.cache/memreader/hostile`.
fn real_corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MEMREADER_HOSTILE_DIR") {
        return Some(dir.into());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(cache.join("memreader/hostile"))
}

/// Every file of the downloaded corpus, read as the library reads it (PDFs in a worker limited
/// to 20 s and 1024 MiB), each under a 40 s limit and 512 MiB of growth of this process's
/// peak memory: each must end in a document with text (whose passages split) or in one of
/// [`REAL_FILE_ERRORS`]. Then the library ingests them all at once with two jobs and must
/// name each failed file with the same message. Skipped, loudly, when the corpus was not
/// downloaded (scripts/test.sh runs the script first; a failed download must not fail CI).
#[test]
fn real_hostile_files_end_in_their_error_or_a_document() {
    let Some(dir) = real_corpus_dir() else {
        eprintln!("SKIPPED: real hostile files: no cache directory (set MEMREADER_HOSTILE_DIR)");
        return;
    };
    let Ok(list) = std::fs::read_to_string(dir.join("files.txt")) else {
        eprintln!(
            "\n**************************************************************************\n\
             SKIPPED: real hostile files: {} is missing: the corpus was not downloaded\n\
             (run scripts/hostile-corpus.sh; scripts/test.sh does, and says why it failed)\n\
             **************************************************************************\n",
            dir.join("files.txt").display()
        );
        return;
    };
    let files: Vec<PathBuf> = list.lines().map(|l| dir.join("files").join(l)).collect();
    assert!(
        files.len() > 100,
        "{} lists {} files",
        dir.display(),
        files.len()
    );
    let started = Instant::now();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut errors: BTreeMap<PathBuf, String> = BTreeMap::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("a listed file is there");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match read_bounded(&name, bytes, 40, 512) {
            Ok(doc) => {
                assert!(
                    !doc.text.trim().is_empty(),
                    "{name}: a document without text"
                );
                let chars = doc.text.chars().count();
                let passages = ingest::split_passages(&doc, "real");
                assert!(!passages.is_empty(), "{name}: no passages");
                for passage in &passages {
                    assert!(
                        passage.range.start < passage.range.end && passage.range.end <= chars,
                        "{name}: passage {:?} in {chars} chars",
                        passage.range
                    );
                }
                *outcomes.entry("read").or_default() += 1;
            }
            Err(message) => {
                let kind = REAL_FILE_ERRORS
                    .iter()
                    .find(|(_, start)| message.starts_with(start))
                    .map(|(kind, _)| *kind)
                    .unwrap_or_else(|| panic!("{name}: an unexpected error: {message}"));
                *outcomes.entry(kind).or_default() += 1;
                errors.insert(file.clone(), message);
            }
        }
    }
    eprintln!(
        "real hostile files: {} files in {:?}: {outcomes:?}",
        files.len(),
        started.elapsed()
    );
    // pypdf's encryption set, revisions 2 to 6: what opens with the empty password (as user or
    // as owner password, as pypdf's PdfReader.decrypt("") says) reads, the rest needs one.
    let encryption = dir.join("files/pypdf/resources_encryption_");
    for revision in [
        "r2",
        "r3",
        "r4-aes",
        "r4",
        "r6-both-passwords",
        "r6-cleartext-metadata",
    ] {
        let file = match revision {
            "r6-both-passwords" | "r6-cleartext-metadata" => format!("{revision}.pdf"),
            _ => format!("{revision}-user-password.pdf"),
        };
        let message = errors
            .get(Path::new(&format!("{}{file}", encryption.display())))
            .unwrap_or_else(|| panic!("{file} was read without its password"));
        assert!(message.contains("encrypted"), "{file}: {message}");
    }
    for file in [
        "r2-empty-password",
        "r2-owner-password",
        "r3-empty-password",
        "r4-aes-v2-no-key-length",
        "r4-owner-password",
        "r5-empty-password",
        "r5-owner-password",
        "r5-user-password",
        "r6-empty-password",
        "r6-owner-password",
        "r6-user-password",
        "unencrypted",
    ] {
        let path = PathBuf::from(format!("{}{file}.pdf", encryption.display()));
        assert!(!errors.contains_key(&path), "{file}: {}", errors[&path]);
    }
    // The EPUBs: the broken ones end in the error that names what their package's own tests
    // say is wrong with them; the rest, valid or only sloppy (no metadata, a mimetype entry
    // with the wrong bytes or name), read.
    let flightcrew = "flightcrew/src_FlightCrew_tests_test_data_framework_tests_EpubValidates_";
    let broken_epubs = [
        (
            format!("{flightcrew}NoContainerXml.epub"),
            "the EPUB has no META-INF/container.xml",
        ),
        (
            format!("{flightcrew}MissingXhtmlFiles.epub"),
            "the EPUB's spine lists OEBPS/Text/Section with%percent.xhtml",
        ),
        (
            "fast-ebook/tests_fixtures_no_spine.epub".to_owned(),
            "names no root file, manifest or spine",
        ),
        (
            "fast-ebook/tests_fixtures_empty_manifest.epub".to_owned(),
            "names no root file, manifest or spine",
        ),
    ];
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "epub"))
    {
        let expected = broken_epubs
            .iter()
            .find(|(broken, _)| file.ends_with(broken))
            .map(|(_, expected)| *expected);
        match (errors.get(file), expected) {
            (Some(message), Some(expected)) => assert!(message.contains(expected), "{message}"),
            (None, None) => {}
            (message, _) => panic!("{}: {message:?}, expected {expected:?}", file.display()),
        }
    }

    // The same files ingested by a library, two at a time: each failure names its file, with
    // the message it had alone.
    let tmp = tempfile::tempdir().unwrap();
    let library = Library::open(&tmp.path().join("library")).unwrap();
    let mut options = IngestOptions::new(PdfIsolation::Worker(worker()));
    options.jobs = 2;
    let paths = files.clone();
    let report = bounded("the library", Duration::from_secs(600), 1024, move || {
        library.ingest(&paths, &options, &mut |_| {})
    })
    .unwrap();
    let ingested = report.ingested.len() + report.skipped.len();
    assert_eq!(ingested + report.failed.len(), files.len(), "{report:#?}");
    for failure in &report.failed {
        let alone = errors
            .get(&failure.path)
            .unwrap_or_else(|| panic!("{failure}: read alone, it was a document"));
        let shown = failure.to_string();
        assert!(
            shown.contains(&failure.path.display().to_string()) && shown.contains(alone.as_str()),
            "{shown} (alone: {alone})"
        );
    }
    assert_eq!(report.failed.len(), errors.len());
    eprintln!(
        "the library: {} ingested, {} skipped (the same content twice), {} failed, in {:?}",
        report.ingested.len(),
        report.skipped.len(),
        report.failed.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzzing findings (scripts/fuzz.sh), each input as the fuzzer found it

#[test]
fn a_cross_reference_stream_with_absurd_field_widths_is_malformed_not_an_abort() {
    // `/W [1 66666666666666664 2]`: lopdf allocated 66 666 666 666 666 664 bytes and the
    // process aborted; in the app the worker died of it.
    let bytes = include_bytes!("fuzz/pdf-crash-e2a2d6c7").to_vec();
    let message = assert_error(
        "widths.pdf",
        bytes.clone(),
        "the PDF is damaged or malformed",
    );
    assert!(message.contains("/W [1 66666666666666664 2]"), "{message}");
    // In this process too: the check comes before lopdf.
    let err = ingest::formats::pdf::extract_pdf(&bytes).unwrap_err();
    assert!(err.to_string().contains("field widths"), "{err}");
}

#[test]
fn a_page_whose_parent_chain_loops_is_not_followed_forever() {
    // pdf-extract walked the page's /Parent chain for inherited attributes without end; the
    // worker's time limit was all that stopped it.
    let bytes = include_bytes!("fuzz/pdf-timeout-1532d0c4").to_vec();
    let message = assert_error("loop.pdf", bytes, "the PDF is damaged or malformed");
    assert!(message.contains("its /Parent chain loops"), "{message}");
}
