//! The evaluation command's work (`memmamba-train eval`): runs the chosen measurements on each
//! model (MemMamba beside its notes-off baseline), prints them as markdown tables side by side
//! and draws the PNG plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use memmamba::{Gating, MemMamba};

use crate::eval::{
    multikey_grid, passkey_grid, perplexity_vs_context, recall_vs_distance, MultikeyCell,
    PasskeyCell, PerplexityRow, Reading, RecallRow, Tally, QUOTE_TOKENS, RECALL_LEAD,
};
use crate::fidelity::{fidelity, quarter_layers, Fidelity, FidelityConfig};
use crate::plots::{compact, heatmap, line_chart, Series};
use crate::tokenizer::BookTokenizer;
use crate::tokens::TokenStore;
use crate::TrainError;

/// One measurement of EVAL.md's model-quality part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Measure {
    Perplexity,
    Passkey,
    Multikey,
    Recall,
    Fidelity,
}

impl Measure {
    pub const ALL: [Measure; 5] = [
        Measure::Perplexity,
        Measure::Passkey,
        Measure::Multikey,
        Measure::Recall,
        Measure::Fidelity,
    ];
}

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    pub measures: Vec<Measure>,
    pub contexts: Vec<usize>,
    pub windows: usize,
    /// Tokens scored at the end of each perplexity window.
    pub scored: usize,
    pub passkey_lengths: Vec<usize>,
    pub depths: Vec<f64>,
    /// One trial count for all pass-key lengths, or one per length.
    pub passkey_trials: Vec<usize>,
    pub multikey_lengths: Vec<usize>,
    pub keys: Vec<usize>,
    pub multikey_trials: usize,
    /// How the pass-key and multi-key trials read.
    pub reading: Reading,
    pub recall_distances: Vec<usize>,
    pub recall_trials: usize,
    /// With `layers` empty, each model's quarter depths ([`quarter_layers`]).
    pub fidelity: FidelityConfig,
    pub seed: u64,
}

/// Everything measured on one model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelReport {
    pub label: String,
    pub notes: bool,
    pub n_layer: usize,
    pub perplexity: Vec<PerplexityRow>,
    pub passkey: Vec<PasskeyCell>,
    pub multikey: Vec<MultikeyCell>,
    pub recall: Vec<RecallRow>,
    pub fidelity: Option<Fidelity>,
}

/// Runs `plan` on `model`, calling `progress` as each measurement starts.
pub fn evaluate(
    label: &str,
    model: &MemMamba,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    plan: &EvalPlan,
    mut progress: impl FnMut(&str),
) -> Result<ModelReport, TrainError> {
    let wants = |m| plan.measures.contains(&m);
    let mut report = ModelReport {
        label: label.to_string(),
        notes: model.config().notes,
        n_layer: model.config().n_layer,
        perplexity: Vec::new(),
        passkey: Vec::new(),
        multikey: Vec::new(),
        recall: Vec::new(),
        fidelity: None,
    };
    if wants(Measure::Perplexity) {
        progress("perplexity");
        report.perplexity = perplexity_vs_context(
            model,
            tokenizer,
            store,
            &plan.contexts,
            plan.windows,
            plan.scored,
            plan.seed,
        )?;
    }
    if wants(Measure::Passkey) {
        progress("pass key");
        report.passkey = passkey_grid(
            model,
            plan.reading,
            tokenizer,
            store,
            &plan.passkey_lengths,
            &plan.depths,
            &plan.passkey_trials,
            plan.seed,
        )?;
    }
    if wants(Measure::Multikey) {
        progress("multi-key");
        report.multikey = multikey_grid(
            model,
            plan.reading,
            tokenizer,
            store,
            &plan.multikey_lengths,
            &plan.keys,
            plan.multikey_trials,
            plan.seed,
        )?;
    }
    if wants(Measure::Recall) {
        progress("recall");
        report.recall = recall_vs_distance(
            model,
            tokenizer,
            store,
            &plan.recall_distances,
            plan.recall_trials,
            plan.seed,
        )?;
    }
    if wants(Measure::Fidelity) {
        progress("fidelity");
        let mut cfg = plan.fidelity.clone();
        if cfg.layers.is_empty() {
            cfg.layers = quarter_layers(model.config().n_layer);
        }
        report.fidelity = Some(fidelity(model, store, &cfg)?);
    }
    Ok(report)
}

