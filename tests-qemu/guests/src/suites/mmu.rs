//! `mmu`: placeholder.

use xen_abi::xen::StartInfo;

use crate::verdict::Suite;

/// Runs the suite.
pub fn run(_s: &mut Suite, _si: &StartInfo) {}
