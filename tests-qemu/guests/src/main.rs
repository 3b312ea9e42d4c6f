//! `pvtest`: a tiny 64-bit PV kernel that checks the Xen guest ABI and prints one verdict line
//! per check, so the same binary can run on real Xen 4.17 (the reference) and on Xenolith and
//! the host can compare the two transcripts. See `README.md` next to `Cargo.toml`.
//!
//! Boot: Xen (or Xenolith) loads this ELF as dom0 from the first multiboot module, guided by the
//! `.note.Xen` ELF notes ([`notes`]), and enters [`entry`] in 64-bit guest kernel mode with `rsi`
//! pointing at `start_info`. The guest switches to its own stack, installs a trap table, runs the
//! suites selected by its command line (`suites=basic`), prints `PVTEST DONE` and powers off.
//!
//! On the host the crate builds to an empty `main` so `cargo test --workspace` works.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod cmdline;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod console_line;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod mm;
#[cfg(target_os = "none")]
mod notes;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod suites;
#[cfg(target_os = "none")]
mod traps_rt;
#[cfg(target_os = "none")]
mod usermode;
#[cfg(target_os = "none")]
mod verdict;
#[cfg(target_os = "none")]
mod window;

#[cfg(not(target_os = "none"))]
fn main() {}
