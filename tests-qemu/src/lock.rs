//! At most one QEMU at a time: TCG with several vCPUs saturates a small machine, and parallel
//! runs would make timeouts flaky. Tests in one process share a mutex; test processes (several
//! test binaries, or a concurrent `cargo test`) share an advisory lock on
//! `target/tests-qemu/qemu.lock`.

use std::fs::{File, OpenOptions};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Result, ResultExt};
use crate::paths;

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Holds the QEMU lock until dropped.
pub struct QemuLock {
    // Field order matters: the file lock is released (the file closed) before the mutex.
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Waits for and takes the global QEMU lock.
pub fn acquire() -> Result<QemuLock> {
    // A test that panicked while holding the lock poisons the mutex; the lock itself is still fine.
    let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let path = paths::scratch_dir("")?.join("qemu.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    file.lock().ctx(|| format!("locking {}", path.display()))?;
    Ok(QemuLock {
        _file: file,
        _guard: guard,
    })
}
