//! Every architecture by name: what the tools (`model_summary`, `infer`, `train_cifar`)
//! and the tests build from a string.

use super::{
    AlexNet, DenseNet, DenseNetConfig, EfficientNet, EfficientNetConfig, GoogLeNet,
    GoogLeNetConfig, InceptionResNetV2, InceptionV3, InceptionV3Config, InceptionV4, LeNet5,
    MobileNetV1, MobileNetV2, MobileNetV2Config, MobileNetV3, MobileNetV3Config, MobileNetV3Size,
    ResNet, ResNetConfig, ShuffleNetV1, ShuffleNetV2, Vgg, Xception, shufflenet_v2, vgg,
};
use crate::error::{Result, arg_err};
use crate::nn::{Module, Scope};

/// What every zoo constructor takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZooOptions {
    /// Classes of the classifier.
    pub num_classes: usize,
    /// The small-input (32×32) variant: only the stem's strides change (the model's docs
    /// say which); the tensors and their names stay the same.
    pub cifar: bool,
    /// GoogLeNet's and Inception v3's auxiliary classifiers (torchvision builds them when
    /// training from scratch).
    pub aux_logits: bool,
    /// GoogLeNet's and Inception v3's `transform_input`: rescale ImageNet-normalized
    /// input to the (x - 0.5) / 0.5 their original weights expect (torchvision turns it on
    /// with its pretrained weights).
    pub transform_input: bool,
}

impl ZooOptions {
    /// `num_classes` classes, full-size input, auxiliary classifiers on.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            cifar: false,
            aux_logits: true,
            transform_input: false,
        }
    }
}

/// Where a model's names and counts come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `torchvision.models.<name>`.
    Torchvision,
    /// `timm.create_model("<name>")`.
    Timm(&'static str),
    /// Only the paper: neither library has it.
    Paper,
}

type Constructor = fn(&mut Scope, &ZooOptions) -> Result<Box<dyn Module>>;

/// One architecture of the zoo.
#[derive(Clone, Copy)]
pub struct ZooEntry {
    /// Its name, as torchvision names it where it has it.
    pub name: &'static str,
    /// The family it belongs to, for tables.
    pub family: &'static str,
    /// Where its names and counts are checked against.
    pub reference: Reference,
    /// The side of the square input its weights are trained at (224 for most; 299 for
    /// the Inception family; 240 … 600 for EfficientNet B1 … B7).
    pub input_size: usize,
    /// The smallest side it accepts at full size (its strides and pools leave at least
    /// one pixel).
    pub min_input: usize,
    build: Constructor,
}

impl ZooEntry {
    /// The options torchvision builds this model with for its pretrained weights, the
    /// form its documented parameter counts describe: GoogLeNet without its auxiliary
    /// heads, Inception v3 with its one; both with `transform_input`.
    pub fn pretrained_options(&self, num_classes: usize) -> ZooOptions {
        let inception = matches!(self.name, "googlenet" | "inception_v3");
        ZooOptions {
            aux_logits: self.name != "googlenet",
            transform_input: inception,
            ..ZooOptions::new(num_classes)
        }
    }

    /// Builds the model in `scope`.
    pub fn build(&self, scope: &mut Scope, options: &ZooOptions) -> Result<Box<dyn Module>> {
        if options.num_classes == 0 {
            return arg_err!("{}: num_classes must be positive", self.name);
        }
        (self.build)(scope, options)
    }
}

/// The Inception-v4 stem's unpadded strided convolutions are its design; there is no
/// small-input variant of it to build.
fn full_size_only(name: &str, o: &ZooOptions) -> Result<()> {
    if o.cifar {
        return arg_err!("{name} has no small-input variant; its smallest input is 75×75");
    }
    Ok(())
}

fn boxed<M: Module + 'static>(m: Result<M>) -> Result<Box<dyn Module>> {
    Ok(Box::new(m?))
}

macro_rules! resnet {
    ($name:ident) => {
        |s, o| {
            let cfg = ResNetConfig {
                cifar: o.cifar,
                ..ResNetConfig::$name(o.num_classes)
            };
            boxed(ResNet::new(s, &cfg))
        }
    };
}

