//! One MemMamba layer: RMSNorm, the Mamba-1 mixer and, with notes on, the note block, the
//! cross-token attention and gate, and on cross-layer layers the cross-layer attention and gate.

use candle_core::Result;
use candle_nn::{VarBuilder, VarMap};

use crate::attention::{Gate, NoteAttention};
use crate::config::Config;
use crate::mixer::MambaMixer;
use crate::norm::RmsNorm;
use crate::notes::NoteBlock;

/// The MemMamba part of a layer (MODEL.md section 3).
#[derive(Debug, Clone)]
pub struct NoteLayer {
    /// Writes notes: `notes.*`.
    pub notes: NoteBlock,
    /// Cross-token attention over this layer's pool: `token_attn.*`.
    pub token_attn: NoteAttention,
    /// Its gate: `token_gate.*`.
    pub token_gate: Gate,
    /// On cross-layer layers, the attention over the pools of the last p layers and its gate:
    /// `layer_attn.*`, `layer_gate.*`.
    pub cross: Option<(NoteAttention, Gate)>,
}

/// A layer: `o = r + Mixer(RMSNorm(r))`, then with notes `r_next = o + g_tok c_tok + g_lay c_lay`.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `norm.weight`.
    pub norm: RmsNorm,
    /// `mixer.*`.
    pub mixer: MambaMixer,
    /// None with notes off.
    pub notes: Option<NoteLayer>,
}

impl Layer {
    /// Loads layer `l` from `vb`; with `init`, first creates its mixer weights in that VarMap
    /// with the official Mamba-1 initialisation (the rest initialise on first use).
    pub fn new(cfg: &Config, l: usize, vb: VarBuilder, init: Option<&mut VarMap>) -> Result<Self> {
        let mixer = match init {
            Some(varmap) => MambaMixer::init(cfg, vb.pp("mixer"), varmap)?,
            None => MambaMixer::new(cfg, vb.pp("mixer"))?,
        };
        let notes = if cfg.notes {
            let cross = if cfg.is_cross_layer(l) {
                Some((
                    NoteAttention::new(cfg, vb.pp("layer_attn"))?,
                    Gate::new(cfg, vb.pp("layer_gate"))?,
                ))
            } else {
                None
            };
            Some(NoteLayer {
                notes: NoteBlock::new(cfg, vb.pp("notes"))?,
                token_attn: NoteAttention::new(cfg, vb.pp("token_attn"))?,
                token_gate: Gate::new(cfg, vb.pp("token_gate"))?,
                cross,
            })
        } else {
            None
        };
        Ok(Self {
            norm: RmsNorm::new(cfg.d_model, cfg.rms_norm_eps, vb.pp("norm"))?,
            mixer,
            notes,
        })
    }
}

/// The modules of a layer that read the pools: its attentions over them and their gates.
const READ_PATH: [&str; 4] = ["token_attn", "token_gate", "layer_attn", "layer_gate"];

/// Whether the weight named `name` (as in the weights file) reads the pools: a layer's
/// attention over them or its gate.
pub fn reads_notes(name: &str) -> bool {
    name.split('.').any(|part| READ_PATH.contains(&part))
}

/// Whether the weight named `name` belongs to the note path: what reads the pools
/// ([`reads_notes`]) and the note block that writes and scores the notes. The rest (embedding,
/// norms, mixers) is the plain Mamba backbone.
pub fn in_note_path(name: &str) -> bool {
    reads_notes(name) || name.split('.').any(|part| part == "notes")
}

/// The layer whose cross-layer attention reads layer `j`'s pool: the first cross-layer layer
/// `l >= j` (its window `l + 1 - p ..= l` holds `j`), if there is one.
pub fn cross_reader(cfg: &Config, j: usize) -> Option<usize> {
    let p = cfg.cross_layer_period;
    let l = j - j % p + p - 1;
    (l < cfg.n_layer && cfg.is_cross_layer(l)).then_some(l)
}

/// How many attention modules read layer `j`'s notes: its own cross-token attention, plus the
/// cross-layer attention of [`cross_reader`] if any. Zero with notes off.
pub fn readers(cfg: &Config, j: usize) -> usize {
    if !cfg.notes {
        return 0;
    }
    1 + usize::from(cross_reader(cfg, j).is_some())
}