fn ratio(correct: usize, trials: usize) -> Option<f64> {
    (trials > 0).then(|| correct as f64 / trials as f64)
}

fn cell(correct: usize, trials: usize) -> String {
    match ratio(correct, trials) {
        Some(r) => format!("{:.0}% ({correct}/{trials})", r * 100.0),
        None => "-".to_string(),
    }
}

/// Distinct values in order of first appearance.
fn distinct<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Appends a markdown table with one row per length and one column per entry of `columns`;
/// `cells` are (length, text), a length's cells in the order of `columns`.
fn length_table(
    s: &mut String,
    columns: &[String],
    cells: impl Iterator<Item = (usize, String)> + Clone,
) {
    let _ = write!(s, "| length |");
    for column in columns {
        let _ = write!(s, " {column} |");
    }
    let _ = writeln!(s, "\n|---:|{}", "---:|".repeat(columns.len()));
    for length in distinct(cells.clone().map(|(length, _)| length)) {
        let _ = write!(s, "| {length} |");
        for (_, text) in cells.clone().filter(|(l, _)| *l == length) {
            let _ = write!(s, " {text} |");
        }
        s.push('\n');
    }
    s.push('\n');
}

/// A retrieval grid's tables for the model `label`: exact answers under `title`, the
/// comparison against a foil (the share beating it and the answer's mean NLL), the wrong first
/// tokens and the digits right before the first mistake, and with notes (`pool_layers`: the
/// model's layer count) how many layers' pools held the asked fact and each of its answer's
/// digits.
fn retrieval_tables<'a>(
    s: &mut String,
    title: &str,
    label: &str,
    pool_layers: Option<usize>,
    columns: &[String],
    cells: impl Iterator<Item = (usize, &'a Tally)> + Clone,
) {
    let _ = writeln!(s, "## {title} (correct/trials)\n");
    length_table(
        s,
        columns,
        cells.clone().map(|(l, t)| (l, cell(t.correct, t.trials))),
    );
    let _ = writeln!(
        s,
        "## Against a foil: {label} (trials where the expected answer was more likely than \
         another five-digit number, chance 50%; mean negative log-likelihood of the expected \
         answer in nats, 11.5 for a uniform guess)\n"
    );
    length_table(
        s,
        columns,
        cells.clone().map(|(l, t)| {
            (
                l,
                format!("{} · {:.1}", cell(t.beats_foil, t.trials), t.answer_nll),
            )
        }),
    );
    let _ = writeln!(
        s,
        "## Wrong at the first token: {label} (of the wrong answers, those whose first token, \
         the number's leading digits, was already wrong; after the dot, how many of the five \
         digits they had right before their first mistake, on average)\n"
    );
    length_table(
        s,
        columns,
        cells.clone().map(|(l, t)| {
            let wrong = t.trials - t.correct;
            let first = cell(t.wrong_first_token, wrong);
            match wrong {
                0 => (l, first),
                _ => (l, format!("{first} · {:.1}", t.wrong_leading_digits)),
            }
        }),
    );
    if let Some(n_layer) = pool_layers {
        let _ = writeln!(
            s,
            "## The asked fact in the pools: {label} (mean number of the {n_layer} layers whose \
             summary pool, after the question, held a note written by the fact's sentence; \
             after the dot, the share of attention reads that the sparse gate skipped)\n"
        );
        length_table(
            s,
            columns,
            cells.clone().map(|(l, t)| {
                (
                    l,
                    format!(
                        "{:.1} · {:.0}%",
                        t.layers_holding_fact,
                        100.0 * t.gate_skip_rate
                    ),
                )
            }),
        );
        let _ = writeln!(
            s,
            "## The answer's digits in the pools: {label} (for each digit of the expected \
             answer, first to last, the mean number of the {n_layer} layers whose summary pool, \
             after the question, held a note written by the token that states it)\n"
        );
        length_table(
            s,
            columns,
            cells.map(|(l, t)| {
                let digits: Vec<String> = t
                    .layers_holding_digit
                    .iter()
                    .map(|layers| format!("{layers:.1}"))
                    .collect();
                (l, digits.join(" / "))
            }),
        );
    }
}

