//! `cargo run --release --example guidelines_report [-- --batch N] [--iters N] [--size N]
//! [--only g1,g3] [--markdown FILE] [--tsv]`: runs ShuffleNet V2's guideline experiments
//! G1–G4 (`liandan::bench::guidelines`, the networks `benches/shufflenet_v2_guidelines.rs`
//! times) and prints, per guideline, the paper's GPU batches/s and ARM images/s beside
//! liandan's batches/s on this adapter, each also normalized to the first row of its
//! guideline and paper column, and whether the paper's GPU ordering holds here.
//!
//! Each network runs once untimed (compiling its pipelines), then `--iters` times (default
//! 3), each forward followed by `Device::synchronize`, round-robin over the guideline's
//! settings; the median counts. Defaults: batch
//! 8, 56×56, as in the paper's GPU runs. `--markdown FILE` also writes the tables as
//! Markdown; `--tsv` prints instead one line per setting:
//! `guideline<TAB>setting<TAB>paper_gpu<TAB>liandan_batches_per_s`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use liandan::bench::guidelines::{Guideline, GuidelineNet, networks};
use liandan::{Device, Result};

/// Run ShuffleNet V2's guideline experiments G1-G4 and print their tables.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Images per batch
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Timed runs per network (the median is reported)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,
    /// Side of the input feature maps
    #[arg(long, default_value_t = 56, value_parser = clap::value_parser!(u64).range(1..))]
    size: u64,
    /// Guidelines to run, comma-separated (g1, g2, g3, g4)
    #[arg(long, value_delimiter = ',', default_value = "g1,g2,g3,g4", value_parser = parse_guideline)]
    only: Vec<Guideline>,
    /// Also write the tables as Markdown to this file
    #[arg(long)]
    markdown: Option<String>,
    /// One tab-separated line per setting
    #[arg(long)]
    tsv: bool,
}

fn parse_guideline(name: &str) -> std::result::Result<Guideline, String> {
    Guideline::ALL
        .into_iter()
        .find(|g| g.name().eq_ignore_ascii_case(name.trim()))
        .ok_or(format!("unknown guideline {name:?} (g1..g4)"))
}

/// One measured setting.
struct Row {
    setting: String,
    column: &'static str,
    paper_gpu: f64,
    paper_arm: Option<f64>,
    gmac: f64,
    /// liandan's batches per second.
    speed: f64,
}

