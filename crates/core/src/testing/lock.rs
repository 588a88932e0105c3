//! File locks in the temporary folder, so test processes running side by side build the
//! cluster and each template once.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

pub(super) fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("wearhouse-test");
    fs::create_dir_all(&dir).expect("create the test lock folder");
    dir
}

pub(super) struct FileLock(File);

impl FileLock {
    pub(super) fn acquire(path: &Path) -> FileLock {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("open lock file");
        f.lock().expect("lock");
        FileLock(f)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
