//! The CIFAR-10 reader: the official "CIFAR-10 binary version" layout.
//!
//! Each file is a plain sequence of 3,073-byte records with no header: one label byte
//! (0..=9, an index into [`CLASSES`]) then 3,072 pixel bytes, the red, green and blue
//! 32×32 planes in that order, each row-major. That is already CHW, so an image is kept
//! as its 3,072 bytes unchanged.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, arg_err};

/// Side of a CIFAR-10 image in pixels.
pub const SIDE: usize = 32;
/// Colour channels per image (R, G, B).
pub const CHANNELS: usize = 3;
/// Pixel bytes per image: 3 × 32 × 32.
pub const IMAGE_BYTES: usize = CHANNELS * SIDE * SIDE;
/// Bytes per record in a batch file: the label byte then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// Class names in label order, as in the release's `batches.meta.txt`.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Per-channel (R, G, B) mean of the training set's pixels scaled to [0, 1]: the commonly
/// used CIFAR-10 statistics (as in the usual torchvision `Normalize` recipes).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];

/// Per-channel (R, G, B) standard deviation of the training set's pixels scaled to
/// [0, 1], from the same commonly used statistics as [`MEAN`].
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// The five training files, in the order their records are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";

/// What to tell a user whose directory lacks a file: where the files come from.
const WHERE_TO_GET: &str = "download the official \"CIFAR-10 binary version\" \
    (cifar-10-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html and point \
    to the directory it extracts (cifar-10-batches-bin/), which holds data_batch_1.bin \
    … data_batch_5.bin and test_batch.bin";

/// CIFAR-10 records held in memory: `len()` images of 3×32×32 u8 pixels (CHW) and
/// their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Cifar10 {
    /// `len() × 3072` bytes: image `i` is `images[i*3072 .. (i+1)*3072]`.
    images: Vec<u8>,
    /// One label in 0..=9 per image.
    labels: Vec<u8>,
}

/// The official binary release (163 MB): unpacked, it is the `cifar-10-batches-bin`
/// directory the loaders read.
pub const DOWNLOAD_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/// Where the data is: `flag` when given, else `$CIFAR10_DIR`, else `data/` and
/// `../shared/data/` from the working directory. Each candidate may be the
/// `cifar-10-batches-bin` directory itself or a directory holding it. An `Err` lists
/// what was looked at and says where to get the data.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match (flag, std::env::var_os("CIFAR10_DIR")) {
        (Some(dir), _) => vec![dir.to_path_buf()],
        (None, Some(dir)) => vec![dir.into()],
        (None, None) => vec!["data".into(), "../shared/data".into()],
    };
    for dir in &candidates {
        for dir in [dir.clone(), dir.join("cifar-10-batches-bin")] {
            if dir.join(TRAIN_FILES[0]).is_file() {
                return Ok(dir);
            }
        }
    }
    arg_err!(
        "no CIFAR-10 data in {candidates:?} (nor in a cifar-10-batches-bin directory inside \
         them): download the binary version from {DOWNLOAD_URL}, unpack it (tar xzf) into \
         data/, or point --data or $CIFAR10_DIR at the directory holding it"
    )
}

impl Cifar10 {
    /// The 50,000 training records: `data_batch_1.bin` … `data_batch_5.bin` in `dir`,
    /// in that order.
    pub fn load_train(dir: impl AsRef<Path>) -> Result<Cifar10> {
        let dir = dir.as_ref();
        let paths: Vec<PathBuf> = TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
        Cifar10::load_files(&paths)
    }

    /// The 10,000 test records: `test_batch.bin` in `dir`.
    pub fn load_test(dir: impl AsRef<Path>) -> Result<Cifar10> {
        Cifar10::load_files(&[dir.as_ref().join(TEST_FILE)])
    }

    /// The records of `paths`, concatenated in order. Every file is checked whole before
    /// its records are used: a missing file, a length that is not a whole number of
    /// records, or a label outside 0..=9 is an error naming the file (and the byte
    /// offset, for the last two).
    pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Cifar10> {
        if paths.is_empty() {
            return arg_err!("CIFAR-10: no files given to load");
        }
        let mut data = Cifar10 {
            images: Vec::new(),
            labels: Vec::new(),
        };
        for path in paths {
            let path = path.as_ref();
            let bytes = std::fs::read(path).map_err(|e| {
                Error::InvalidArgument(if e.kind() == std::io::ErrorKind::NotFound {
                    format!("CIFAR-10: {} not found; {WHERE_TO_GET}", path.display())
                } else {
                    format!("CIFAR-10: cannot read {}: {e}", path.display())
                })
            })?;
            data.append_records(&path.display().to_string(), &bytes)?;
        }
        Ok(data)
    }

