//! Matrix-product throughput at a few sizes: `cargo run --release --example
//! matmul_report [-- --sizes 1024,2048,4096]` times `A · B` (square, f32) with each
//! kernel this adapter has and prints GFLOP/s (2·n³ per product; the median of
//! `--iters` runs, each waiting for the device).

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use liandan::ops::matmul::{MatmulKernel, matmul_with};
use liandan::{Device, Result, Tensor};

/// Time square matrix products and print GFLOP/s per kernel.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Matrix sides, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<usize>,
    /// Timed runs per size (the median is reported)
    #[arg(long, default_value_t = 5)]
    iters: usize,
}

fn run(args: &Args) -> Result<()> {
    let device = Device::new()?;
    let s = device.summary();
    println!("adapter: {} ({}, {})", s.name, s.backend, s.device_type);
    let mut kernels = vec![
        MatmulKernel::Auto,
        MatmulKernel::Portable,
        MatmulKernel::Tiled,
    ];
    if s.subgroup_sizes == Some((8, 8)) {
        kernels.push(MatmulKernel::Subgroup8);
    }
    println!("size\tkernel\tms\tGFLOP/s");
    for &n in &args.sizes {
        let a = Tensor::randn(&device, &[n, n], 1)?;
        let b = Tensor::randn(&device, &[n, n], 2)?;
        for &kernel in &kernels {
            matmul_with(&a, &b, false, false, kernel)?; // compile
            device.synchronize()?;
            let mut times = Vec::with_capacity(args.iters.max(1));
            for _ in 0..args.iters.max(1) {
                let start = Instant::now();
                matmul_with(&a, &b, false, false, kernel)?;
                device.synchronize()?;
                times.push(start.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let t = times[times.len() / 2];
            let gflops = 2.0 * (n as f64).powi(3) / t / 1e9;
            println!("{n}\t{kernel:?}\t{:.3}\t{gflops:.1}", 1e3 * t);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("matmul_report: {e}");
            ExitCode::FAILURE
        }
    }
}
