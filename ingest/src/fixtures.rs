//! Real files made from known text, for tests and the ingestion benchmark: PDFs (lopdf, with a
//! proper xref, optionally encrypted or image-only) and EPUB 2/3 archives (zip), including
//! deliberately broken ones. Built only with the `fixtures` feature.

use std::io::{Cursor, Write};

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// A PDF with one page per entry of `pages`, each page's text set in Helvetica, wrapped at
/// about 80 characters per line, paragraphs (blank lines) kept.
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    save(&mut pdf_document(
        pages,
        Some(("Fixture PDF", "Test Author")),
        "WinAnsiEncoding",
    ))
}

/// Like [`pdf`], with an outline (bookmarks): one entry per `(level, title, page index)`, level
/// 1 at the top, each nested under the closest entry before it of a lower level. Entries point
/// at their page in turn by an explicit `/Dest`, a named destination (the `/Names` tree) and a
/// `/GoTo` action; titles are UTF-16 text strings.
pub fn pdf_with_outline(pages: &[&str], outline: &[(usize, &str, usize)]) -> Vec<u8> {
    let mut doc = pdf_document(
        pages,
        Some(("Fixture PDF", "Test Author")),
        "WinAnsiEncoding",
    );
    let page_ids: Vec<lopdf::ObjectId> = doc.get_pages().values().copied().collect();
    let ids: Vec<lopdf::ObjectId> = outline.iter().map(|_| doc.new_object_id()).collect();
    let root_id = doc.new_object_id();
    // Each entry's parent: the closest entry before it of a lower level, else the root.
    let parents: Vec<Option<usize>> = (0..outline.len())
        .map(|i| (0..i).rev().find(|&j| outline[j].0 < outline[i].0))
        .collect();
    let children = |parent: Option<usize>| -> Vec<usize> {
        (0..outline.len())
            .filter(|&i| parents[i] == parent)
            .collect()
    };
    let mut names = Vec::new();
    for (i, &(_, title, page)) in outline.iter().enumerate() {
        let target = vec![page_ids[page].into(), "Fit".into()];
        let mut entry = dictionary! {
            "Title" => Object::String(utf16_text(title), StringFormat::Hexadecimal),
            "Parent" => parents[i].map_or(root_id, |p| ids[p]),
        };
        match i % 3 {
            0 => entry.set("Dest", target),
            1 => {
                let name = format!("dest{i:04}");
                entry.set("Dest", Object::string_literal(name.as_str()));
                names.push(Object::string_literal(name.as_str()));
                names.push(Object::Array(target));
            }
            _ => entry.set("A", dictionary! { "S" => "GoTo", "D" => target }),
        }
        let siblings = children(parents[i]);
        let at = siblings.iter().position(|&s| s == i).unwrap_or(0);
        if at > 0 {
            entry.set("Prev", ids[siblings[at - 1]]);
        }
        if let Some(&next) = siblings.get(at + 1) {
            entry.set("Next", ids[next]);
        }
        link_children(&mut entry, &children(Some(i)), &ids);
        doc.objects.insert(ids[i], Object::Dictionary(entry));
    }
    let mut root = dictionary! { "Type" => "Outlines" };
    link_children(&mut root, &children(None), &ids);
    doc.objects.insert(root_id, Object::Dictionary(root));
    let names_id = doc.add_object(dictionary! {
        "Dests" => dictionary! { "Names" => names },
    });
    let catalog = doc.catalog_mut().expect("the fixture has a catalog");
    catalog.set("Outlines", root_id);
    catalog.set("Names", names_id);
    save(&mut doc)
}

/// Sets an outline node's `/First`, `/Last` and `/Count` from its children's indices.
fn link_children(node: &mut lopdf::Dictionary, children: &[usize], ids: &[lopdf::ObjectId]) {
    if let (Some(&first), Some(&last)) = (children.first(), children.last()) {
        node.set("First", ids[first]);
        node.set("Last", ids[last]);
        node.set("Count", children.len() as i64);
    }
}

/// A PDF text string in UTF-16BE with its byte order mark.
fn utf16_text(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFE, 0xFF];
    bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    bytes
}

/// A well-formed PDF whose font names an encoding that does not exist: pdf-extract 0.12
/// panics on it ("unexpected encoding"), as it does on many real files.
pub fn panicking_pdf() -> Vec<u8> {
    save(&mut pdf_document(&["Unreadable."], None, "NoSuchEncoding"))
}

