//! A model's layers from the tape of one forward pass: what each op is, its output
//! shape, parameters, multiply-accumulates and memory access cost. `examples/
//! model_summary` prints these; tests count a model's MACs with them.

use std::collections::HashMap;

use crate::autograd::Record;

/// One op of a forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// The scope of its parameters (`layer1.0.conv1`), or for an op without any, the
    /// block it works in (`layer1.0` for a ReLU between `layer1.0.bn1` and
    /// `layer1.0.conv2`; empty at the model's top level).
    pub layer: String,
    /// The op and its settings, those at their defaults left out (`conv2d 3x3 pad (1, 1)`).
    pub op: String,
    /// Its output's shape.
    pub shape: Vec<usize>,
    /// Elements of the parameters it reads.
    pub params: usize,
    /// Multiply-accumulates of a convolution or linear layer (0 for other ops).
    pub macs: u64,
    /// ShuffleNet V2's memory access cost: the bytes it reads (inputs and parameters) and
    /// writes, as f32.
    pub access_bytes: u64,
}

/// `a.b.weight` → `a.b`.
fn scope_of(param: &str) -> &str {
    param.rsplit_once('.').map_or("", |(scope, _)| scope)
}

/// The op's kind and settings, without the ones at their defaults.
fn op_text(record: &Record, records: &[Record]) -> String {
    let mut text = record.op.clone();
    for trivial in [" dil (1, 1)", " groups 1", " out_pad (0, 0)", " pad (0, 0)"] {
        text = text.replace(trivial, "");
    }
    text = text.replace(" stride (1, 1)", "");
    if text.starts_with("conv") {
        // The kernel size, from the weight's shape.
        if let Some(w) = record
            .inputs
            .get(1)
            .map(|&i| &records[i].shape)
            .filter(|w| w.len() == 4)
        {
            let (kind, rest) = text.split_once(' ').unwrap_or((&text, ""));
            text = format!("{kind} {}x{} {rest}", w[2], w[3])
                .trim_end()
                .to_string();
        }
    }
    text
}

/// Multiply-accumulates of a convolution or linear layer; 0 for any other op.
pub fn macs(record: &Record, records: &[Record]) -> u64 {
    let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
    let shape = |i: usize| records[record.inputs[i]].shape.as_slice();
    let kind = record.op.split(' ').next().unwrap_or("");
    match kind {
        // Each output: C_in/g · kh · kw products (the weight is [C_out, C_in/g, kh, kw]).
        "conv2d" => numel(&record.shape) * numel(shape(1)) / shape(1)[0] as u64,
        // Each input: C_out/g · kh · kw products (the weight is [C_in, C_out/g, kh, kw]).
        "conv_transpose2d" => numel(shape(0)) * numel(shape(1)) / shape(1)[0] as u64,
        "linear" => numel(&record.shape) * shape(1)[1] as u64,
        _ => 0,
    }
}

/// The table of one forward pass, from its tape's records: one row per op, leaves
/// (the input and the parameters) left out.
pub fn layer_table(records: &[Record]) -> Vec<LayerRow> {
    // The block each op's output belongs to: a layer with parameters is in its scope's
    // parent (`layer1.0.conv1` in `layer1.0`), an op without in the block of its input.
    let mut block_of: HashMap<usize, String> = HashMap::new();
    let mut rows = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r.op == "input" || r.param.is_some() {
            continue;
        }
        let param = r.inputs.iter().find_map(|&j| records[j].param.as_deref());
        let (layer, block) = match param {
            Some(p) => {
                let layer = scope_of(p).to_string();
                let block = scope_of(&layer).to_string();
                (layer, block)
            }
            None => {
                let block = r
                    .inputs
                    .iter()
                    .find_map(|j| block_of.get(j))
                    .cloned()
                    .unwrap_or_default();
                (block.clone(), block)
            }
        };
        block_of.insert(i, block);
        let numel = |s: &[usize]| s.iter().product::<usize>();
        let read: usize = r.inputs.iter().map(|&j| numel(&records[j].shape)).sum();
        rows.push(LayerRow {
            layer,
            op: op_text(r, records),
            shape: r.shape.clone(),
            params: r
                .inputs
                .iter()
                .filter(|&&j| records[j].param.is_some())
                .map(|&j| numel(&records[j].shape))
                .sum(),
            macs: macs(r, records),
            access_bytes: 4 * (read + numel(&r.shape)) as u64,
        });
    }
    rows
}
