//! An artifact as a set of named files, read from a folder or received over
//! the wire, within limits on names, count and size.

use std::collections::BTreeMap;
use std::path::Path;

use super::ModelError;
use super::artifact::Manifest;
use super::artifact::sha256_hex;
use crate::domain::validate::echoed;

/// The most bytes one file of an artifact may hold (weights of a few hundred
/// trees take about 1 MB).
pub const MAX_ARTIFACT_FILE_BYTES: usize = 8 << 20;
/// The most bytes all files of an artifact may hold together.
pub const MAX_ARTIFACT_BYTES: usize = 16 << 20;
/// The most files an artifact may hold.
pub const MAX_ARTIFACT_FILES: usize = 16;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// An artifact's files by name (`manifest.json`, the weights and golden rows it
/// names, and the trainer's reports), as read from a folder or received over
/// the wire; `origin` says where from, and prefixes every path an error names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactFiles {
    /// Where the files came from (a folder, or `upload`).
    pub origin: String,
    /// Name → content. Names are plain file names, no folders.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ArtifactFiles {
    /// Every regular file of `dir` (not its sub-folders), within the limits.
    pub fn read_dir(dir: &Path) -> Result<Self, ModelError> {
        let origin = dir.display().to_string();
        let read_error = |source| ModelError::Read {
            path: origin.clone(),
            source,
        };
        let mut out = ArtifactFiles {
            origin: origin.clone(),
            files: BTreeMap::new(),
        };
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Sub-folders and hidden files (an editor's, the OS's, a state
            // file being written) are not part of an artifact.
            if !entry.file_type().map_err(read_error)?.is_file() || name.starts_with('.') {
                continue;
            }
            let size = entry.metadata().map_err(read_error)?.len();
            if size > MAX_ARTIFACT_FILE_BYTES as u64 {
                return Err(ModelError::Mismatch {
                    path: entry.path().display().to_string(),
                    detail: format!(
                        "{size} bytes; a file of an artifact holds at most \
                         {MAX_ARTIFACT_FILE_BYTES}"
                    ),
                });
            }
            let bytes = read_bytes(&entry.path())?;
            out.add(name, bytes)?;
        }
        Ok(out)
    }

    /// Adds one file, refusing a name that is not a plain file name, a second
    /// file of the same name, and sizes beyond the limits.
    pub fn add(&mut self, name: String, bytes: Vec<u8>) -> Result<(), ModelError> {
        let path = format!("{}/{}", self.origin, echoed(&name));
        let refuse = |detail: String| ModelError::Mismatch {
            path: path.clone(),
            detail,
        };
        if name.is_empty()
            || name.starts_with('.')
            || name.contains(['/', '\\', '\0'])
            || name.chars().any(char::is_control)
        {
            return Err(refuse(
                "a file name must be a plain name (no folders, not hidden)".into(),
            ));
        }
        if self.files.contains_key(&name) {
            return Err(refuse("the same file is given twice".into()));
        }
        if self.files.len() >= MAX_ARTIFACT_FILES {
            return Err(refuse(format!(
                "an artifact holds at most {MAX_ARTIFACT_FILES} files"
            )));
        }
        if bytes.len() > MAX_ARTIFACT_FILE_BYTES {
            return Err(refuse(format!(
                "{} bytes; a file of an artifact holds at most {MAX_ARTIFACT_FILE_BYTES}",
                bytes.len()
            )));
        }
        if self.total_bytes() + bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(refuse(format!(
                "the artifact's files hold more than {MAX_ARTIFACT_BYTES} bytes together"
            )));
        }
        self.files.insert(name, bytes);
        Ok(())
    }

    /// The bytes of all files together.
    pub fn total_bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    /// The content of `name`, or a read error naming it.
    pub fn get(&self, name: &str) -> Result<&[u8], ModelError> {
        self.files
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| ModelError::Read {
                path: self.path(name),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })
    }

    /// The parsed manifest (checked no further).
    pub fn manifest(&self) -> Result<Manifest, ModelError> {
        serde_json::from_slice(self.get(MANIFEST_FILE)?).map_err(|e| ModelError::Parse {
            path: self.path(MANIFEST_FILE),
            detail: e.to_string(),
        })
    }

    /// What identifies the model these files describe: the SHA-256 of the
    /// manifest, which records the checksums of the weights and golden rows.
    pub fn identity(&self) -> Result<String, ModelError> {
        Ok(sha256_hex(self.get(MANIFEST_FILE)?))
    }

    /// Writes every file into `dir`, creating it.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, bytes) in &self.files {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }

    /// How errors name file `name`: `origin/name`.
    pub(crate) fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.origin)
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Read {
        path: path.display().to_string(),
        source,
    })
}
