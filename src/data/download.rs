//! Fetching CIFAR-10 when it is not on the machine, as torchvision's `download=True`:
//! the official binary release over HTTPS (`ureq`), its published MD5 checked (`md-5`)
//! before anything is unpacked, then unpacked (`flate2`, `tar`) into a temporary
//! directory that is renamed into place, so an interrupted download or extraction never
//! leaves a half-written data directory behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::cifar10::{DOWNLOAD_URL, TEST_FILE, TRAIN_FILES};
use crate::error::{Error, Result};

/// The MD5 the CIFAR-10 page publishes for `cifar-10-binary.tar.gz`.
pub const CIFAR10_BINARY_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{what} {}: {e}", path.display()))
}

/// The MD5 of `bytes`, as lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `archive` (a `.tar.gz`) against `expected_md5`, then unpacks it into `dest`:
/// into `dest.tmp` first, renamed to `dest` once whole. Returns the directory holding
/// the data files (`dest/cifar-10-batches-bin`). An `Err` for a checksum mismatch (the
/// archive is damaged or not the release) or an archive without the CIFAR-10 files;
/// nothing is left in `dest` then.
pub fn verify_and_extract(archive: &[u8], expected_md5: &str, dest: &Path) -> Result<PathBuf> {
    let actual = md5_hex(archive);
    if actual != expected_md5 {
        return Err(Error::InvalidArgument(format!(
            "the CIFAR-10 archive's MD5 is {actual}, not the published {expected_md5}: the \
             download is damaged or not the official release; nothing was unpacked"
        )));
    }
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
    let unpack = || -> Result<()> {
        let gz = flate2::read::GzDecoder::new(archive);
        tar::Archive::new(gz)
            .unpack(&tmp)
            .map_err(|e| io_err("unpacking into", &tmp, e))?;
        let data = tmp.join("cifar-10-batches-bin");
        for file in TRAIN_FILES.iter().chain([&TEST_FILE]) {
            if !data.join(file).is_file() {
                return Err(Error::InvalidArgument(format!(
                    "the archive has no cifar-10-batches-bin/{file}"
                )));
            }
        }
        Ok(())
    };
    if let Err(e) = unpack() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dest.exists() {
        // A destination without the data (the caller looked first) is replaced whole.
        std::fs::remove_dir_all(dest).map_err(|e| io_err("replacing", dest, e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| io_err("moving the data to", dest, e))?;
    Ok(dest.join("cifar-10-batches-bin"))
}

/// Downloads the official CIFAR-10 binary release (163 MB) into `dest` (see
/// [`verify_and_extract`]), calling `progress(bytes so far, total bytes if known)` as it
/// arrives. Returns the data directory. An `Err` names the URL and the network error
/// when the machine is offline, with what to fetch by hand.
pub fn download_cifar10(
    dest: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf> {
    let offline = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!(
            "downloading {DOWNLOAD_URL} failed ({e}); without a network, fetch that file \
             elsewhere, unpack it (tar xzf cifar-10-binary.tar.gz) into {}/ and run again",
            dest.display()
        ))
    };
    let response = ureq::get(DOWNLOAD_URL).call().map_err(|e| offline(&e))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut reader = response.into_body().into_reader();
    let mut archive = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| offline(&e))?;
        if n == 0 {
            break;
        }
        archive.extend_from_slice(&chunk[..n]);
        progress(archive.len() as u64, total);
    }
    verify_and_extract(&archive, CIFAR10_BINARY_MD5, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.tar.gz` holding `cifar-10-batches-bin/` with the six files (one record each).
    fn tiny_archive(files: &[&str]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for name in files {
            let record = vec![3u8; super::super::cifar10::RECORD_BYTES];
            let mut header = tar::Header::new_gnu();
            header.set_size(record.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("cifar-10-batches-bin/{name}"),
                &record[..],
            )
            .unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn verified_archives_unpack_and_bad_ones_leave_nothing() {
        let root = std::env::temp_dir().join(format!("liandan-dl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let all: Vec<&str> = TRAIN_FILES.iter().chain([&TEST_FILE]).copied().collect();
        let archive = tiny_archive(&all);
        let md5 = md5_hex(&archive);

        // A wrong checksum: an error, nothing written.
        let dest = root.join("data");
        let err = verify_and_extract(&archive, CIFAR10_BINARY_MD5, &dest).unwrap_err();
        assert!(err.to_string().contains(&md5), "{err}");
        assert!(!dest.exists());

        // The right one: the files in place, and the loader reads them.
        let dir = verify_and_extract(&archive, &md5, &dest).unwrap();
        assert_eq!(dir, dest.join("cifar-10-batches-bin"));
        let data = super::super::cifar10::Cifar10::load_test(&dir).unwrap();
        assert_eq!(data.len(), 1);
        assert!(!root.join("data.tmp").exists());

        // An archive missing a file: an error naming it, the earlier data untouched.
        let partial = tiny_archive(&all[..3]);
        let err = verify_and_extract(&partial, &md5_hex(&partial), &root.join("other"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(TRAIN_FILES[3]), "{err}");
        assert!(!root.join("other").exists() && !root.join("other.tmp").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn md5_of_known_text() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}
