//! `copy < f | cat > /dev/null` against `cat < f | cat > /dev/null` on a large file of
//! real (not sparse) data, through `sh -c`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// A scratch file deleted on drop (also when a run fails).
pub struct DataFile {
    path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

impl DataFile {
    /// Writes `len` bytes of real data: 1 MiB blocks of pseudo-random bytes, each block
    /// stamped with its index so no two blocks are equal. Synced to disk, so writeback
    /// does not run during the timed copies.
    pub fn create(path: &Path, len: u64) -> Result<DataFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let file = DataFile {
            path: path.to_path_buf(),
            len,
        };
        let mut f = File::create(path).with_context(|| format!("create {}", path.display()))?;
        let mut block = vec![0u8; 1 << 20];
        SplitMix64::seed_from_u64(0x9e37_79b9_7f4a_7c15).fill_bytes(&mut block);
        let mut written = 0u64;
        let mut index = 0u64;
        while written < len {
            block[..8].copy_from_slice(&index.to_le_bytes());
            let n = (len - written).min(block.len() as u64) as usize;
            f.write_all(&block[..n]).context("write the data file")?;
            written += n as u64;
            index += 1;
        }
        f.sync_all().context("sync the data file")?;
        Ok(file)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `<first> < file | cat > /dev/null` and returns its throughput in bytes/s.
pub fn pipeline(first: &Path, file: &DataFile) -> Result<f64> {
    let start = Instant::now();
    let status = Command::new("sh")
        .args(["-c", r#""$0" < "$1" | cat > /dev/null"#])
        .arg(first)
        .arg(file.path())
        .status()
        .context("run sh")?;
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        status.success(),
        "{} pipeline failed: {status}",
        first.display()
    );
    Ok(file.len as f64 / secs)
}

/// Finds `cat` on the PATH.
pub fn cat_path() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("cat"))
        .find(|p| p.is_file())
        .context("no cat on the PATH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_has_real_distinct_blocks_and_is_removed() {
        let path = std::env::temp_dir().join(format!("bench-threads-{}.bin", std::process::id()));
        let f = DataFile::create(&path, (2 << 20) + 10).unwrap();
        let bytes = std::fs::read(f.path()).unwrap();
        assert_eq!(bytes.len(), (2 << 20) + 10);
        assert_ne!(bytes[..1 << 20], bytes[1 << 20..2 << 20]);
        assert!(bytes.iter().filter(|&&b| b == 0).count() < bytes.len() / 100);
        let cat = cat_path().unwrap();
        assert!(pipeline(&cat, &f).unwrap() > 0.0);
        drop(f);
        assert!(!path.exists());
    }
}