macro_rules! densenet {
    ($name:ident) => {
        |s, o| {
            let cfg = DenseNetConfig {
                cifar: o.cifar,
                ..DenseNetConfig::$name(o.num_classes)
            };
            boxed(DenseNet::new(s, &cfg))
        }
    };
}

macro_rules! mobilenet_v1 {
    ($alpha:expr) => {
        |s, o| boxed(MobileNetV1::new(s, $alpha, o.num_classes, o.cifar))
    };
}

macro_rules! mobilenet_v3 {
    ($size:ident) => {
        |s, o| {
            let cfg = MobileNetV3Config {
                cifar: o.cifar,
                ..MobileNetV3Config::new(MobileNetV3Size::$size, o.num_classes)
            };
            boxed(MobileNetV3::new(s, &cfg))
        }
    };
}

macro_rules! shufflenet_v1 {
    ($groups:expr) => {
        |s, o| boxed(ShuffleNetV1::new(s, $groups, o.num_classes, o.cifar))
    };
}

macro_rules! shufflenet_v2 {
    ($width:expr) => {
        |s, o| {
            let channels = shufflenet_v2::WIDTHS[$width].1;
            boxed(ShuffleNetV2::new(s, channels, o.num_classes, o.cifar))
        }
    };
}

macro_rules! efficientnet {
    ($name:literal, $index:expr, $side:expr) => {
        ZooEntry {
            name: $name,
            family: "EfficientNet",
            reference: Reference::Torchvision,
            input_size: $side,
            min_input: 32,
            build: |s, o| {
                let cfg = EfficientNetConfig {
                    cifar: o.cifar,
                    ..EfficientNetConfig::b($index, o.num_classes)?
                };
                boxed(EfficientNet::new(s, &cfg))
            },
        }
    };
}

macro_rules! vgg_entry {
    ($name:literal, $layers:expr, $bn:expr) => {
        ZooEntry {
            name: $name,
            family: "VGG",
            reference: Reference::Torchvision,
            input_size: 224,
            min_input: 32,
            build: |s, o| boxed(Vgg::new(s, $layers, $bn, o.num_classes)),
        }
    };
}

const fn entry(
    name: &'static str,
    family: &'static str,
    reference: Reference,
    min_input: usize,
    build: Constructor,
) -> ZooEntry {
    ZooEntry {
        name,
        family,
        reference,
        input_size: 224,
        min_input,
        build,
    }
}

use Reference::{Paper, Timm, Torchvision};