/// The markdown tables of `reports`, models side by side where they share a table.
pub fn markdown(reports: &[ModelReport], plan: &EvalPlan) -> String {
    let mut s = String::new();
    let names: Vec<&str> = reports.iter().map(|r| r.label.as_str()).collect();
    let header = |s: &mut String, first: &str, per_model: &[&str]| {
        let mut cols = vec![first.to_string()];
        for name in &names {
            cols.extend(
                per_model
                    .iter()
                    .map(|c| format!("{name} {c}").trim().to_string()),
            );
        }
        let _ = writeln!(s, "| {} |", cols.join(" | "));
        let _ = writeln!(s, "|{}", "---:|".repeat(cols.len()));
    };
    let retrieval = [Measure::Passkey, Measure::Multikey];
    if plan.reading != Reading::default() && retrieval.iter().any(|m| plan.measures.contains(m)) {
        let _ = writeln!(
            s,
            "Pass keys and multi-key facts read with {} gates{}.\n",
            match plan.reading.gating {
                Gating::Soft => "soft (training's)",
                Gating::Sparse => "sparse (the app's)",
            },
            if plan.reading.pool_only {
                ", the recurrent state zeroed before the question (the answer from the notes alone)"
            } else {
                ""
            }
        );
    }
    if plan.measures.contains(&Measure::Perplexity) {
        let _ = writeln!(
            s,
            "## Perplexity vs context (last {} tokens of each window, up to {} windows; \
             perplexity per token · bits per byte, which compares tokenizers)\n",
            plan.scored, plan.windows
        );
        header(&mut s, "context", &["perplexity · bits per byte"]);
        for context in distinct(
            reports
                .iter()
                .flat_map(|r| r.perplexity.iter().map(|p| p.context)),
        ) {
            let _ = write!(s, "| {context} |");
            for r in reports {
                match r.perplexity.iter().find(|p| p.context == context) {
                    Some(p) => write!(
                        s,
                        " {:.2} · {:.4} ({} w) |",
                        p.perplexity, p.bits_per_byte, p.windows
                    ),
                    None => write!(s, " - |"),
                }
                .ok();
            }
            s.push('\n');
        }
        s.push('\n');
    }
    if plan.measures.contains(&Measure::Passkey) {
        for r in reports {
            let depths: Vec<String> = distinct(r.passkey.iter().map(|c| c.depth.to_bits()))
                .iter()
                .map(|d| format!("depth {}", f64::from_bits(*d)))
                .collect();
            retrieval_tables(
                &mut s,
                &format!("Pass-key accuracy: {}", r.label),
                &r.label,
                r.notes.then_some(r.n_layer),
                &depths,
                r.passkey.iter().map(|c| (c.length, &c.tally)),
            );
        }
    }
    if plan.measures.contains(&Measure::Multikey) {
        for r in reports {
            let keys: Vec<String> = distinct(r.multikey.iter().map(|c| c.keys))
                .iter()
                .map(|k| format!("{k} keys"))
                .collect();
            retrieval_tables(
                &mut s,
                &format!("Multi-key accuracy: {}", r.label),
                &r.label,
                r.notes.then_some(r.n_layer),
                &keys,
                r.multikey.iter().map(|c| (c.length, &c.tally)),
            );
        }
    }
    if plan.measures.contains(&Measure::Recall) {
        let _ = writeln!(
            s,
            "## Recall of real text vs distance ({QUOTE_TOKENS}-token quote at a sentence \
             start after {RECALL_LEAD} tokens; half given, half to complete; exact match and \
             greedy token accuracy of the continuation)\n"
        );
        header(&mut s, "distance", &["exact", "tokens"]);
        for distance in distinct(
            reports
                .iter()
                .flat_map(|r| r.recall.iter().map(|p| p.distance)),
        ) {
            let _ = write!(s, "| {distance} |");
            for r in reports {
                match r.recall.iter().find(|p| p.distance == distance) {
                    Some(p) => write!(
                        s,
                        " {} | {} |",
                        cell(p.exact, p.trials),
                        cell(p.tokens_correct, p.tokens)
                    ),
                    None => write!(s, " - | - |"),
                }
                .ok();
            }
            s.push('\n');
        }
        s.push('\n');
    }
    if plan.measures.contains(&Measure::Fidelity) {
        for r in reports {
            let Some(f) = &r.fidelity else { continue };
            let _ = writeln!(
                s,
                "## ETMF (ours, MODEL.md 7): {}: mean cos(e_t, R_k(z^l_(t+k))), ridge probes \
                 fit on {} rows of the books' first halves, scored on {} rows of the second \
                 halves\n",
                r.label, f.fit_rows, f.test_rows
            );
            let lags = distinct(f.etmf.iter().map(|p| p.lag));
            let _ = write!(s, "| layer l |");
            lags.iter().for_each(|k| s.push_str(&format!(" k={k} |")));
            let _ = writeln!(s, "\n|---:|{}", "---:|".repeat(lags.len()));
            for layer in distinct(f.etmf.iter().map(|p| p.layer)) {
                let _ = write!(s, "| {layer} |");
                for p in f.etmf.iter().filter(|p| p.layer == layer) {
                    let _ = write!(s, " {:.3} |", p.fidelity);
                }
                s.push('\n');
            }
            let _ = writeln!(
                s,
                "\n## ECLMF (ours, MODEL.md 7): {}: mean cos(z^l_t, R(z^(l+m)_t))\n",
                r.label
            );
            let _ = writeln!(s, "| layer l | m | l+m | fidelity |\n|---:|---:|---:|---:|");
            for p in &f.eclmf {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.3} |",
                    p.layer,
                    p.up,
                    p.layer + p.up,
                    p.fidelity
                );
            }
            s.push('\n');
        }
    }
    s
}