    /// A data set from raw parts: `images` is `labels.len()` images of 3072 CHW bytes.
    /// Useful for synthetic data; the same checks as for a file apply.
    pub fn from_parts(images: Vec<u8>, labels: Vec<u8>) -> Result<Cifar10> {
        if Some(images.len()) != labels.len().checked_mul(IMAGE_BYTES) {
            return arg_err!(
                "CIFAR-10: {} image bytes are not {} images of {IMAGE_BYTES} bytes",
                images.len(),
                labels.len()
            );
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES.len()) {
            return arg_err!(
                "CIFAR-10: label {} of image {i} is not a class in 0..=9",
                labels[i]
            );
        }
        Ok(Cifar10 { images, labels })
    }

    /// Checks `bytes` (the contents of the file called `name`) and appends its records.
    /// Nothing is appended unless the whole file is valid.
    fn append_records(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let whole = bytes.len() / RECORD_BYTES;
        if !bytes.len().is_multiple_of(RECORD_BYTES) {
            // Name where the damage starts: the record a reader would trip over.
            return arg_err!(
                "CIFAR-10: {name} is truncated or corrupt: its {} bytes are not a whole \
                 number of {RECORD_BYTES}-byte records; the incomplete record {whole} starts \
                 at byte offset {}",
                bytes.len(),
                whole * RECORD_BYTES
            );
        }
        if whole == 0 {
            return arg_err!("CIFAR-10: {name} is empty; expected {RECORD_BYTES}-byte records");
        }
        for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            if record[0] as usize >= CLASSES.len() {
                return arg_err!(
                    "CIFAR-10: {name} is corrupt or not in the CIFAR-10 binary layout: label \
                     {} of record {i} at byte offset {} is not a class in 0..=9",
                    record[0],
                    i * RECORD_BYTES
                );
            }
        }
        self.labels.reserve(whole);
        self.images.reserve(whole * IMAGE_BYTES);
        for record in bytes.chunks_exact(RECORD_BYTES) {
            self.labels.push(record[0]);
            self.images.extend_from_slice(&record[1..]);
        }
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps only the first `n` records (all of them when there are `n` or fewer), e.g.
    /// `--limit-train 2000` = the first 2,000 records of `data_batch_1.bin`.
    pub fn limit(mut self, n: usize) -> Cifar10 {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * IMAGE_BYTES);
        self
    }

    /// The label (0..=9, an index into [`CLASSES`]) of record `i`.
    ///
    /// # Panics
    /// When `i >= len()`, like slice indexing.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i] as usize
    }

    /// The 3,072 pixel bytes of record `i`: R, G, B planes of 32×32, row-major.
    ///
    /// # Panics
    /// When `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// All labels, one per record.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// How many records each class has.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory under the system temp dir, unique to this process and `tag`, removed
    /// on drop so a failing test leaves nothing behind.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("liandan-cifar10-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A record whose label is `label` and whose pixel `p` is `(seed + 7p) mod 256`, so
    /// every record and every position differs.
    pub(crate) fn record(label: u8, seed: usize) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..IMAGE_BYTES).map(|p| ((seed + 7 * p) % 256) as u8));
        r
    }

    #[test]
    fn reads_synthetic_file_exactly() {
        let tmp = TempDir::new("exact");
        let labels = [3u8, 0, 9, 5];
        let bytes: Vec<u8> = labels
            .iter()
            .enumerate()
            .flat_map(|(i, &l)| record(l, i * 11))
            .collect();
        let path = tmp.0.join("data.bin");
        std::fs::write(&path, &bytes).unwrap();

        let data = Cifar10::load_files(&[&path]).unwrap();
        assert_eq!(data.len(), 4);
        for (i, &l) in labels.iter().enumerate() {
            assert_eq!(data.label(i), l as usize);
            assert_eq!(data.image(i), &record(l, i * 11)[1..]);
        }
        assert_eq!(data.class_counts()[3], 1);

        // Two files concatenate in order.
        let twice = Cifar10::load_files(&[&path, &path]).unwrap();
        assert_eq!(twice.len(), 8);
        assert_eq!(twice.image(5), data.image(1));
        assert_eq!(twice.label(6), 9);
    }

    #[test]
    fn load_train_and_test_read_the_official_names() {
        let tmp = TempDir::new("names");
        for (i, f) in TRAIN_FILES.iter().enumerate() {
            std::fs::write(tmp.0.join(f), record(i as u8, i)).unwrap();
        }
        std::fs::write(tmp.0.join(TEST_FILE), record(8, 99)).unwrap();
        let train = Cifar10::load_train(&tmp.0).unwrap();
        assert_eq!(train.labels(), &[0, 1, 2, 3, 4]);
        let test = Cifar10::load_test(&tmp.0).unwrap();
        assert_eq!(test.labels(), &[8]);
        assert_eq!(test.image(0), &record(8, 99)[1..]);
    }

    #[test]
    fn truncated_file_names_file_and_offset() {
        let tmp = TempDir::new("truncated");
        let mut bytes: Vec<u8> = (0..3).flat_map(|i| record(1, i)).collect();
        bytes.truncate(2 * RECORD_BYTES + 100); // cut inside the third record
        let path = tmp.0.join("cut.bin");
        std::fs::write(&path, &bytes).unwrap();

        let err = Cifar10::load_files(&[&path]).unwrap_err();
        let Error::InvalidArgument(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.starts_with("CIFAR-10:"), "{msg}");
        assert!(msg.contains("cut.bin"), "{msg}");
        assert!(
            msg.contains(&format!("byte offset {}", 2 * RECORD_BYTES)),
            "{msg}"
        );
        assert!(msg.contains(&(2 * RECORD_BYTES + 100).to_string()), "{msg}");
    }

    #[test]
    fn bad_label_names_file_and_offset() {
        let tmp = TempDir::new("label");
        let bytes: Vec<u8> = [2u8, 10, 4]
            .iter()
            .enumerate()
            .flat_map(|(i, &l)| record(l, i))
            .collect();
        let path = tmp.0.join("bad_label.bin");
        std::fs::write(&path, &bytes).unwrap();

        let msg = Cifar10::load_files(&[&path]).unwrap_err().to_string();
        assert!(msg.contains("CIFAR-10:"), "{msg}");
        assert!(msg.contains("bad_label.bin"), "{msg}");
        assert!(msg.contains("label 10"), "{msg}");
        assert!(
            msg.contains(&format!("byte offset {RECORD_BYTES}")),
            "{msg}"
        );
    }

    #[test]
    fn missing_and_empty_files_are_errors() {
        let tmp = TempDir::new("missing");
        let msg = Cifar10::load_train(&tmp.0).unwrap_err().to_string();
        assert!(msg.contains("data_batch_1.bin"), "{msg}");
        assert!(msg.contains("CIFAR-10 binary version"), "{msg}");
        assert!(msg.contains("test_batch.bin"), "{msg}");

        let empty = tmp.0.join("empty.bin");
        std::fs::write(&empty, []).unwrap();
        let msg = Cifar10::load_files(&[&empty]).unwrap_err().to_string();
        assert!(msg.contains("empty.bin"), "{msg}");

        let none: [&Path; 0] = [];
        assert!(Cifar10::load_files(&none).is_err());
    }

    #[test]
    fn limit_keeps_the_first_records() {
        let labels: Vec<u8> = (0..10).collect();
        let images: Vec<u8> = (0..10).flat_map(|i| record(0, i)[1..].to_vec()).collect();
        let data = Cifar10::from_parts(images, labels).unwrap();
        let first = data.clone().limit(3);
        assert_eq!(first.len(), 3);
        assert_eq!(first.labels(), &[0, 1, 2]);
        assert_eq!(first.image(2), data.image(2));
        assert_eq!(data.clone().limit(100), data);
        assert!(data.limit(0).is_empty());
    }

    #[test]
    fn from_parts_checks_sizes_and_labels() {
        assert!(Cifar10::from_parts(vec![0; IMAGE_BYTES], vec![1, 2]).is_err());
        assert!(Cifar10::from_parts(vec![0; IMAGE_BYTES], vec![10]).is_err());
        assert!(Cifar10::from_parts(vec![0; IMAGE_BYTES], vec![9]).is_ok());
    }

    #[test]
    fn real_test_batch_if_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar-10-batches-bin");
        if !dir.join(TEST_FILE).exists() {
            println!("skipped: no CIFAR-10 at {}", dir.display());
            return;
        }
        let test = Cifar10::load_test(&dir).unwrap();
        assert_eq!(test.len(), 10_000);
        assert!(test.labels().iter().all(|&l| l < 10));
        for (class, &n) in test.class_counts().iter().enumerate() {
            assert!((900..=1100).contains(&n), "class {class}: {n} records");
        }
    }
}
