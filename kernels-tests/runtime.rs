//! The runtime: creation, reshape, determinism, buffer pooling, grid folding, size limits.

use liandan::{Device, Error, Tensor};

use crate::common::*;

#[test]
fn creation_and_read_back() {
    let d = device();
    assert_eq!(
        Tensor::zeros(d, &[2, 3]).unwrap().to_vec().unwrap(),
        vec![0.0; 6]
    );
    assert_eq!(
        Tensor::ones(d, &[3]).unwrap().to_vec().unwrap(),
        vec![1.0; 3]
    );
    assert_eq!(
        Tensor::full(d, &[1, 2], -2.5).unwrap().to_vec().unwrap(),
        vec![-2.5; 2]
    );
    let t = Tensor::from_vec(d, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(t.numel(), 6);
    assert_eq!(t.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        Tensor::arange(d, 0.0, 5.0, 1.0).unwrap().to_vec().unwrap(),
        vec![0.0, 1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        Tensor::arange(d, 1.0, -1.0, -0.5)
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![1.0, 0.5, 0.0, -0.5]
    );
    // The poison value the tests rely on survives a fill and a read-back.
    assert!(
        Tensor::full(d, &[5], f32::NAN)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    assert_eq!(d.poison().map(f32::is_nan), Some(true));
    let empty = Tensor::zeros(d, &[0, 4]).unwrap();
    assert_eq!(empty.to_vec().unwrap(), Vec::<f32>::new());
    assert_eq!(empty.relu().unwrap().shape(), &[0, 4]);
}

#[test]
fn reshape_shares_storage_and_checks_counts() {
    let d = device();
    let t = Tensor::arange(d, 0.0, 24.0, 1.0).unwrap();
    let r = t.reshape(&[2, 3, 4]).unwrap();
    assert_eq!(r.shape(), &[2, 3, 4]);
    assert_eq!(r.to_vec().unwrap(), t.to_vec().unwrap());
    match t.reshape(&[5, 5]) {
        Err(Error::Shape(msg)) => assert!(msg.contains("[24]") && msg.contains("[5, 5]"), "{msg}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn bad_creation_arguments_are_errors() {
    let d = device();
    assert!(matches!(
        Tensor::from_vec(d, vec![1.0; 5], &[2, 3]),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        Tensor::arange(d, 0.0, 1.0, 0.0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Tensor::ones(d, &[3]).unwrap().to_scalar(),
        Err(Error::Shape(_))
    ));
    // Far past any adapter's storage binding limit: a clear error, not a wgpu crash.
    match Tensor::zeros(d, &[1 << 20, 1 << 14]) {
        Err(Error::TooLarge { bytes, limit, .. }) => assert!(bytes > limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Checked before any CPU-side data is made.
    assert!(matches!(
        Tensor::randn(d, &[1 << 40], 0),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        Tensor::arange(d, 0.0, 1e30, 1.0),
        Err(Error::InvalidArgument(_))
    ));
    // Element counts whose byte size overflows u64.
    assert!(matches!(
        Tensor::zeros(d, &[1 << 62]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Tensor::zeros(d, &[1 << 40, 1 << 40]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn random_tensors_are_deterministic_per_seed() {
    let d = device();
    let a = Tensor::randn(d, &[1000], 7).unwrap().to_vec().unwrap();
    let b = Tensor::randn(d, &[1000], 7).unwrap().to_vec().unwrap();
    let c = Tensor::randn(d, &[1000], 8).unwrap().to_vec().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 1000.0;
    assert!(
        mean.abs() < 0.1 && (var - 1.0).abs() < 0.15,
        "mean {mean} var {var}"
    );
    let u = Tensor::rand(d, &[1000], 7).unwrap().to_vec().unwrap();
    assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
}

#[test]
fn one_dimensional_launch_past_the_grid_limit_is_folded() {
    // 65,535 workgroups of 256 invocations is the most one grid dimension reaches.
    let n = 65_535 * 256 + 4_099;
    let data: Vec<f32> = (0..n).map(|i| (i % 4093) as f32).collect();
    let x = Tensor::from_slice(device(), &data, &[n]).unwrap();
    let y = x.affine(2.0, 1.0).unwrap().to_vec().unwrap();
    for (i, (&got, &v)) in y.iter().zip(&data).enumerate() {
        assert_eq!(got, 2.0 * v + 1.0, "element {i}");
    }
}

#[test]
fn steady_loop_reuses_pooled_buffers() {
    // Its own device: other tests allocate on the shared one concurrently.
    let d = Device::new().unwrap();
    let x = Tensor::randn(&d, &[8, 16, 9, 9], 1).unwrap();
    let w = Tensor::randn(&d, &[16, 16], 2).unwrap();
    let step = || {
        let y = x.reshape(&[8 * 16, 81]).unwrap().softmax().unwrap();
        let z = w.matmul(&y.reshape(&[8, 16, 81]).unwrap()).unwrap();
        let s = z
            .relu6()
            .unwrap()
            .add(&x.reshape(&[8, 16, 81]).unwrap())
            .unwrap();
        s.mean(&[0, 2], false).unwrap().to_vec().unwrap()
    };
    step();
    step();
    let warm = d.pool_stats();
    for _ in 0..20 {
        step();
    }
    let after = d.pool_stats();
    assert_eq!(
        after.allocations, warm.allocations,
        "a steady loop allocated: {warm:?} -> {after:?}"
    );
    assert!(after.reuses > warm.reuses + 20 * 4, "{warm:?} -> {after:?}");
}

#[test]
fn adapter_choice_errors_are_clear() {
    match Device::builder()
        .adapter_name("no-such-adapter-xyz")
        .build()
    {
        Err(Error::NoAdapter(msg)) => assert!(
            msg.contains("no-such-adapter-xyz") && msg.contains("found"),
            "{msg}"
        ),
        other => panic!("expected NoAdapter, got {other:?}"),
    }
    assert!(matches!(
        liandan::BackendChoice::parse("cuda"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        liandan::BackendChoice::parse("Vulkan").unwrap(),
        liandan::BackendChoice::Vulkan
    );
}