/// A file-name-safe form of a label.
fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A heatmap of accuracy with one row per length and one column per entry of `columns`;
/// `cells` are (length, correct, trials), a length's cells in the order of `columns`.
fn accuracy_heatmap(
    path: &Path,
    title: &str,
    x_label: &str,
    columns: &[String],
    cells: impl Iterator<Item = (usize, usize, usize)> + Clone,
) -> Result<(), TrainError> {
    let lengths = distinct(cells.clone().map(|(length, _, _)| length));
    let values = lengths
        .iter()
        .map(|&l| {
            cells
                .clone()
                .filter(|&(length, _, _)| length == l)
                .map(|(_, correct, trials)| ratio(correct, trials))
                .collect()
        })
        .collect::<Vec<_>>();
    let rows = lengths
        .iter()
        .map(|&l| compact(l as f64))
        .collect::<Vec<_>>();
    heatmap(
        path,
        title,
        x_label,
        "length (tokens)",
        columns,
        &rows,
        &values,
    )
}

/// One line per layer of `points` (layer, x, y), named by `name`, in the layers' first order.
fn series_by_layer(
    points: impl Iterator<Item = (usize, f64, f64)> + Clone,
    name: impl Fn(usize) -> String,
) -> Vec<Series> {
    distinct(points.clone().map(|(layer, _, _)| layer))
        .into_iter()
        .map(|l| Series {
            name: name(l),
            points: points
                .clone()
                .filter(|&(layer, _, _)| layer == l)
                .map(|(_, x, y)| (x, y))
                .collect(),
        })
        .collect()
}

