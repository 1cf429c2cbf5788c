//! Kernel throughput: matmul at 256/512/1024 (reported as FLOP/s: criterion's "elem/s" counts
//! floating-point operations, 2·n³ per product) and an elementwise op (bytes moved per second).
//!
//! Run: `cargo bench --bench kernels` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use liandan::{Device, Tensor};

fn matmul(c: &mut Criterion) {
    let device = Device::new().expect("an adapter");
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for n in [256usize, 512, 1024] {
        let a = Tensor::randn(&device, &[n, n], 1).unwrap();
        let b = Tensor::randn(&device, &[n, n], 2).unwrap();
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        group.bench_function(format!("{n}x{n}x{n}"), |bench| {
            bench.iter(|| {
                let c = a.matmul(&b).unwrap();
                device.synchronize().unwrap();
                black_box(c);
            })
        });
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let device = Device::new().expect("an adapter");
    let mut group = c.benchmark_group("elementwise");
    group.sample_size(20);
    let n = 1 << 22;
    let x = Tensor::randn(&device, &[n], 3).unwrap();
    // hardswish reads 4 bytes and writes 4 bytes per element.
    group.throughput(Throughput::Bytes(8 * n as u64));
    group.bench_function("hardswish_4M", |bench| {
        bench.iter(|| {
            let y = x.hardswish().unwrap();
            device.synchronize().unwrap();
            black_box(y);
        })
    });
    let bias = Tensor::randn(&device, &[1, 64, 1, 1], 4).unwrap();
    let x4 = x.reshape(&[16, 64, 64, 64]).unwrap();
    group.throughput(Throughput::Bytes(8 * n as u64));
    group.bench_function("add_per_channel_4M", |bench| {
        bench.iter(|| {
            let y = x4.add(&bias).unwrap();
            device.synchronize().unwrap();
            black_box(y);
        })
    });
    group.finish();
}

criterion_group!(benches, matmul, elementwise);
criterion_main!(benches);