/// The zoo, in the order of the lineage.
pub const ZOO: &[ZooEntry] = &[
    ZooEntry {
        name: "lenet5",
        family: "LeNet",
        reference: Paper,
        input_size: 32,
        min_input: 32,
        build: |s, o| boxed(LeNet5::new(s, 3, o.num_classes)),
    },
    entry("alexnet", "AlexNet", Torchvision, 63, |s, o| {
        boxed(AlexNet::original(s, o.num_classes, o.cifar))
    }),
    entry("zfnet", "AlexNet", Paper, 63, |s, o| {
        boxed(AlexNet::zfnet(s, o.num_classes, o.cifar))
    }),
    vgg_entry!("vgg11", vgg::VGG11, false),
    vgg_entry!("vgg13", vgg::VGG13, false),
    vgg_entry!("vgg16", vgg::VGG16, false),
    vgg_entry!("vgg19", vgg::VGG19, false),
    vgg_entry!("vgg11_bn", vgg::VGG11, true),
    vgg_entry!("vgg13_bn", vgg::VGG13, true),
    vgg_entry!("vgg16_bn", vgg::VGG16, true),
    vgg_entry!("vgg19_bn", vgg::VGG19, true),
    entry("googlenet", "Inception", Torchvision, 32, |s, o| {
        let cfg = GoogLeNetConfig {
            aux_logits: o.aux_logits,
            transform_input: o.transform_input,
            cifar: o.cifar,
            ..GoogLeNetConfig::new(o.num_classes)
        };
        boxed(GoogLeNet::new(s, cfg))
    }),
    ZooEntry {
        name: "inception_v3",
        family: "Inception",
        reference: Torchvision,
        input_size: 299,
        min_input: 75,
        build: |s, o| {
            let cfg = InceptionV3Config {
                aux_logits: o.aux_logits,
                transform_input: o.transform_input,
                cifar: o.cifar,
                ..InceptionV3Config::new(o.num_classes)
            };
            boxed(InceptionV3::new(s, cfg))
        },
    },
    ZooEntry {
        name: "inception_v4",
        family: "Inception",
        reference: Timm("inception_v4"),
        input_size: 299,
        min_input: 75,
        build: |s, o| {
            full_size_only("inception_v4", o)?;
            boxed(InceptionV4::new(s, o.num_classes))
        },
    },
    ZooEntry {
        name: "inception_resnet_v2",
        family: "Inception",
        reference: Timm("inception_resnet_v2"),
        input_size: 299,
        min_input: 75,
        build: |s, o| {
            full_size_only("inception_resnet_v2", o)?;
            boxed(InceptionResNetV2::new(s, o.num_classes))
        },
    },
    ZooEntry {
        name: "xception",
        family: "Inception",
        reference: Timm("legacy_xception"),
        input_size: 299,
        min_input: 32,
        build: |s, o| boxed(Xception::new(s, o.num_classes, o.cifar)),
    },
    entry("resnet18", "ResNet", Torchvision, 32, resnet!(resnet18)),
    entry("resnet34", "ResNet", Torchvision, 32, resnet!(resnet34)),
    entry("resnet50", "ResNet", Torchvision, 32, resnet!(resnet50)),
    entry("resnet101", "ResNet", Torchvision, 32, resnet!(resnet101)),
    entry("resnet152", "ResNet", Torchvision, 32, resnet!(resnet152)),
    entry(
        "resnext50_32x4d",
        "ResNet",
        Torchvision,
        32,
        resnet!(resnext50_32x4d),
    ),
    entry(
        "resnext101_32x8d",
        "ResNet",
        Torchvision,
        32,
        resnet!(resnext101_32x8d),
    ),
    entry(
        "wide_resnet50_2",
        "ResNet",
        Torchvision,
        32,
        resnet!(wide_resnet50_2),
    ),
    entry(
        "se_resnet50",
        "ResNet",
        Timm("seresnet50"),
        32,
        resnet!(se_resnet50),
    ),
    entry(
        "densenet121",
        "DenseNet",
        Torchvision,
        32,
        densenet!(densenet121),
    ),
    entry(
        "densenet169",
        "DenseNet",
        Torchvision,
        32,
        densenet!(densenet169),
    ),
    entry(
        "densenet201",
        "DenseNet",
        Torchvision,
        32,
        densenet!(densenet201),
    ),
    entry("mobilenet_v1", "MobileNet", Paper, 32, mobilenet_v1!(1.0)),
    entry(
        "mobilenet_v1_0_75",
        "MobileNet",
        Paper,
        32,
        mobilenet_v1!(0.75),
    ),
    entry(
        "mobilenet_v1_0_5",
        "MobileNet",
        Paper,
        32,
        mobilenet_v1!(0.5),
    ),
    entry(
        "mobilenet_v1_0_25",
        "MobileNet",
        Paper,
        32,
        mobilenet_v1!(0.25),
    ),
    entry("mobilenet_v2", "MobileNet", Torchvision, 32, |s, o| {
        let cfg = MobileNetV2Config {
            cifar: o.cifar,
            ..MobileNetV2Config::imagenet(o.num_classes)
        };
        boxed(MobileNetV2::new(s, cfg))
    }),
    entry(
        "mobilenet_v3_large",
        "MobileNet",
        Torchvision,
        32,
        mobilenet_v3!(Large),
    ),
    entry(
        "mobilenet_v3_small",
        "MobileNet",
        Torchvision,
        32,
        mobilenet_v3!(Small),
    ),
    entry("shufflenet_v1", "ShuffleNet", Paper, 32, shufflenet_v1!(3)),
    entry(
        "shufflenet_v1_g1",
        "ShuffleNet",
        Paper,
        32,
        shufflenet_v1!(1),
    ),
    entry(
        "shufflenet_v1_g2",
        "ShuffleNet",
        Paper,
        32,
        shufflenet_v1!(2),
    ),
    entry(
        "shufflenet_v1_g4",
        "ShuffleNet",
        Paper,
        32,
        shufflenet_v1!(4),
    ),
    entry(
        "shufflenet_v1_g8",
        "ShuffleNet",
        Paper,
        32,
        shufflenet_v1!(8),
    ),
    entry(
        "shufflenet_v2_x0_5",
        "ShuffleNet",
        Torchvision,
        32,
        shufflenet_v2!(0),
    ),
    entry(
        "shufflenet_v2_x1_0",
        "ShuffleNet",
        Torchvision,
        32,
        shufflenet_v2!(1),
    ),
    entry(
        "shufflenet_v2_x1_5",
        "ShuffleNet",
        Torchvision,
        32,
        shufflenet_v2!(2),
    ),
    entry(
        "shufflenet_v2_x2_0",
        "ShuffleNet",
        Torchvision,
        32,
        shufflenet_v2!(3),
    ),
    efficientnet!("efficientnet_b0", 0, 224),
    efficientnet!("efficientnet_b1", 1, 240),
    efficientnet!("efficientnet_b2", 2, 288),
    efficientnet!("efficientnet_b3", 3, 300),
    efficientnet!("efficientnet_b4", 4, 380),
    efficientnet!("efficientnet_b5", 5, 456),
    efficientnet!("efficientnet_b6", 6, 528),
    efficientnet!("efficientnet_b7", 7, 600),
];

