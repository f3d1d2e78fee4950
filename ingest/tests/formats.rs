//! Specification of format sniffing and parsing, on real files made by `ingest::fixtures`.

use std::path::Path;

use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use ingest::formats::epub::{parse_epub, EpubError};
use ingest::formats::html::parse_html;
use ingest::formats::markdown::parse_markdown;
use ingest::formats::pdf::{extract_pdf, pdf_document, PdfError};
use ingest::{slice_chars, sniff, split_passages, Format, SniffError};

const PAGE_ONE: &str = "The lighthouse keeper counted ships every evening.\n\nHe wrote their names in a ledger bound in green leather.";
const PAGE_TWO: &str = "A storm came from the west and the lamp went dark.";
const PAGE_THREE: &str = "In the morning the harbour was full of broken masts.";

fn page_texts(doc: &ingest::Document) -> Vec<&str> {
    doc.pages
        .iter()
        .map(|p| slice_chars(&doc.text, p.range.clone()))
        .collect()
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn pdf_pages_map_to_their_text() {
    let bytes = fixtures::pdf(&[PAGE_ONE, PAGE_TWO, PAGE_THREE]);
    assert_eq!(sniff(&bytes, Path::new("x.bin")), Ok(Format::Pdf));
    let doc = pdf_document(extract_pdf(&bytes).unwrap()).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Fixture PDF"));
    assert_eq!(doc.author.as_deref(), Some("Test Author"));
    let pages = page_texts(&doc);
    assert_eq!(pages.len(), 3);
    assert_eq!(words(pages[0]), words(PAGE_ONE));
    assert_eq!(words(pages[1]), words(PAGE_TWO));
    assert_eq!(words(pages[2]), words(PAGE_THREE));
    assert_eq!(doc.pages[1].title.as_deref(), Some("2"));
    // Pages are separated by a blank line and cover the text in order.
    assert_eq!(
        slice_chars(&doc.text, doc.pages[0].range.end..doc.pages[1].range.start),
        "\n\n"
    );
    assert_eq!(doc.pages[2].range.end, doc.text.chars().count());
}

#[test]
fn pdf_passages_carry_their_page() {
    let long_page = |word: &str| {
        (0..60)
            .map(|i| format!("Sentence {i} is about the {word} and nothing else."))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (a, b) = (long_page("orchard"), long_page("quarry"));
    let doc = pdf_document(extract_pdf(&fixtures::pdf(&[&a, &b])).unwrap()).unwrap();
    let passages = split_passages(&doc, "doc");
    assert!(passages.len() >= 4, "{}", passages.len());
    for passage in &passages {
        let text = slice_chars(&doc.text, passage.range.clone());
        let page = passage.page.expect("every passage starts on a page");
        let expected = if page == 0 { "orchard" } else { "quarry" };
        assert!(text.contains(expected), "page {page}: {text}");
        assert_eq!(passage.id, format!("doc:{}", passage.range.start));
    }
    assert!(passages.iter().any(|p| p.page == Some(1)));
}

#[test]
fn encrypted_pdf_with_empty_user_password_opens() {
    let bytes = fixtures::encrypted_pdf(&[PAGE_ONE, PAGE_TWO], "");
    let doc = pdf_document(extract_pdf(&bytes).unwrap()).unwrap();
    assert_eq!(words(page_texts(&doc)[1]), words(PAGE_TWO));
}

#[test]
fn encrypted_pdf_with_a_password_is_reported_as_encrypted() {
    let bytes = fixtures::encrypted_pdf(&[PAGE_ONE], "secret");
    let err = extract_pdf(&bytes).unwrap_err();
    assert_eq!(err, PdfError::Encrypted);
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[test]
fn image_only_pdf_has_no_text_layer() {
    let bytes = fixtures::image_only_pdf(2);
    let err = pdf_document(extract_pdf(&bytes).unwrap()).unwrap_err();
    assert_eq!(err, PdfError::NoTextLayer { pages: 2 });
    assert!(err.to_string().contains("no text layer"), "{err}");
}

#[test]
fn truncated_pdf_is_reported_as_truncated() {
    let bytes = fixtures::pdf(&[PAGE_ONE, PAGE_TWO]);
    let err = extract_pdf(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, PdfError::Truncated(_)), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn garbage_after_the_pdf_header_is_malformed() {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend_from_slice(&[b'x'; 600]);
    bytes.extend_from_slice(b"\n%%EOF\n");
    let err = extract_pdf(&bytes).unwrap_err();
    assert!(matches!(err, PdfError::Malformed(_)), "{err:?}");
}

#[test]
fn sniffing_goes_by_content_not_name() {
    let png = fixtures::png();
    let err = sniff(&png, Path::new("scan.pdf")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the file is a PNG image although its name ends in .pdf, not a document MemReader can read"
    );
    assert_eq!(sniff(b"", Path::new("a.txt")), Err(SniffError::Empty));
    let epub = fixtures::epub(
        EpubVersion::Three,
        "T",
        "A",
        &[("C", "x")],
        EpubFlaws::default(),
    );
    assert_eq!(sniff(&epub, Path::new("book.zip")), Ok(Format::Epub));
    let html = b"<!DOCTYPE html><html><body><p>Hi</p></body></html>";
    assert_eq!(sniff(html, Path::new("page.txt")), Ok(Format::Html));
    assert_eq!(
        sniff(b"# Title\n\nSome *text*.", Path::new("notes.md")),
        Ok(Format::Markdown)
    );
    let md = b"# Title\n\nA [link](http://example.org) and **bold**.";
    assert_eq!(sniff(md, Path::new("notes")), Ok(Format::Markdown));
    assert_eq!(
        sniff(b"Plain words.", Path::new("notes.md.txt")),
        Ok(Format::Text)
    );
    // Binary bytes named as Markdown are refused by the plain-text parser, as binary.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert_eq!(sniff(&noise, Path::new("notes.md")), Ok(Format::Text));
    let err = ingest::parse(Format::Text, &noise).unwrap_err();
    assert!(
        err.to_string().contains("does not look like plain text"),
        "{err}"
    );
    let docx = {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file(
            "word/document.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.finish().unwrap().into_inner()
    };
    let err = sniff(&docx, Path::new("a.epub")).unwrap_err();
    assert!(
        err.to_string().contains("zip archive (not an EPUB)"),
        "{err}"
    );
}

const CHAPTERS: [(&str, &str); 3] = [
    (
        "The Mill",
        "The miller had three sons.\n\nThe eldest took the mill.",
    ),
    ("The Cat & the Boots", "The youngest son got only the cat."),
    ("The Castle", "The ogre lived in a castle of grey stone."),
];

fn check_epub(version: EpubVersion) {
    let bytes = fixtures::epub(
        version,
        "Puss in Boots",
        "Charles Perrault",
        &CHAPTERS,
        EpubFlaws::default(),
    );
    let doc = parse_epub(&bytes).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Puss in Boots"));
    assert_eq!(doc.author.as_deref(), Some("Charles Perrault"));
    assert_eq!(doc.language.as_deref(), Some("en"));
    let titles: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| c.title.as_deref().unwrap())
        .collect();
    assert_eq!(titles, ["The Mill", "The Cat & the Boots", "The Castle"]);
    // The title page (not in the table of contents) comes first, outside any chapter.
    assert!(
        doc.text.starts_with("Puss in Boots\n\nby Charles Perrault"),
        "{}",
        doc.text
    );
    assert_eq!(
        slice_chars(&doc.text, doc.chapters[0].range.clone()),
        "The Mill\n\nThe miller had three sons.\n\nThe eldest took the mill."
    );
    assert_eq!(
        slice_chars(&doc.text, doc.chapters[2].range.clone()),
        "The Castle\n\nThe ogre lived in a castle of grey stone."
    );
    assert!(
        !doc.text.contains("margin"),
        "style text leaked: {}",
        doc.text
    );
    let passages = split_passages(&doc, "d");
    assert_eq!(passages.iter().filter_map(|p| p.chapter).max(), Some(2));
}

#[test]
fn epub2_chapters_come_from_the_ncx_in_spine_order() {
    check_epub(EpubVersion::Two);
}

#[test]
fn epub3_chapters_come_from_the_nav_document() {
    check_epub(EpubVersion::Three);
}

#[test]
fn epub_with_a_missing_spine_item_names_it() {
    let flaws = EpubFlaws {
        missing_spine_item: true,
        ..EpubFlaws::default()
    };
    let bytes = fixtures::epub(EpubVersion::Three, "T", "A", &CHAPTERS, flaws);
    let err = parse_epub(&bytes).unwrap_err();
    assert_eq!(
        err,
        EpubError::MissingSpineItem {
            idref: "ch3".into(),
            href: "OEBPS/Text/chapter 3.xhtml".into()
        }
    );
}

#[test]
fn epub_with_a_path_traversal_entry_is_refused() {
    let flaws = EpubFlaws {
        path_traversal: true,
        ..EpubFlaws::default()
    };
    let bytes = fixtures::epub(EpubVersion::Two, "T", "A", &CHAPTERS, flaws);
    let err = parse_epub(&bytes).unwrap_err();
    assert_eq!(err, EpubError::UnsafePath("../../evil.txt".into()));
}

#[test]
fn truncated_epub_is_not_a_readable_zip() {
    let bytes = fixtures::epub(EpubVersion::Two, "T", "A", &CHAPTERS, EpubFlaws::default());
    let err = parse_epub(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, EpubError::Zip(_)), "{err:?}");
}

#[test]
fn html_gives_visible_text_metadata_and_chapters() {
    let html = r#"<!DOCTYPE html>
<html lang="fr"><head><title>Les Contes</title><meta name="author" content="Perrault">
<script>var hidden = "never shown";</script><style>body { color: red }</style></head>
<body><h1>Les Contes</h1>
<h2>La Belle</h2><p>Il était une fois
   une princesse.</p><ul><li>un</li><li>deux</li></ul>
<h2>Le Chat</h2><p>Le chat &amp; le meunier.<br>Fin.</p></body></html>"#;
    let doc = parse_html(html.as_bytes()).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Les Contes"));
    assert_eq!(doc.author.as_deref(), Some("Perrault"));
    assert_eq!(doc.language.as_deref(), Some("fr"));
    assert_eq!(
        doc.text,
        "Les Contes\n\nLa Belle\n\nIl était une fois une princesse.\n\nun\ndeux\n\nLe Chat\n\nLe chat & le meunier.\nFin."
    );
    let titles: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| c.title.clone().unwrap())
        .collect();
    assert_eq!(titles, ["La Belle", "Le Chat"]);
    assert_eq!(
        slice_chars(&doc.text, doc.chapters[1].range.clone()),
        "Le Chat\n\nLe chat & le meunier.\nFin."
    );
}

#[test]
fn markdown_gives_text_without_markup() {
    let md = "---\ntitle: Field Notes\nauthor: A. Walker\n---\n\n# Field Notes\n\n## Monday\n\nSaw a *heron* near the [river](http://example.org).\n\n- one\n- two\n\n## Tuesday\n\n```\ncode  stays\n```\n";
    let doc = parse_markdown(md.as_bytes()).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Field Notes"));
    assert_eq!(doc.author.as_deref(), Some("A. Walker"));
    assert_eq!(
        doc.text,
        "Field Notes\n\nMonday\n\nSaw a heron near the river.\n\none\ntwo\n\nTuesday\n\ncode  stays"
    );
    let titles: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| c.title.clone().unwrap())
        .collect();
    assert_eq!(titles, ["Monday", "Tuesday"]);
}

#[test]
fn empty_markup_is_an_error() {
    assert!(parse_html(b"<html><body><script>x</script></body></html>").is_err());
    assert!(parse_markdown(b"<!-- nothing -->\n").is_err());
}

#[test]
fn pdf_chapters_come_from_the_outline_at_its_shallowest_repeated_level() {
    let pages: Vec<String> = (0..5)
        .map(|p| format!("Page {p} tells how the café in Zürich opened its doors again."))
        .collect();
    let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    let outline = [
        (1, "The Whole Book", 0),
        (2, "Chapter 1: Café", 0),
        (2, "Chapter 2: Zürich", 2),
        (3, "A section", 3),
        (2, "Chapter 3: 終わり 🌙", 3),
        (2, "Epilogue", 3),
    ];
    let pdf = extract_pdf(&fixtures::pdf_with_outline(&refs, &outline)).unwrap();
    // Every entry is read, whichever way it names its page.
    let read: Vec<_> = pdf
        .outline
        .iter()
        .map(|b| (b.level, b.title.as_str(), b.page))
        .collect();
    assert_eq!(read, outline);
    let doc = pdf_document(pdf).unwrap();
    let titles: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| c.title.as_deref().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "Chapter 1: Café",
            "Chapter 2: Zürich",
            "Chapter 3: 終わり 🌙 / Epilogue"
        ]
    );
    // A chapter runs from its page's start to the end of the page before the next chapter.
    let expected = [(0, 1), (2, 2), (3, 4)];
    for (chapter, (first, last)) in doc.chapters.iter().zip(expected) {
        assert_eq!(
            chapter.range,
            doc.pages[first].range.start..doc.pages[last].range.end
        );
    }
    // Char ranges: "café" and "Zürich" make every page after the first start earlier in
    // chars than in bytes.
    assert_eq!(
        doc.pages[4].range.end,
        doc.text.chars().count(),
        "the last page ends at the text's last char"
    );
    assert!(slice_chars(&doc.text, doc.chapters[1].range.clone()).starts_with("Page 2 tells"));
    let passages = split_passages(&doc, "d");
    let chapters: Vec<_> = passages.iter().map(|p| (p.page, p.chapter)).collect();
    assert_eq!(
        chapters,
        [
            (Some(0), Some(0)),
            (Some(1), Some(0)),
            (Some(2), Some(1)),
            (Some(3), Some(2)),
            (Some(4), Some(2))
        ]
    );
}

