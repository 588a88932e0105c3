//! The files of an export, a folder or a zip archive, listed by their path inside it and opened
//! one at a time as a stream.
//!
//! A folder is walked without following symbolic links, and only regular files are opened: a
//! link (to `/etc/passwd`, to `/dev/zero`, to its own folder) or a device, FIFO or socket is
//! listed and refused, never read. The open itself does not follow a link and checks the file
//! is still regular, so one swapped in after the walk is refused too.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::{ImportError, Skip};

/// What a folder entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileType {
    Regular,
    /// Not read, for this reason.
    Refused(&'static str),
}

/// The files of an export, by their path inside it.
pub(super) enum Export {
    Folder {
        root: PathBuf,
        files: Vec<(PathBuf, FileType)>,
    },
    Zip {
        archive: Box<zip::ZipArchive<File>>,
        /// File entries' names (as paths) and their index in the archive.
        files: Vec<(PathBuf, usize)>,
    },
}

impl Export {
    pub(super) fn open(path: &Path) -> Result<Export, ImportError> {
        let io = |source| ImportError::Io {
            path: path.to_owned(),
            source,
        };
        if std::fs::metadata(path).map_err(io)?.is_dir() {
            let mut files = walk(path)?;
            for (f, _) in &mut files {
                if let Ok(rel) = f.strip_prefix(path) {
                    *f = rel.to_owned();
                }
            }
            files.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(Export::Folder {
                root: path.to_owned(),
                files,
            });
        }
        let file = File::open(path).map_err(io)?;
        let archive = zip::ZipArchive::new(file).map_err(|e| ImportError::NotAnArchive {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<(PathBuf, usize)> = (0..archive.len())
            .filter_map(|i| {
                let name = archive.name_for_index(i)?.ok()?;
                (!name.ends_with('/')).then(|| (PathBuf::from(name.as_ref()), i))
            })
            .collect();
        files.sort();
        Ok(Export::Zip {
            archive: Box::new(archive),
            files,
        })
    }

    pub(super) fn names(&self) -> Vec<PathBuf> {
        match self {
            Export::Folder { files, .. } => files.iter().map(|(name, _)| name.clone()).collect(),
            Export::Zip { files, .. } => files.iter().map(|(name, _)| name.clone()).collect(),
        }
    }

    /// The name of file number `i` of [`Export::names`].
    pub(super) fn name(&self, i: usize) -> &Path {
        match self {
            Export::Folder { files, .. } => &files[i].0,
            Export::Zip { files, .. } => &files[i].0,
        }
    }

    /// Whether file number `i` of [`Export::names`] may be opened at all; `Err` is why not.
    pub(super) fn check(&self, i: usize) -> Result<(), String> {
        match self {
            Export::Folder { files, .. } => match files[i].1 {
                FileType::Regular => Ok(()),
                FileType::Refused(why) => Err(why.to_owned()),
            },
            Export::Zip { files, .. } => {
                // Only names are matched, nothing is written out; still, a name that would
                // leave the archive's folder marks an archive not made by an export.
                let enclosed = files[i]
                    .0
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
                if enclosed {
                    Ok(())
                } else {
                    Err("its name leaves the archive's folder; not read".into())
                }
            }
        }
    }

    /// File number `i` as a stream, with its compressed size when it is an archive entry.
    pub(super) fn open_file(
        &mut self,
        i: usize,
    ) -> Result<(Box<dyn Read + '_>, Option<u64>), Skip> {
        match self {
            Export::Folder { root, files } => {
                let file = open_regular(&root.join(&files[i].0))?;
                Ok((Box::new(file), None))
            }
            Export::Zip { archive, files } => {
                let entry = archive
                    .by_index(files[i].1)
                    .map_err(|e| Skip::NotRead(format!("cannot read from the archive: {e}")))?;
                let compressed = entry.compressed_size();
                Ok((Box::new(entry), Some(compressed)))
            }
        }
    }
}

/// The files below `dir`, each with whether it may be read; links are listed, not followed.
fn walk(dir: &Path) -> Result<Vec<(PathBuf, FileType)>, ImportError> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(dir) = folders.pop() {
        let io = |source| ImportError::Io {
            path: dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            // The entry's own type: a link is a link, whatever it points to.
            let file_type = entry.file_type().map_err(io)?;
            let path = entry.path();
            if file_type.is_dir() {
                folders.push(path);
            } else {
                out.push((path, classify(&file_type)));
            }
        }
    }
    Ok(out)
}

const LINK: &str = "a symbolic link; links are not followed, not read";
const SPECIAL: &str = "not a regular file (a device, FIFO or socket); not read";

fn classify(t: &std::fs::FileType) -> FileType {
    if t.is_file() {
        FileType::Regular
    } else if t.is_symlink() {
        FileType::Refused(LINK)
    } else {
        FileType::Refused(SPECIAL)
    }
}

/// Opens `path` for reading if it is a regular file, without following a link and without
/// waiting on a FIFO.
fn open_regular(path: &Path) -> Result<File, Skip> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Skip::Refused(LINK.into());
        }
        Skip::NotRead(format!("cannot read: {e}"))
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Skip::NotRead(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(Skip::Refused(SPECIAL.into()));
    }
    Ok(file)
}
