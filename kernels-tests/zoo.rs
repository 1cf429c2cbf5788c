//! The zoo against its references: every model's tensors, with names, shapes, kinds and
//! order exactly as torchvision's (or timm's) `state_dict` lists them, read from the
//! fixtures `scripts/torchvision_specs.py` wrote; and the parameter counts torchvision
//! documents, written here by hand as a second, independent check.

use std::path::Path;

use liandan::models::zoo::{self, Reference, ZOO, ZooOptions};
use liandan::nn::{self, ParamKind, TensorSpec};

/// One line of a fixture: name, shape, and whether it is a parameter.
struct Expected {
    name: String,
    shape: Vec<usize>,
    param: bool,
}

fn fixture(name: &str) -> Vec<Expected> {
    // Where the tests were built, else the working directory (a test binary carried to
    // another machine with a copy of the repository).
    let relative = Path::new("kernels-tests/fixtures/specs").join(format!("{name}.tsv"));
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(&relative);
    let path = if built.is_file() { built } else { relative };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "{path:?}: {line}");
            let dims = fields[1].trim_matches(['[', ']']);
            let shape = dims
                .split(", ")
                .filter(|d| !d.is_empty())
                .map(|d| d.parse().unwrap())
                .collect();
            Expected {
                name: fields[0].to_string(),
                shape,
                param: fields[2] == "param",
            }
        })
        .collect()
}

fn specs_of(name: &str, options: &ZooOptions) -> Vec<TensorSpec> {
    let entry = zoo::find(name).unwrap();
    nn::specs(|s| entry.build(s, options)).unwrap().1
}

