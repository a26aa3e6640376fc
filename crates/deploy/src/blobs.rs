//! A directory of components named by their SHA-256, written atomically
//! and checked against their name when read.

use crate::{io, sha256_hex, write_atomic, RepoError};
use std::path::{Path, PathBuf};
use wharf_proto::is_sha256_hex;

#[derive(Debug, Clone)]
pub struct BlobDir {
    dir: PathBuf,
}

impl BlobDir {
    /// Opens (creating if needed) the directory.
    pub fn open(dir: &Path) -> Result<BlobDir, RepoError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(BlobDir {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, sha256: &str) -> Result<PathBuf, RepoError> {
        if !is_sha256_hex(sha256) {
            return Err(RepoError::BadHash(sha256.to_string()));
        }
        Ok(self.dir.join(sha256))
    }

    /// Stores `bytes`; returns their hash. Storing the same bytes again is
    /// a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<String, RepoError> {
        let sha = sha256_hex(bytes);
        let path = self.path(&sha)?;
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(sha)
    }

    /// The content named `sha256`, checked against it.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, RepoError> {
        let path = self.path(sha256)?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(RepoError::Corrupt {
                path,
                message: "content does not match its hash".into(),
            });
        }
        Ok(bytes)
    }

    pub fn has(&self, sha256: &str) -> bool {
        self.path(sha256).is_ok_and(|p| p.exists())
    }

    /// Removes every blob not in `keep`; returns how many went.
    pub fn retain(&self, keep: &std::collections::BTreeSet<&str>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_sha256_hex(name) && !keep.contains(name) && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}
