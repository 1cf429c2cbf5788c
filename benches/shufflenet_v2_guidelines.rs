//! ShuffleNet V2's guideline experiments G1–G4 (Ma et al., ECCV 2018, Section 2): one
//! criterion group per guideline (`g1` … `g4`), one benchmark per setting, each timing a
//! full forward of the stacked network plus the wait for the device. The networks, and how
//! the paper's open settings are read, are in `liandan::bench::guidelines`. Each iteration
//! is one batch, so criterion's "elem/s" reads as batches/s.
//!
//! Run: `cargo bench --bench shufflenet_v2_guidelines -- --quick` (about 5 minutes on
//! lavapipe with 2 cores; without `--quick`, 10 samples per setting take far longer). The
//! input defaults to the paper's GPU setting, batch 8 at 56×56; `LIANDAN_GUIDELINES_BATCH`
//! and `LIANDAN_GUIDELINES_SIZE` change it (criterion accepts no extra arguments). Under
//! `cargo test` each benchmark runs once at batch 1, 8×8, as a smoke test. The same
//! networks beside the paper's numbers: `cargo run --release --example guidelines_report`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use liandan::Device;
use liandan::bench::guidelines::{Guideline, networks};

/// Criterion runs each benchmark once, untimed, when the binary is started without
/// `--bench` (as `cargo test` does) or with `--test`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// A positive size from the environment variable `name`, else `default` (with a warning
/// when the variable is set but not a positive number).
fn env_size(name: &str, default: usize) -> usize {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
        eprintln!("{name}={v:?} is not a positive number; using {default}");
        default
    })
}

fn guidelines(c: &mut Criterion) {
    let device = Device::new().expect("an adapter");
    let (batch, size) = if test_mode() {
        (1, 8)
    } else {
        (
            env_size("LIANDAN_GUIDELINES_BATCH", 8),
            env_size("LIANDAN_GUIDELINES_SIZE", 56),
        )
    };
    for g in Guideline::ALL {
        let nets = networks(&device, g, batch, size).expect("benchmark networks");
        let mut group = c.benchmark_group(g.name());
        // A forward takes from a fraction of a second to ~10 s on a software adapter:
        // few samples, short warm-up, and a measurement time `--quick` also stops at.
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(1));
        for net in &nets {
            // Criterion calls this only for a benchmark it runs (not for `--list`, nor
            // for one a filter leaves out), so nothing runs before the listing.
            group.bench_function(&net.id, |b| {
                // `--quick` skips criterion's warm-up: compile the pipelines here instead.
                net.forward().expect("forward");
                device.synchronize().expect("device");
                b.iter(|| {
                    let y = net.forward().unwrap();
                    device.synchronize().unwrap();
                    black_box(y);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, guidelines);
criterion_main!(benches);
