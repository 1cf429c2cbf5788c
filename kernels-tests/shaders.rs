//! Every `shaders/*.wgsl` parses and validates with naga, as the device will compile it.

use std::path::Path;

use liandan::gpu::full_source;

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if liandan::gpu::is_prelude(&name) {
            continue; // checked inside every kernel that requires it
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // A file with `// variants: a.wgsl b.wgsl` is built once per variant prelude.
        let variants: Vec<String> = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("// variants:"))
            .map(|v| {
                v.split_whitespace()
                    .map(|p| format!("// requires: {p}\n"))
                    .collect()
            })
            .unwrap_or_else(|| vec![String::new()]);
        for variant in variants {
            let text = format!("{variant}{text}");
            validate(&path, &text);
            checked += 1;
        }
    }
    assert!(
        checked >= 8,
        "only {checked} shaders found in {}",
        dir.display()
    );
}

/// Parses and validates one shader's full source (`text` with its preludes).
fn validate(path: &Path, text: &str) {
    // common.wgsl is the prefix of every other file; it is checked on its own.
    let is_common = path.file_name().is_some_and(|n| n == "common.wgsl");
    let source = if is_common {
        text.to_string()
    } else {
        full_source(text)
    };
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
    let mut caps = naga::valid::Capabilities::default();
    if text.contains("subgroupBroadcast") {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    validator
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
}