#[test]
fn a_pdf_without_an_outline_or_with_one_entry_per_level_has_no_chapters() {
    let doc = pdf_document(extract_pdf(&fixtures::pdf(&[PAGE_ONE, PAGE_TWO])).unwrap()).unwrap();
    assert!(doc.chapters.is_empty());
    let bytes = fixtures::pdf_with_outline(&[PAGE_ONE, PAGE_TWO], &[(1, "Only", 1), (2, "Sub", 1)]);
    let doc = pdf_document(extract_pdf(&bytes).unwrap()).unwrap();
    assert!(doc.chapters.is_empty(), "{:?}", doc.chapters);
}

#[test]
fn pdf_page_ranges_count_chars_not_bytes() {
    let pages = [
        "Le café était fermé à midi.",
        "Déjà vu, naïve façade.",
        "Fin.",
    ];
    let doc = pdf_document(extract_pdf(&fixtures::pdf(&pages)).unwrap()).unwrap();
    assert_eq!(page_texts(&doc), pages);
    let starts: Vec<_> = doc.pages.iter().map(|p| p.range.start).collect();
    // Each page is its chars plus a blank line ("\n\n") after it.
    assert_eq!(starts, [0, 29, 53]);
}

#[test]
fn markup_chapters_are_char_ranges_in_text_with_accents_cjk_and_emoji() {
    let md = "# Carnet\n\n## Café ☕\n\n東京は雨でした。Il pleuvait.\n\n## Über 🦀\n\nDas Ende.\n";
    let doc = parse_markdown(md.as_bytes()).unwrap();
    let chapters: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| slice_chars(&doc.text, c.range.clone()))
        .collect();
    assert_eq!(
        chapters,
        [
            "Café ☕\n\n東京は雨でした。Il pleuvait.",
            "Über 🦀\n\nDas Ende."
        ]
    );
    assert_eq!(doc.chapters[1].range.end, doc.text.chars().count());

    let chapters = [
        ("Der Müller 🌾", "Der Müller hatte drei Söhne."),
        ("猫と長靴", "末っ子は猫だけをもらいました。"),
        ("L'ogre", "L'ogre vivait dans un château."),
    ];
    for version in [EpubVersion::Two, EpubVersion::Three] {
        let bytes = fixtures::epub(
            version,
            "Contes",
            "Perrault",
            &chapters,
            EpubFlaws::default(),
        );
        let doc = parse_epub(&bytes).unwrap();
        for (section, (title, body)) in doc.chapters.iter().zip(chapters) {
            assert_eq!(section.title.as_deref(), Some(title));
            assert_eq!(
                slice_chars(&doc.text, section.range.clone()),
                format!("{title}\n\n{body}")
            );
        }
    }
}

