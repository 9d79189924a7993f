//! The figures of `benches/versus.rs` and its markdown table: null server, Alertmanager, then tocsin on
//! each backend, with tocsin's first backend divided by Alertmanager and every other backend divided by
//! the first.

use std::collections::HashMap;

use super::storage::Backend;
use super::Bench;

/// The null server's column.
pub const NULL: &str = "null";
/// Alertmanager's column.
pub const AM: &str = "alertmanager";

/// One measured figure (a row, or half of one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Fig {
    Ingest,
    Applied,
    AppliedPlugins,
    Resends,
    P50At100,
    P99At100,
    MissingAt100,
    P50At1000,
    P99At1000,
    MissingAt1000,
    Rss,
}

impl Fig {
    /// Missing webhooks show the worst run; everything else the median.
    fn worst_run(self) -> bool {
        matches!(self, Fig::MissingAt100 | Fig::MissingAt1000)
    }
}

/// Each figure by column (`NULL`, `AM` or a backend's label), one value per run.
#[derive(Default)]
pub struct Figures(HashMap<(Fig, String), Vec<f64>>);

impl Figures {
    pub fn add(&mut self, fig: Fig, column: &str, value: f64) {
        self.0
            .entry((fig, column.to_string()))
            .or_default()
            .push(value);
    }

    pub fn merge(&mut self, other: Figures) {
        for (key, values) in other.0 {
            self.0.entry(key).or_default().extend(values);
        }
    }

    /// The median over runs (the maximum for missing webhooks), if measured.
    fn get(&self, fig: Fig, column: &str) -> Option<f64> {
        let mut values = self.0.get(&(fig, column.to_string()))?.clone();
        values.sort_by(f64::total_cmp);
        if fig.worst_run() {
            return values.last().copied();
        }
        values.get(values.len() / 2).copied()
    }
}

/// A table row: its figures (two for a "p50 / p99" row), and which of Alertmanager's stand beside them.
struct Row {
    label: &'static str,
    figs: &'static [Fig],
    am_figs: &'static [Fig],
    decimals: usize,
    ratios: bool,
}

const ROWS: &[Row] = &[
    Row {
        label: "batched ingest, accepted alerts/s",
        figs: &[Fig::Ingest],
        am_figs: &[Fig::Ingest],
        decimals: 0,
        ratios: true,
    },
    Row {
        label: "new alerts applied to tickets, alerts/s (AM: its batched ingest)",
        figs: &[Fig::Applied],
        am_figs: &[Fig::Ingest],
        decimals: 0,
        ratios: true,
    },
    Row {
        label: "same, with the 3 example plugins (AM: its batched ingest)",
        figs: &[Fig::AppliedPlugins],
        am_figs: &[Fig::Ingest],
        decimals: 0,
        ratios: true,
    },
    Row {
        label: "resends applied, alerts/s (AM: its ingest of the resends)",
        figs: &[Fig::Resends],
        am_figs: &[Fig::Resends],
        decimals: 0,
        ratios: true,
    },
    Row {
        label: "alert → webhook p50 / p99 ms at 100/s",
        figs: &[Fig::P50At100, Fig::P99At100],
        am_figs: &[Fig::P50At100, Fig::P99At100],
        decimals: 2,
        ratios: true,
    },
    Row {
        label: "alert → webhook p50 / p99 ms at 1,000/s",
        figs: &[Fig::P50At1000, Fig::P99At1000],
        am_figs: &[Fig::P50At1000, Fig::P99At1000],
        decimals: 2,
        ratios: true,
    },
    Row {
        label: "webhooks never arrived, at 100/s / 1,000/s",
        figs: &[Fig::MissingAt100, Fig::MissingAt1000],
        am_figs: &[Fig::MissingAt100, Fig::MissingAt1000],
        decimals: 0,
        ratios: false,
    },
    Row {
        label: "RSS MiB per 100,000 alerts held",
        figs: &[Fig::Rss],
        am_figs: &[Fig::Rss],
        decimals: 1,
        ratios: true,
    },
];

/// `figs` of `column`, joined with " / ", or None if any is missing.
fn values(figures: &Figures, figs: &[Fig], column: &str) -> Option<Vec<f64>> {
    figs.iter().map(|&f| figures.get(f, column)).collect()
}

fn cell(values: Option<Vec<f64>>, decimals: usize) -> String {
    match values {
        Some(v) => v
            .iter()
            .map(|x| format!("{x:.decimals$}"))
            .collect::<Vec<_>>()
            .join(" / "),
        None => "–".into(),
    }
}

fn ratio(top: Option<Vec<f64>>, bottom: Option<Vec<f64>>) -> String {
    match (top, bottom) {
        (Some(t), Some(b)) => t
            .iter()
            .zip(&b)
            .map(|(t, b)| format!("{:.2}", t / b))
            .collect::<Vec<_>>()
            .join(" / "),
        _ => "–".into(),
    }
}

/// Prints the figures as one markdown table.
pub fn print(title: &str, figures: &Figures, backends: &[Backend], bench: &Bench) {
    let kind = |b: &Backend| b.label().split(' ').next().unwrap_or_default().to_string();
    let mut header = vec![
        "figure".to_string(),
        "null server".into(),
        "Alertmanager 0.25".into(),
    ];
    for (i, b) in backends.iter().enumerate() {
        header.push(format!("tocsin {}", kind(b)));
        header.push(if i == 0 {
            format!("{} / AM", kind(b))
        } else {
            format!("{} / {}", kind(b), kind(&backends[0]))
        });
    }
    let mut lines = vec![header];
    for row in ROWS {
        let mut line = vec![row.label.to_string()];
        line.push(cell(values(figures, row.figs, NULL), row.decimals));
        let am = values(figures, row.am_figs, AM);
        line.push(cell(am.clone(), row.decimals));
        let first = backends
            .first()
            .and_then(|b| values(figures, row.figs, &b.label()));
        for (i, b) in backends.iter().enumerate() {
            let mine = values(figures, row.figs, &b.label());
            line.push(cell(mine.clone(), row.decimals));
            let base = if i == 0 { am.clone() } else { first.clone() };
            line.push(if row.ratios {
                ratio(mine, base)
            } else {
                "–".into()
            });
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!(
        "\n{title}: ingest {} s, {} alerts held, latency {} s per rate, {} connections\n",
        bench.seconds.as_secs(),
        bench.alerts,
        bench.latency_seconds,
        bench.connections
    );
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (text, &w))| {
                let pad = w - text.chars().count();
                if c == 0 {
                    format!("{text}{}", " ".repeat(pad))
                } else {
                    format!("{}{text}", " ".repeat(pad))
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
        if n == 0 {
            // Markdown's alignment row: the label column left, the figures right.
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    if c == 0 {
                        "-".repeat(w + 2)
                    } else {
                        format!("{}:", "-".repeat(w + 1))
                    }
                })
                .collect();
            println!("|{}|", rule.join("|"));
        }
    }
}
