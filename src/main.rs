use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use memreader::book::{demo_book_paths, Book};

/// MemReader: a reading assistant for long documents.
#[derive(Parser)]
#[command(name = "memreader", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open the bundled demo books: parse them, find their chapters and split them into passages.
    Demo {
        /// A folder of .txt books to use instead of the bundled ones.
        #[arg(long)]
        books: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { books } => demo(books.unwrap_or_else(memreader::demo_books_dir)),
    }
}

fn demo(dir: PathBuf) -> Result<()> {
    println!(
        "MemReader {} demo on {}",
        memreader::version(),
        dir.display()
    );
    let paths = demo_book_paths(&dir)?;
    if paths.is_empty() {
        anyhow::bail!("{}: no .txt books in this folder", dir.display());
    }
    for path in paths {
        let book = match Book::open(&path) {
            Ok(book) => book,
            Err(err) => {
                eprintln!("skipped: {err}");
                continue;
            }
        };
        let doc = &book.document;
        println!(
            "\n{} by {}: {} words, {} chapters, {} passages",
            book.title(),
            doc.author.as_deref().unwrap_or("unknown author"),
            book.words(),
            doc.chapters.len(),
            book.passages.len()
        );
        for chapter in doc.chapters.iter().take(5) {
            println!(
                "  chapter: {}",
                chapter.title.as_deref().unwrap_or("(untitled)")
            );
        }
        if let Some(passage) = book.passages.get(book.passages.len() / 2) {
            let text = &doc.text[passage.range.clone()];
            let preview: String = text.chars().take(160).collect();
            println!(
                "  passage {} (bytes {}..{}): {}...",
                passage.id,
                passage.range.start,
                passage.range.end,
                preview.replace('\n', " ")
            );
        }
    }
    println!(
        "\nNot there yet: the search index, the MemMamba model and its trained weights, \
         reading into memory, asking with citations, snapshots (see README.md, Status)."
    );
    Ok(())
}