#[test]
fn markup_that_is_not_utf8_is_read_in_the_encoding_it_declares() {
    let page = |declaration: &str, words: &str, encoding: &'static encoding_rs::Encoding| {
        let html = format!(
            "<!DOCTYPE html><html><head>{declaration}<title>T</title></head><body>\
             <h2>{words}</h2><p>{words}.</p><h2>Fin</h2><p>Fin.</p></body></html>"
        );
        encoding.encode(&html).0.into_owned()
    };
    let shift_jis = page(
        r#"<meta charset="Shift_JIS">"#,
        "東京の雨",
        encoding_rs::SHIFT_JIS,
    );
    assert!(std::str::from_utf8(&shift_jis).is_err());
    let doc = parse_html(&shift_jis).unwrap();
    assert_eq!(doc.text, "東京の雨\n\n東京の雨.\n\nFin\n\nFin.");
    assert_eq!(doc.chapters[0].title.as_deref(), Some("東京の雨"));
    assert_eq!(doc.chapters[1].range.start, 13);

    let latin2 = page(
        r#"<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-2">"#,
        "Łódź",
        encoding_rs::ISO_8859_2,
    );
    assert!(parse_html(&latin2)
        .unwrap()
        .text
        .starts_with("Łódź\n\nŁódź."));

    let xhtml = encoding_rs::KOI8_R
        .encode(
            "<?xml version=\"1.0\" encoding=\"KOI8-R\"?>\n<html \
             xmlns=\"http://www.w3.org/1999/xhtml\"><body><p>Война и мир.</p></body></html>",
        )
        .0;
    assert_eq!(parse_html(&xhtml).unwrap().text, "Война и мир.");

    // Valid UTF-8 is UTF-8 whatever the page says; undeclared, other bytes are Windows-1252.
    let utf8 =
        "<html><head><meta charset=\"iso-8859-1\"></head><body><p>Café crème.</p></body></html>";
    assert_eq!(parse_html(utf8.as_bytes()).unwrap().text, "Café crème.");
    let cp1252 = b"<html><body><p>Caf\xe9 \x93cr\xe8me\x94.</p></body></html>";
    assert_eq!(parse_html(cp1252).unwrap().text, "Café “crème”.");
    // A byte order mark decides over everything.
    let utf16: Vec<u8> = "\u{feff}<html><body><p>Ça va? 🦀</p></body></html>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(parse_html(&utf16).unwrap().text, "Ça va? 🦀");
}