/// Median seconds per forward of each of `nets`, each forward waited for. Every network
/// runs once untimed (compiling its pipelines); then the timed runs go round-robin, one
/// forward of each network per round, so a load that comes and goes on a shared machine
/// slows all settings alike and their ratios stay fair.
fn time(device: &Device, nets: &[GuidelineNet], iters: usize) -> Result<Vec<f64>> {
    for net in nets {
        net.forward()?;
        device.synchronize()?;
    }
    let mut times = vec![Vec::with_capacity(iters); nets.len()];
    for _ in 0..iters {
        for (net, times) in nets.iter().zip(&mut times) {
            let start = Instant::now();
            let y = net.forward()?;
            device.synchronize()?;
            times.push(start.elapsed().as_secs_f64());
            drop(y);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

/// `value` and its ratio to `base`, e.g. `1296 (0.88)`.
fn with_ratio(value: f64, base: f64, decimals: usize) -> String {
    format!("{value:.decimals$} ({:.2})", value / base)
}

/// The table cells of one guideline: a header and one row per setting. Each ratio is to
/// the first row of the same paper column.
fn cells(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "setting",
        "GMAC/batch",
        "paper GPU batches/s",
        "paper ARM images/s",
        "liandan batches/s",
    ];
    let body = rows
        .iter()
        .map(|r| {
            let first = rows.iter().find(|f| f.column == r.column).unwrap_or(r);
            let arm = match (r.paper_arm, first.paper_arm) {
                (Some(a), Some(b)) => with_ratio(a, b, 1),
                _ => "n/a".to_string(),
            };
            vec![
                r.setting.clone(),
                format!("{:.2}", r.gmac),
                with_ratio(r.paper_gpu, first.paper_gpu, 0),
                arm,
                with_ratio(r.speed, first.speed, 3),
            ]
        })
        .collect();
    (header.map(String::from).to_vec(), body)
}

/// Whether liandan ranks each column's settings as the paper's GPU does; else the pairs
/// it ranks the other way, each with liandan's gap (under 5% is within run-to-run noise
/// on a loaded machine).
fn ordering(rows: &[Row]) -> String {
    let mut columns: Vec<&str> = rows.iter().map(|r| r.column).collect();
    columns.dedup();
    let verdicts: Vec<String> = columns
        .iter()
        .map(|&column| {
            let col: Vec<&Row> = rows.iter().filter(|r| r.column == column).collect();
            let mut flipped = Vec::new();
            for (i, a) in col.iter().enumerate() {
                for b in &col[i + 1..] {
                    if (a.paper_gpu > b.paper_gpu) != (a.speed > b.speed) {
                        // Name the pair as liandan ranks it: faster first.
                        let (fast, slow) = if a.speed > b.speed { (a, b) } else { (b, a) };
                        let gap = 100.0 * (fast.speed / slow.speed - 1.0);
                        // G4's settings repeat their column in the name: say it once.
                        let name = |r: &Row| {
                            let prefix = format!("{column}: ");
                            r.setting
                                .strip_prefix(&prefix)
                                .unwrap_or(&r.setting)
                                .to_string()
                        };
                        flipped.push(format!(
                            "{} faster than {} by {gap:.0}%",
                            name(fast),
                            name(slow)
                        ));
                    }
                }
            }
            let verdict = if flipped.is_empty() {
                "holds".to_string()
            } else {
                format!("differs: {}", flipped.join("; "))
            };
            if columns.len() > 1 {
                format!("{column}: {verdict}")
            } else {
                verdict
            }
        })
        .collect();
    format!("paper's GPU ordering: {}", verdicts.join(" | "))
}

fn text_table(header: &[String], body: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in std::iter::once(header).chain(body.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn markdown_table(header: &[String], body: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|---|", header.join(" | "));
    out += &"---:|".repeat(header.len() - 1);
    out.push('\n');
    for row in body {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

fn run(args: &Args) -> Result<()> {
    let device = Device::new()?;
    let s = device.summary();
    let adapter = format!("{} ({}, {})", s.name, s.backend, s.device_type);
    let setup = format!(
        "batch {}, {}x{}, median of {} round-robin forwards after one warm-up each",
        args.batch, args.size, args.size, args.iters
    );
    if !args.tsv {
        println!("adapter: {adapter}\n{setup}\n");
    }
    let mut markdown = format!("Adapter: {adapter}; {setup}.\n");
    for &g in &args.only {
        let nets = networks(&device, g, args.batch as usize, args.size as usize)?;
        eprintln!("{}: timing {} settings", g.name(), nets.len());
        let secs = time(&device, &nets, args.iters as usize)?;
        let rows: Vec<Row> = nets
            .iter()
            .zip(secs)
            .map(|(net, secs)| Row {
                setting: net.setting.clone(),
                column: net.column,
                paper_gpu: net.paper_gpu,
                paper_arm: net.paper_arm,
                gmac: net.flops() as f64 / 1e9,
                speed: 1.0 / secs,
            })
            .collect();
        drop(nets);
        let caption = format!(
            "{}; paper's ARM column measured at {}",
            g.structure(),
            g.paper_arm_widths()
        );
        let (header, body) = cells(&rows);
        let verdict = ordering(&rows);
        if args.tsv {
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{:.4}",
                    g.name(),
                    r.setting,
                    r.paper_gpu,
                    r.speed
                );
            }
        } else {
            print!("{}\n{caption}\n", g.title());
            print!("{}", text_table(&header, &body));
            println!("{verdict}\n");
        }
        let _ = write!(
            markdown,
            "\n### {}\n\n{caption}.\n\n{}\n{verdict}.\n",
            g.title(),
            markdown_table(&header, &body)
        );
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown)
            .map_err(|e| liandan::Error::InvalidArgument(format!("writing {path}: {e}")))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guidelines_report: {e}");
            ExitCode::FAILURE
        }
    }
}
