//! `pvhtest`: a tiny PVH kernel that checks the Xen guest ABI as a PVH dom0 sees it and prints
//! one verdict line per check, so the same binary can run on real Xen 4.17 (`dom0=pvh`, the
//! reference) and on Xenolith and the host can compare the two transcripts. It also runs as a
//! PVH domU ([`role`]). See `README.md` next to `Cargo.toml`.
//!
//! Boot: the hypervisor loads this ELF at its physical addresses and enters
//! `XEN_ELFNOTE_PHYS32_ENTRY` ([`notes`]) in 32-bit protected mode with paging off and `ebx`
//! pointing at `struct hvm_start_info`; [`boot`] switches to 64-bit mode on identity page
//! tables and calls [`run::pvhtest_main`].
//!
//! On the host the binary is an empty `main` so `cargo test --workspace` works.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
#[path = "../cmdline.rs"]
mod cmdline;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
#[path = "../console_line.rs"]
mod console_line;
#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod idt;
#[cfg(target_os = "none")]
mod notes;
#[cfg(target_os = "none")]
mod pvclock;
#[cfg(target_os = "none")]
mod role;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
mod start_info;
#[cfg(target_os = "none")]
mod suites;
#[cfg(target_os = "none")]
#[path = "../verdict.rs"]
mod verdict;

#[cfg(not(target_os = "none"))]
fn main() {}