/// Compares the lists in full and reports every difference, not the first.
fn assert_matches(model: &str, ours: &[TensorSpec], theirs: &[Expected]) {
    let mut problems = Vec::new();
    for (i, e) in theirs.iter().enumerate() {
        let Some(o) = ours.get(i) else {
            problems.push(format!("#{i}: {} missing", e.name));
            continue;
        };
        if o.name != e.name {
            problems.push(format!("#{i}: {} where torch has {}", o.name, e.name));
            continue;
        }
        if o.shape != e.shape {
            problems.push(format!(
                "{}: shape {:?}, torch {:?}",
                e.name, o.shape, e.shape
            ));
        }
        let kind_ok = match o.kind {
            ParamKind::Parameter => e.param,
            ParamKind::Buffer => !e.param,
            ParamKind::Counter => !e.param && e.name.ends_with("num_batches_tracked"),
        };
        if !kind_ok {
            problems.push(format!(
                "{}: {:?} where torch has param={}",
                e.name, o.kind, e.param
            ));
        }
    }
    for extra in ours.iter().skip(theirs.len()) {
        problems.push(format!("{} is not in torch's state_dict", extra.name));
    }
    assert!(
        problems.is_empty(),
        "{model}: {} differences from the reference, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
}

#[test]
fn every_referenced_model_has_the_state_dict_of_its_reference() {
    let mut checked = 0;
    for entry in ZOO {
        if entry.reference == Reference::Paper {
            continue;
        }
        let ours = specs_of(entry.name, &ZooOptions::new(1000));
        assert_matches(entry.name, &ours, &fixture(entry.name));
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} models checked");
}

#[test]
fn aux_heads_come_off_as_torchvision_builds_them_for_pretrained_weights() {
    for name in ["googlenet", "inception_v3"] {
        if zoo::find(name).is_err() {
            continue;
        }
        let options = ZooOptions {
            aux_logits: false,
            ..ZooOptions::new(1000)
        };
        let ours = specs_of(name, &options);
        assert_matches(name, &ours, &fixture(&format!("{name}_no_aux")));
    }
}

/// The counts torchvision's and timm's documentation give (parameters only).
#[test]
fn parameter_counts_are_the_documented_ones() {
    let documented: &[(&str, usize)] = &[
        ("alexnet", 61_100_840),
        ("vgg11", 132_863_336),
        ("vgg13", 133_047_848),
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        ("vgg11_bn", 132_868_840),
        ("vgg13_bn", 133_053_736),
        ("vgg16_bn", 138_365_992),
        ("vgg19_bn", 143_678_248),
        ("googlenet", 13_004_888),
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
        ("resnext50_32x4d", 25_028_904),
        ("resnext101_32x8d", 88_791_336),
        ("wide_resnet50_2", 68_883_240),
        ("se_resnet50", 28_088_024),
        ("densenet121", 7_978_856),
        ("densenet169", 14_149_480),
        ("densenet201", 20_013_928),
        ("mobilenet_v2", 3_504_872),
        ("inception_v3", 27_161_264),
        ("inception_v4", 42_679_816),
        ("inception_resnet_v2", 55_843_464),
        ("xception", 22_855_952),
        ("mobilenet_v3_large", 5_483_032),
        ("mobilenet_v3_small", 2_542_856),
        ("shufflenet_v2_x0_5", 1_366_792),
        ("shufflenet_v2_x1_0", 2_278_604),
        ("shufflenet_v2_x1_5", 3_503_624),
        ("shufflenet_v2_x2_0", 7_393_996),
        ("efficientnet_b0", 5_288_548),
        ("efficientnet_b1", 7_794_184),
        ("efficientnet_b2", 9_109_994),
        ("efficientnet_b3", 12_233_232),
        ("efficientnet_b4", 19_341_616),
        ("efficientnet_b5", 30_389_784),
        ("efficientnet_b6", 43_040_704),
        ("efficientnet_b7", 66_347_960),
    ];
    let count = |specs: &[TensorSpec]| -> usize {
        specs
            .iter()
            .filter(|s| s.kind == ParamKind::Parameter)
            .map(|s| s.shape.iter().product::<usize>())
            .sum()
    };
    for &(name, expected) in documented {
        let ours = specs_of(name, &ZooOptions::new(1000));
        assert_eq!(count(&ours), expected, "{name}");
    }
    // Without the auxiliary heads, as torchvision's pretrained GoogLeNet.
    let no_aux = ZooOptions {
        aux_logits: false,
        ..ZooOptions::new(1000)
    };
    assert_eq!(count(&specs_of("googlenet", &no_aux)), 6_624_904);
    assert_eq!(count(&specs_of("inception_v3", &no_aux)), 23_834_568);
}

#[test]
fn unknown_names_and_zero_classes_are_errors_that_say_what_exists() {
    let err = zoo::find("resnet17").err().unwrap().to_string();
    assert!(
        err.contains("resnet17") && err.contains("resnet18"),
        "{err}"
    );
    let entry = zoo::find("resnet18").unwrap();
    let err = nn::specs(|s| entry.build(s, &ZooOptions::new(0)))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("num_classes"), "{err}");
}

/// Compound scaling: α·β²·γ² ≈ 2 (each step of φ about doubles the FLOPs), and B1–B3 sit
/// near φ = 0.5, 1 and 2 (the paper's depth, width and resolution, rounded).
#[test]
fn efficientnet_compound_scaling_lands_near_b1_to_b3() {
    use liandan::models::efficientnet_scaling;
    let (d, w, r) = efficientnet_scaling(1.0);
    assert!(
        (d * w * w * r * r - 2.0).abs() < 0.1,
        "α·β²·γ² = {}",
        d * w * w * r * r
    );
    // (φ, depth, width, resolution) of B1, B2 and B3 in the paper.
    for (phi, depth, width, side) in [
        (0.5, 1.1, 1.0, 240.0),
        (1.0, 1.2, 1.1, 260.0),
        (2.0, 1.4, 1.2, 300.0),
    ] {
        let (d, w, r) = efficientnet_scaling(phi);
        let near = |a: f64, b: f64| (a / b - 1.0).abs() <= 0.05;
        assert!(
            near(d, depth) && near(w, width) && near(224.0 * r, side),
            "φ {phi}: {d} {w} {}",
            224.0 * r
        );
    }
}
