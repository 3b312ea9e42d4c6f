//! Wall-clock timing of serial output: a background thread follows a named run's serial log
//! (`target/tests-qemu/runs/<name>.serial.log`, the file [`crate::Qemu::run`] creates just
//! before it starts QEMU) and notes when each of some strings first appears, measured from the
//! moment the file was created. For reports only; it never affects a run.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::{Result, ResultExt};
use crate::paths;

const POLL: Duration = Duration::from_millis(10);

/// A running watcher; stop it with [`finish`](Self::finish) (dropping it stops it too).
pub struct SerialWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Option<Duration>>>>,
}

/// The serial log path of the run named `name` (as [`crate::Qemu::name`] chooses it).
pub fn serial_path(name: &str) -> Result<PathBuf> {
    Ok(paths::scratch_dir("runs")?.join(format!("{name}.serial.log")))
}

impl SerialWatch {
    /// Starts watching the serial log of the run `name` for `needles`. Call it just before
    /// running; it removes a log left by an earlier run so that only the new one counts.
    pub fn start(name: &str, needles: &[&str]) -> Result<SerialWatch> {
        let path = serial_path(name)?;
        if path.exists() {
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
        }
        let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut found: Vec<Option<Duration>> = vec![None; needles.len()];
            // Wait for the file (created when the run holds the QEMU lock and starts QEMU).
            let (mut file, start) = loop {
                if let Ok(f) = File::open(&path) {
                    break (f, Instant::now());
                }
                if stop2.load(Ordering::Relaxed) {
                    return found;
                }
                thread::sleep(POLL);
            };
            let mut bytes = Vec::new();
            loop {
                // Read the flag first so that the final read sees everything written before it.
                let stopping = stop2.load(Ordering::Relaxed);
                let before = bytes.len();
                if file.seek(SeekFrom::Start(before as u64)).is_ok() {
                    let _ = file.read_to_end(&mut bytes);
                }
                if bytes.len() > before {
                    let now = start.elapsed();
                    // Look only at new bytes (plus enough overlap for a needle split across
                    // reads).
                    let overlap = needles.iter().map(|n| n.len()).max().unwrap_or(0);
                    let from = before.saturating_sub(overlap);
                    let text = String::from_utf8_lossy(&bytes[from..]);
                    for (n, f) in needles.iter().zip(found.iter_mut()) {
                        if f.is_none() && text.contains(n.as_str()) {
                            *f = Some(now);
                        }
                    }
                }
                if stopping || found.iter().all(Option::is_some) {
                    return found;
                }
                thread::sleep(POLL);
            }
        });
        Ok(SerialWatch {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops watching; returns, for each needle, when it first appeared (`None`: never).
    pub fn finish(mut self) -> Vec<Option<Duration>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for SerialWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn notes_first_appearance() {
        let name = "serial-watch-unit";
        let path = serial_path(name).unwrap();
        fs::write(&path, b"stale: one two\n").unwrap();
        let w = SerialWatch::start(name, &["one", "two", "three"]).unwrap();
        assert!(!path.exists(), "the stale log is removed");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"xx o").unwrap();
        f.flush().unwrap();
        thread::sleep(Duration::from_millis(50));
        f.write_all(b"ne\ntwo\n").unwrap();
        f.flush().unwrap();
        thread::sleep(Duration::from_millis(50));
        let found = w.finish();
        assert!(found[0].is_some() && found[1].is_some(), "{found:?}");
        assert!(found[0].unwrap() >= Duration::from_millis(40), "{found:?}");
        assert_eq!(found[2], None);
        fs::remove_file(&path).unwrap();
    }
}
