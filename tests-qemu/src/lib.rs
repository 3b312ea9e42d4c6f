//! Host-side harness that boots Xenolith in QEMU and checks what it prints on the serial port.
//!
//! One concern per module:
//! - [`paths`]: the workspace root, the scratch directory under `target/`, and the hypervisor ELF
//!   (`XENOLITH_ELF`, or built on demand with cargo);
//! - [`cmdline`]: QEMU `-initrd` module lists (`,` escaping);
//! - [`qemu`]: the QEMU runner builder and its [`RunResult`];
//! - [`serial`]: line-oriented access to the captured serial log (and the e820 map it prints);
//! - [`grub`]: a minimal GRUB rescue ISO for multiboot2 boots;
//! - [`bochs`]: a Bochs runner (GRUB ISO, COM1 into a file) for Intel VMX, which TCG lacks;
//! - [`elf`]: a tiny ELF64 program-header reader and the multiboot1 "address kludge" invariant;
//! - [`multiboot`]: locating and checking the multiboot1/multiboot2 headers against the PT_LOADs;
//! - [`synth`]: a synthetic multiboot ELF (for unit tests and for testing the harness itself);
//! - [`lock`]: the global lock that keeps at most one QEMU running at a time.

pub mod bench;
pub mod bochs;
pub mod cmdline;
pub mod debian;
pub mod elf;
pub mod error;
pub mod grub;
pub mod guests;
pub mod initramfs;
pub mod linux;
pub mod lock;
pub mod multiboot;
pub mod paths;
pub mod qemu;
pub mod serial;
pub mod serial_watch;
pub mod synth;
pub mod verdicts;
pub mod xen_ref;

pub use error::{Error, Result};
pub use qemu::{EndReason, Qemu, RunResult};
pub use serial::SerialLog;

/// The line the hypervisor prints when it has finished booting.
pub const BOOT_COMPLETE: &str = "(XEN) Xenolith boot complete";

/// Markers that mean the hypervisor crashed; a run stops as soon as one is seen unless the test
/// expects them (see [`Qemu::no_failure_markers`]).
pub const DEFAULT_FAILURE_MARKERS: &[&str] = &["FATAL TRAP", "Panic on CPU"];
