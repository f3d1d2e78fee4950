//! Writes a tiny MemMamba model with random weights (the `tiny` preset with the shipped
//! tokenizer's vocabulary) into the folder given, as a model directory (`config.json` +
//! `model.safetensors`). The app's real-window tests (scripts/test-app.sh) run the app on it
//! through `MEMREADER_MODEL`: it reads, notes and answers like the real model, only quickly and
//! without sense.
//!
//!     cargo run -p memreader-app --example tiny_model -- DIR

use candle_core::Device;
use candle_nn::VarMap;
use memmamba::{Config, MemMamba};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os().nth(1).ok_or("usage: tiny_model DIR")?;
    let dir = std::path::Path::new(&dir);
    let config = Config {
        vocab_size: 16384,
        ..Config::tiny()
    };
    let net = MemMamba::init(&config, &VarMap::new(), &Device::Cpu, 0)?;
    std::fs::create_dir_all(dir)?;
    net.save(dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), config.to_json_string())?;
    Ok(())
}
