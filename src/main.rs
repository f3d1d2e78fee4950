use anyhow::Result;
use clap::{Parser, Subcommand};

/// MemReader: a reading assistant for long documents.
#[derive(Parser)]
#[command(name = "memreader", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bundled demo.
    Demo,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => {
            println!("MemReader {}", memreader::version());
            Ok(())
        }
    }
}