/// Draws the plots of `reports` into `dir` (created if needed) and writes `results.json`;
/// returns the files written.
pub fn write_plots(reports: &[ModelReport], dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let mut files = Vec::new();
    let json_path = dir.join("results.json");
    let json = serde_json::to_vec_pretty(reports)
        .map_err(|e| TrainError::format(&json_path, e.to_string()))?;
    std::fs::write(&json_path, json).map_err(|e| TrainError::io(&json_path, e))?;
    files.push(json_path);

    if reports.iter().any(|r| !r.perplexity.is_empty()) {
        let path = dir.join("perplexity.png");
        let series: Vec<Series> = reports
            .iter()
            .map(|r| Series {
                name: r.label.clone(),
                points: r
                    .perplexity
                    .iter()
                    .map(|p| (p.context as f64, p.perplexity))
                    .collect(),
            })
            .collect();
        line_chart(
            &path,
            "Perplexity vs context",
            "context (tokens)",
            "perplexity",
            true,
            &series,
        )?;
        files.push(path);
    }
    if reports.iter().any(|r| !r.recall.is_empty()) {
        let path = dir.join("recall.png");
        let mut series = Vec::new();
        for r in reports {
            let exact = |p: &RecallRow| ratio(p.exact, p.trials).map(|v| (p.distance as f64, v));
            let tokens =
                |p: &RecallRow| ratio(p.tokens_correct, p.tokens).map(|v| (p.distance as f64, v));
            series.push(Series {
                name: format!("{} exact", r.label),
                points: r.recall.iter().filter_map(exact).collect(),
            });
            series.push(Series {
                name: format!("{} tokens", r.label),
                points: r.recall.iter().filter_map(tokens).collect(),
            });
        }
        line_chart(
            &path,
            "Recall of a quote vs distance",
            "distance from the quote to the question (tokens)",
            "accuracy",
            true,
            &series,
        )?;
        files.push(path);
    }
    for r in reports {
        let name = slug(&r.label);
        if !r.passkey.is_empty() {
            let depths = distinct(r.passkey.iter().map(|c| c.depth.to_bits()));
            let path = dir.join(format!("passkey-{name}.png"));
            accuracy_heatmap(
                &path,
                &format!("Pass-key accuracy: {}", r.label),
                "depth of the key in the text",
                &depths
                    .iter()
                    .map(|d| compact(f64::from_bits(*d)))
                    .collect::<Vec<_>>(),
                r.passkey
                    .iter()
                    .map(|c| (c.length, c.tally.correct, c.tally.trials)),
            )?;
            files.push(path);
        }
        if !r.multikey.is_empty() {
            let keys = distinct(r.multikey.iter().map(|c| c.keys));
            let path = dir.join(format!("multikey-{name}.png"));
            accuracy_heatmap(
                &path,
                &format!("Multi-key accuracy: {}", r.label),
                "keys stated",
                &keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                r.multikey
                    .iter()
                    .map(|c| (c.length, c.tally.correct, c.tally.trials)),
            )?;
            files.push(path);
        }
        if let Some(f) = &r.fidelity {
            let path = dir.join(format!("etmf-{name}.png"));
            let series = series_by_layer(
                f.etmf.iter().map(|p| (p.layer, p.lag as f64, p.fidelity)),
                |l| format!("layer {l}"),
            );
            line_chart(
                &path,
                &format!("ETMF (ours): {}", r.label),
                "lag k (tokens)",
                "mean cos(e_t, probe(z^l_t+k))",
                true,
                &series,
            )?;
            files.push(path);
            let path = dir.join(format!("eclmf-{name}.png"));
            let series = series_by_layer(
                f.eclmf.iter().map(|p| (p.layer, p.up as f64, p.fidelity)),
                |l| format!("from layer {l}"),
            );
            line_chart(
                &path,
                &format!("ECLMF (ours): {}", r.label),
                "layers up m",
                "mean cos(z^l_t, probe(z^l+m_t))",
                false,
                &series,
            )?;
            files.push(path);
        }
    }
    Ok(files)
}
