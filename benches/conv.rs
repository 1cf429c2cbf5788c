//! Convolution throughput on the six benchmark shapes (`liandan::ops::conv::ConvCase`:
//! standard, depthwise, pointwise, grouped, dilated, transposed; batch 32), forward and
//! forward+backward. Criterion's "elem/s" counts floating-point operations: 2 per
//! multiply-add, and forward+backward counts 3× the forward's.
//!
//! Run: `cargo bench --bench conv` (add `-- --quick` for a short run). The same shapes
//! as a side-by-side table: `cargo run --release --example conv_report`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use liandan::Device;
use liandan::ops::conv::ConvCase;

fn conv(c: &mut Criterion) {
    let device = Device::new().expect("an adapter");
    let cases = ConvCase::all(&device, 32).expect("benchmark tensors");
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for case in &cases {
        let flops = 2 * case.macs();
        group.throughput(Throughput::Elements(flops));
        group.bench_function(format!("{}/forward", case.name), |b| {
            b.iter(|| {
                let y = case.forward().unwrap();
                device.synchronize().unwrap();
                black_box(y);
            })
        });
        group.throughput(Throughput::Elements(3 * flops));
        group.bench_function(format!("{}/forward_backward", case.name), |b| {
            b.iter(|| {
                let grads = case.forward_backward().unwrap();
                device.synchronize().unwrap();
                black_box(grads);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
