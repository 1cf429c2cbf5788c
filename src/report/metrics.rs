//! The per-epoch table of a training run: `metrics.csv`, and its curves as `curves.png`.

use std::fmt::Write as _;
use std::path::Path;

use super::plot::{Curve, Panel, write_panels};
use crate::error::{Error, Result};
use crate::io::checkpoint::write_atomically;

/// The CSV's header line.
const HEADER: &str =
    "epoch,lr,train_loss,train_acc,test_loss,test_acc,train_images_per_s,eval_images_per_s";

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The epoch's number, from 1.
    pub epoch: usize,
    /// The learning rate of its last step.
    pub lr: f32,
    /// Mean training loss and accuracy over the epoch.
    pub train: (f64, f64),
    /// Mean test loss and accuracy after the epoch.
    pub test: (f64, f64),
    /// Training images per second.
    pub train_images_per_s: f64,
    /// Evaluation images per second.
    pub eval_images_per_s: f64,
}

impl EpochRow {
    fn csv(&self) -> String {
        format!(
            "{},{:.6},{:.5},{:.5},{:.5},{:.5},{:.2},{:.2}",
            self.epoch,
            self.lr,
            self.train.0,
            self.train.1,
            self.test.0,
            self.test.1,
            self.train_images_per_s,
            self.eval_images_per_s
        )
    }

    fn parse(line: &str) -> Option<EpochRow> {
        let f: Vec<&str> = line.split(',').collect();
        let n = |i: usize| f.get(i)?.trim().parse::<f64>().ok();
        (f.len() == 8).then_some(())?;
        Some(EpochRow {
            epoch: f[0].trim().parse().ok()?,
            lr: n(1)? as f32,
            train: (n(2)?, n(3)?),
            test: (n(4)?, n(5)?),
            train_images_per_s: n(6)?,
            eval_images_per_s: n(7)?,
        })
    }
}

/// The rows so far, in epoch order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsLog {
    rows: Vec<EpochRow>,
}

impl MetricsLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a run resumed after epoch `through` continues: the rows of `dir/metrics.csv`
    /// up to that epoch (later ones belong to a run that went further and are dropped).
    /// Empty when there is no file; an `Err` when the file is not such a table.
    pub fn resume(dir: &Path, through: usize) -> Result<MetricsLog> {
        let path = dir.join("metrics.csv");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(e) => {
                return Err(Error::InvalidArgument(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let row = EpochRow::parse(line).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} line {}: {line:?} is not a row of {HEADER}",
                    path.display(),
                    i + 1
                ))
            })?;
            if row.epoch <= through {
                rows.push(row);
            }
        }
        Ok(MetricsLog { rows })
    }

    /// Adds an epoch's row.
    pub fn push(&mut self, row: EpochRow) {
        self.rows.push(row);
    }

    /// The rows, in epoch order.
    pub fn rows(&self) -> &[EpochRow] {
        &self.rows
    }

    /// Writes `dir/metrics.csv` (atomically) and `dir/curves.png`: loss and accuracy,
    /// train and test.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut csv = format!("{HEADER}\n");
        for row in &self.rows {
            let _ = writeln!(csv, "{}", row.csv());
        }
        write_atomically(&dir.join("metrics.csv"), csv.as_bytes())?;
        let series = |f: fn(&EpochRow) -> f64| self.rows.iter().map(f).collect::<Vec<f64>>();
        let (train_loss, test_loss) = (series(|r| r.train.0), series(|r| r.test.0));
        let (train_acc, test_acc) = (series(|r| r.train.1), series(|r| r.test.1));
        write_panels(
            dir.join("curves.png"),
            &[
                Panel {
                    title: "loss",
                    x_label: "epoch",
                    y_label: "cross-entropy",
                    curves: train_and_test(&train_loss, &test_loss),
                },
                Panel {
                    title: "accuracy",
                    x_label: "epoch",
                    y_label: "top-1 accuracy",
                    curves: train_and_test(&train_acc, &test_acc),
                },
            ],
        )
    }
}

/// A panel's two lines: train in blue, test in orange.
fn train_and_test<'a>(train: &'a [f64], test: &'a [f64]) -> Vec<Curve<'a>> {
    vec![
        Curve {
            label: "train",
            values: train,
            rgb: [31, 119, 180],
        },
        Curve {
            label: "test",
            values: test,
            rgb: [255, 127, 14],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_round_trip_and_a_resume_keeps_the_earlier_ones() {
        let dir = std::env::temp_dir().join(format!("liandan-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = MetricsLog::new();
        for epoch in 1..=3 {
            // Values the CSV's 5 decimals hold exactly.
            log.push(EpochRow {
                epoch,
                lr: 0.125 * epoch as f32,
                train: (2.0 - 0.25 * epoch as f64, 0.25),
                test: (2.5, 0.125 * epoch as f64),
                train_images_per_s: 10.5,
                eval_images_per_s: 40.25,
            });
        }
        log.write(&dir).unwrap();
        assert_eq!(MetricsLog::resume(&dir, 3).unwrap(), log);
        let resumed = MetricsLog::resume(&dir, 2).unwrap();
        assert_eq!(resumed.rows(), &log.rows()[..2]);
        std::fs::write(dir.join("metrics.csv"), format!("{HEADER}\n1,x\n")).unwrap();
        let err = MetricsLog::resume(&dir, 1).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(MetricsLog::resume(&dir, 1).unwrap().rows().is_empty());
    }
}