/// The zoo entry called `name`; an `Err` listing the names when there is none.
pub fn find(name: &str) -> Result<&'static ZooEntry> {
    ZOO.iter().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<&str> = ZOO.iter().map(|e| e.name).collect();
        crate::error::Error::InvalidArgument(format!(
            "no model called {name:?} in the zoo; it has {}",
            names.join(", ")
        ))
    })
}

/// The checkpoint entries that say which model a file holds, as `train_cifar` writes
/// them: the zoo name, the classes, and whether it is the small-input variant.
pub const MODEL_KEYS: [&str; 3] = ["model", "num_classes", "cifar"];

/// The entries of [`MODEL_KEYS`] for a model built from `entry` with `options`, to pass
/// as a checkpoint's meta so [`load`] can rebuild it.
pub fn model_meta(
    entry: &ZooEntry,
    options: &ZooOptions,
) -> std::collections::BTreeMap<String, String> {
    [
        ("model", entry.name.to_string()),
        ("num_classes", options.num_classes.to_string()),
        ("cifar", options.cifar.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Rebuilds the model a checkpoint (or state_dict file with the [`MODEL_KEYS`] entries)
/// names and loads its tensors: the inference side of `train_cifar`. An `Err` names a
/// missing or unreadable entry, or lists the tensors that do not fit.
pub fn load(
    path: impl AsRef<std::path::Path>,
    device: &crate::gpu::Device,
) -> Result<(&'static ZooEntry, Box<dyn Module>, crate::nn::ParamStore)> {
    let path = path.as_ref();
    let ckpt = crate::io::load_checkpoint(path)?;
    let entry_of = |key: &str| {
        ckpt.meta.get(key).ok_or_else(|| {
            crate::error::Error::InvalidArgument(format!(
                "{}: no {key:?} entry saying which model it holds (entries: {:?})",
                path.display(),
                ckpt.meta.keys().collect::<Vec<_>>()
            ))
        })
    };
    let entry = find(entry_of("model")?)?;
    let num_classes = entry_of("num_classes")?.parse().map_err(|_| {
        crate::error::Error::InvalidArgument(format!(
            "{}: num_classes is not a number",
            path.display()
        ))
    })?;
    // Auxiliary heads when the file has theirs (a GoogLeNet trained here keeps them).
    let aux_logits = ckpt
        .tensors
        .iter()
        .any(|(name, _, _)| name.starts_with("aux1.") || name.starts_with("AuxLogits."));
    let options = ZooOptions {
        cifar: entry_of("cifar")? == "true",
        aux_logits,
        ..ZooOptions::new(num_classes)
    };
    let (model, mut store) = crate::nn::build(device, 0, |s| entry.build(s, &options))?;
    crate::io::apply_checkpoint(&ckpt, &mut store, device, None)?;
    Ok((entry, model, store))
}
