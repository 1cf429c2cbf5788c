//! `cargo run --release --example conv_report [-- --tsv] [--batch N] [--iters N]`: times
//! the benchmark convolutions (`liandan::ops::conv::ConvCase`), forward and
//! forward+backward, and prints ms and GFLOP/s (2·multiply-adds; forward+backward counts
//! 3× the forward's) per shape, plus the first call's time (pipeline compilation included).
//! With `--tsv`: `name<TAB>fwd_ms<TAB>fwd_gflops<TAB>fwd_bwd_ms<TAB>fwd_bwd_gflops`.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use liandan::ops::conv::ConvCase;
use liandan::{Device, Result};

/// Time the benchmark convolutions, forward and forward+backward.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// One tab-separated line per shape
    #[arg(long)]
    tsv: bool,
    /// Images per batch
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Timed runs per shape (the median is reported)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,
}

/// Median seconds of `iters` timed runs of `f` (each waits for the device).
fn time(device: &Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn run(args: &Args) -> Result<()> {
    let device = Device::new()?;
    let cases = ConvCase::all(&device, args.batch as usize)?;
    device.synchronize()?;
    if !args.tsv {
        let s = device.summary();
        println!(
            "adapter: {} ({}, {}), batch {}, median of {} runs",
            s.name, s.backend, s.device_type, args.batch, args.iters
        );
        println!(
            "{:<46} {:>9} {:>9} {:>10} {:>10} {:>9}",
            "shape", "fwd ms", "fwd GF/s", "f+b ms", "f+b GF/s", "first s"
        );
    }
    for case in &cases {
        let first = Instant::now();
        case.forward_backward()?;
        device.synchronize()?;
        let first = first.elapsed().as_secs_f64();
        let fwd = time(&device, args.iters as usize, || case.forward().map(drop))?;
        let both = time(&device, args.iters as usize, || {
            case.forward_backward().map(drop)
        })?;
        let flops = 2.0 * case.macs() as f64;
        let (gf, gb) = (flops / fwd / 1e9, 3.0 * flops / both / 1e9);
        if args.tsv {
            println!(
                "{}\t{:.3}\t{:.3}\t{:.3}\t{:.3}",
                case.name,
                fwd * 1e3,
                gf,
                both * 1e3,
                gb
            );
        } else {
            println!(
                "{:<46} {:>9.2} {:>9.2} {:>10.2} {:>10.2} {:>9.2}",
                case.description,
                fwd * 1e3,
                gf,
                both * 1e3,
                gb,
                first
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conv_report: {e}");
            ExitCode::FAILURE
        }
    }
}
