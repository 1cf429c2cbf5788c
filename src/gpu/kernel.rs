//! WGSL kernels, their pipelines, and the cache that builds each pipeline once.

use std::collections::HashMap;
use std::sync::Arc;

/// Helpers every shader may call; prepended to each source when it is compiled.
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

/// One WGSL source file of `shaders/`, named for error messages and cache keys.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// The file name, e.g. `unary.wgsl`.
    pub name: &'static str,
    /// The WGSL text.
    pub source: &'static str,
}

/// Declares a [`Kernel`] constant for a file in `shaders/`.
macro_rules! kernel {
    ($name:literal) => {
        $crate::gpu::Kernel {
            name: $name,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name)),
        }
    };
    // One variant of a file that says `// variants: a.wgsl b.wgsl`: the file with
    // prelude `$variant` required first (see `full_source`).
    ($name:literal, $variant:literal) => {
        $crate::gpu::Kernel {
            name: concat!($name, " with ", $variant),
            source: concat!(
                "// requires: ",
                $variant,
                "\n",
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name))
            ),
        }
    };
}
pub(crate) use kernel;

/// Shared WGSL a kernel pulls in with a `// requires: NAME` line. A prelude may use names
/// its includers declare (pool_window.wgsl uses their uniform `p`), so it is checked as
/// part of each kernel that requires it, not alone.
const PRELUDES: &[(&str, &str)] = &[
    (
        "workgroup_reduce.wgsl",
        include_str!("../../shaders/workgroup_reduce.wgsl"),
    ),
    ("out1.wgsl", include_str!("../../shaders/out1.wgsl")),
    ("out4.wgsl", include_str!("../../shaders/out4.wgsl")),
    ("unit1.wgsl", include_str!("../../shaders/unit1.wgsl")),
    ("unit4.wgsl", include_str!("../../shaders/unit4.wgsl")),
    (
        "batch_norm_act_grad.wgsl",
        include_str!("../../shaders/batch_norm_act_grad.wgsl"),
    ),
    (
        "fused_act.wgsl",
        include_str!("../../shaders/fused_act.wgsl"),
    ),
    (
        "depthwise_strips.wgsl",
        include_str!("../../shaders/depthwise_strips.wgsl"),
    ),
    (
        "channel_walk.wgsl",
        include_str!("../../shaders/channel_walk.wgsl"),
    ),
    (
        "pool_window.wgsl",
        include_str!("../../shaders/pool_window.wgsl"),
    ),
    (
        "pool_max_rule.wgsl",
        include_str!("../../shaders/pool_max_rule.wgsl"),
    ),
];

/// Whether `file_name` is a prelude (see [`full_source`]) rather than a kernel.
pub fn is_prelude(file_name: &str) -> bool {
    PRELUDES.iter().any(|(name, _)| *name == file_name)
}

/// The full text handed to the compiler: the common helpers, the preludes the file
/// requires (`// requires: workgroup_reduce.wgsl`), then the file. An unknown prelude name
/// is left to fail compilation, naming what is missing.
pub fn full_source(source: &str) -> String {
    let mut text = String::from(COMMON_WGSL);
    for line in source.lines() {
        if let Some(name) = line.trim().strip_prefix("// requires:") {
            let name = name.trim();
            match PRELUDES.iter().find(|(n, _)| *n == name) {
                Some((_, prelude)) => text.push_str(prelude),
                None => text.push_str(&format!("\nunknown prelude {name}\n")),
            }
        }
    }
    text.push('\n');
    text.push_str(source);
    text
}

/// A compiled pipeline with the layout of its only bind group.
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// Key of the cache: file, entry point and the override constants (as bit patterns, so the
/// key is hashable).
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// Builds each (shader, entry point, overrides) pipeline once and hands out shared copies.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    pipelines: HashMap<PipelineKey, Arc<Pipeline>>,
}

impl PipelineCache {
    pub(crate) fn get(
        &mut self,
        device: &wgpu::Device,
        kernel: &Kernel,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
    ) -> Arc<Pipeline> {
        let key = (
            kernel.name,
            entry,
            overrides.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
        );
        if let Some(pipeline) = self.pipelines.get(&key) {
            return pipeline.clone();
        }
        let module = self.modules.entry(kernel.name).or_insert_with(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(full_source(kernel.source).into()),
            };
            // naga's default "loop bounding" adds an iteration counter to every loop so a
            // shader cannot hang the device. It also stops the driver from unrolling loops:
            // the matmul ran 1.8x slower with it on lavapipe. Every loop in shaders/ is
            // bounded by a constant or a uniform count, so it is left off; bounds checks
            // on buffer indexing stay on (they measured free).
            let mut checks = wgpu::ShaderRuntimeChecks::checked();
            checks.force_loop_bounding = false;
            // SAFETY: the only check dropped is loop bounding, and liandan's own shaders
            // (the only ones this cache compiles) have no unbounded loop.
            unsafe { device.create_shader_module_trusted(desc, checks) }
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: overrides,
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let pipeline = Arc::new(Pipeline { pipeline, layout });
        self.pipelines.insert(key, pipeline.clone());
        pipeline
    }

    pub(crate) fn len(&self) -> usize {
        self.pipelines.len()
    }
}