#[test]
fn an_outline_that_loops_back_on_itself_is_read_once() {
    let bytes = fixtures::pdf_with_outline(
        &[PAGE_ONE, PAGE_TWO, PAGE_THREE],
        &[(1, "One", 0), (1, "Two", 1), (1, "Three", 2)],
    );
    // The last entry's /Next and the first entry's /First lead back to the first entry.
    let mut doc = lopdf::Document::load_mem(&bytes).unwrap();
    let outlines = doc
        .catalog()
        .unwrap()
        .get(b"Outlines")
        .unwrap()
        .as_reference()
        .unwrap();
    let root = doc.get_dictionary(outlines).unwrap();
    let first = root.get(b"First").unwrap().as_reference().unwrap();
    let last = root.get(b"Last").unwrap().as_reference().unwrap();
    doc.get_dictionary_mut(last).unwrap().set("Next", first);
    doc.get_dictionary_mut(first).unwrap().set("First", first);
    let mut looped = Vec::new();
    doc.save_to(&mut looped).unwrap();

    let pdf = extract_pdf(&looped).unwrap();
    let titles: Vec<_> = pdf.outline.iter().map(|b| b.title.as_str()).collect();
    assert_eq!(titles, ["One", "Two", "Three"]);
    assert_eq!(pdf_document(pdf).unwrap().chapters.len(), 3);
}

#[test]
fn pdf_fonts_of_the_same_name_on_different_pages_are_told_apart() {
    // Fonts are cached across pages (vendor/pdf-extract): by font dictionary, not by name.
    let text = extract_pdf(&fixtures::pdf_reusing_a_font_name("A cat sat")).unwrap();
    assert_eq!(text.pages.len(), 2);
    assert!(text.pages[0].contains("A cat sat"), "{:?}", text.pages);
    assert!(text.pages[1].contains("Z cat sat"), "{:?}", text.pages);
}