/// Like [`pdf`], encrypted (RC4, 128-bit) with the given user password; an empty one makes a
/// PDF that viewers open without asking.
pub fn encrypted_pdf(pages: &[&str], user_password: &str) -> Vec<u8> {
    let mut doc = pdf_document(pages, None, "WinAnsiEncoding");
    let id = Object::String(b"0123456789abcdef".to_vec(), StringFormat::Literal);
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner-secret",
        user_password,
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    })
    .expect("the encryption parameters are valid");
    doc.encrypt(&state).expect("a fresh document encrypts");
    save(&mut doc)
}

/// A PDF of `pages` pages that each show a small grey image and have no text: a scan.
pub fn image_only_pdf(pages: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let image = Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Image",
            "Width" => 4,
            "Height" => 4,
            "ColorSpace" => "DeviceGray",
            "BitsPerComponent" => 8,
        },
        vec![0x80; 16],
    );
    let image_id = doc.add_object(image);
    let mut kids = Vec::new();
    for _ in 0..pages {
        let content = Content {
            operations: vec![
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![
                        400.into(),
                        0.into(),
                        0.into(),
                        400.into(),
                        100.into(),
                        300.into(),
                    ],
                ),
                Operation::new("Do", vec!["Im1".into()]),
                Operation::new("Q", vec![]),
            ],
        };
        let resources = dictionary! { "XObject" => dictionary! { "Im1" => image_id } };
        kids.push(add_page(&mut doc, pages_id, content, resources));
    }
    finish(&mut doc, pages_id, kids, None);
    save(&mut doc)
}

/// A PDF of two pages that both write `text` in a font named `/F1`, but different fonts:
/// page 1's is Helvetica in WinAnsiEncoding, page 2's the same with code 65 ("A") redrawn as
/// the glyph "Z" by a `/Differences` array. An extractor that caches fonts by resource name
/// across pages reads page 2 with page 1's font.
pub fn pdf_reusing_a_font_name(text: &str) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let plain = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let a_as_z = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => dictionary! {
            "Type" => "Encoding",
            "BaseEncoding" => "WinAnsiEncoding",
            "Differences" => vec![65.into(), Object::Name(b"Z".to_vec())],
        },
    });
    let kids = [plain, a_as_z]
        .into_iter()
        .map(|font_id| {
            let content = Content {
                operations: vec![
                    Operation::new("BT", vec![]),
                    Operation::new("Tf", vec!["F1".into(), 11.into()]),
                    Operation::new("Td", vec![56.into(), 780.into()]),
                    Operation::new(
                        "Tj",
                        vec![Object::String(latin1(text), StringFormat::Literal)],
                    ),
                    Operation::new("ET", vec![]),
                ],
            };
            let resources = dictionary! { "Font" => dictionary! { "F1" => font_id } };
            add_page(&mut doc, pages_id, content, resources)
        })
        .collect();
    finish(&mut doc, pages_id, kids, None);
    save(&mut doc)
}

fn pdf_document(pages: &[&str], info: Option<(&str, &str)>, encoding: &str) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => encoding,
    });
    let mut kids = Vec::new();
    for page in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 11.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![56.into(), 780.into()]),
        ];
        for line in wrap(page, 80) {
            operations.push(Operation::new(
                "Tj",
                vec![Object::String(latin1(&line), StringFormat::Literal)],
            ));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations };
        let resources = dictionary! { "Font" => dictionary! { "F1" => font_id } };
        kids.push(add_page(&mut doc, pages_id, content, resources));
    }
    finish(&mut doc, pages_id, kids, info);
    doc
}

/// Adds a page drawing `content` with `resources` under `pages_id`; returns its reference.
fn add_page(
    doc: &mut Document,
    pages_id: lopdf::ObjectId,
    content: Content,
    resources: lopdf::Dictionary,
) -> Object {
    let content_id = doc.add_object(Stream::new(
        dictionary! {},
        content.encode().expect("content encodes"),
    ));
    doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => resources,
    })
    .into()
}

fn finish(
    doc: &mut Document,
    pages_id: lopdf::ObjectId,
    kids: Vec<Object>,
    info: Option<(&str, &str)>,
) {
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    if let Some((title, author)) = info {
        let info_id = doc.add_object(dictionary! {
            "Title" => Object::string_literal(title),
            "Author" => Object::string_literal(author),
        });
        doc.trailer.set("Info", info_id);
    }
}

fn save(doc: &mut Document) -> Vec<u8> {
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes)
        .expect("writing to memory cannot fail");
    bytes
}

/// Lines of at most `width` characters (longer words stand alone); a blank line between
/// paragraphs is kept as an empty line.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            lines.push(String::new());
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// Text as WinAnsi (Latin-1) bytes; other characters become `?`.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Which EPUB to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpubVersion {
    /// EPUB 2: chapter titles in an NCX.
    Two,
    /// EPUB 3: chapter titles in a navigation document.
    Three,
}

/// Ways to break an EPUB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EpubFlaws {
    /// The spine names a chapter file that is not in the archive.
    pub missing_spine_item: bool,
    /// The archive has an entry named `../../evil.txt`.
    pub path_traversal: bool,
}

/// An EPUB with a title page (no TOC entry) and one XHTML file per chapter, each `(title,
/// paragraphs separated by blank lines)`.
pub fn epub(
    version: EpubVersion,
    title: &str,
    author: &str,
    chapters: &[(&str, &str)],
    flaws: EpubFlaws,
) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let mut put = |name: &str, body: &str, options: SimpleFileOptions| {
        zip.start_file(name, options).expect("zip entry starts");
        zip.write_all(body.as_bytes()).expect("zip entry writes");
    };
    put("mimetype", "application/epub+zip", stored);
    put(
        "META-INF/container.xml",
        r#"<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#,
        deflated,
    );
    let mut manifest = String::from(
        r#"<item id="titlepage" href="Text/title.xhtml" media-type="application/xhtml+xml"/>"#,
    );
    let mut spine = String::from(r#"<itemref idref="titlepage"/>"#);
    let mut nav_points = String::new();
    let mut nav_items = String::new();
    for (i, (chapter, _)) in chapters.iter().enumerate() {
        let n = i + 1;
        manifest.push_str(&format!(
            r#"<item id="ch{n}" href="Text/chapter%20{n}.xhtml" media-type="application/xhtml+xml"/>"#
        ));
        spine.push_str(&format!(r#"<itemref idref="ch{n}"/>"#));
        nav_points.push_str(&format!(
            r#"<navPoint id="np{n}" playOrder="{n}"><navLabel><text>{}</text></navLabel><content src="Text/chapter%20{n}.xhtml#start"/></navPoint>"#,
            escape(chapter)
        ));
        nav_items.push_str(&format!(
            r#"<li><a href="Text/chapter%20{n}.xhtml">{}</a></li>"#,
            escape(chapter)
        ));
    }
    let (package_version, toc_item, spine_attr) = match version {
        EpubVersion::Two => (
            "2.0",
            r#"<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>"#,
            r#" toc="ncx""#,
        ),
        EpubVersion::Three => (
            "3.0",
            r#"<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>"#,
            "",
        ),
    };
    put(
        "OEBPS/content.opf",
        &format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="{package_version}" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:fixture</dc:identifier>
    <dc:title>{}</dc:title>
    <dc:creator>{}</dc:creator>
    <dc:language>en</dc:language>
  </metadata>
  <manifest>{toc_item}{manifest}</manifest>
  <spine{spine_attr}>{spine}</spine>
</package>"#,
            escape(title),
            escape(author)
        ),
        deflated,
    );
    match version {
        EpubVersion::Two => put(
            "OEBPS/toc.ncx",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" "http://www.daisy.org/z3986/2005/ncx-2005-1.dtd">
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">
  <docTitle><text>{}</text></docTitle>
  <navMap>{nav_points}</navMap>
</ncx>"#,
                escape(title)
            ),
            deflated,
        ),
        EpubVersion::Three => put(
            "OEBPS/nav.xhtml",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head>
<body>
  <nav epub:type="landmarks"><ol><li><a href="Text/title.xhtml">Title page</a></li></ol></nav>
  <nav epub:type="toc"><h1>Contents</h1><ol>{nav_items}</ol></nav>
</body></html>"#
            ),
            deflated,
        ),
    }
    put(
        "OEBPS/Text/title.xhtml",
        &xhtml(
            title,
            &format!("<h1>{}</h1><p>by {}</p>", escape(title), escape(author)),
        ),
        deflated,
    );
    for (i, (chapter, body)) in chapters.iter().enumerate() {
        if flaws.missing_spine_item && i == chapters.len() - 1 {
            continue;
        }
        let paragraphs: String = body
            .split("\n\n")
            .map(|p| format!("<p>{}</p>\n", escape(p)))
            .collect();
        put(
            &format!("OEBPS/Text/chapter {}.xhtml", i + 1),
            &xhtml(
                chapter,
                &format!("<h2 id=\"start\">{}</h2>\n{paragraphs}", escape(chapter)),
            ),
            deflated,
        );
    }
    if flaws.path_traversal {
        put("../../evil.txt", "gotcha", deflated);
    }
    zip.finish().expect("zip finishes").into_inner()
}

fn xhtml(title: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en">
<head><title>{}</title><style>p {{ margin: 0 }}</style></head>
<body>{body}</body>
</html>"#,
        escape(title)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A PNG image's first bytes followed by noise: a file that is not a document.
pub fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend((0u8..200).map(|b| b.wrapping_mul(37)));
    bytes
}
