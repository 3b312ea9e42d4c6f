//! Whether `pvhtest` runs as the PVH dom0 or as a PVH domU.
//!
//! A domU is a guest whose `hvm_start_info.flags` lack `SIF_INITDOMAIN` (Xen and Xenolith set
//! `SIF_PRIVILEGED | SIF_INITDOMAIN` for dom0 only), or whose `CONSOLEIO_write` is refused with
//! -EPERM (Xen release builds refuse it to domUs). A domU prints on the HVM debug port 0xe9,
//! which the hypervisor shows as `(d<N>) <line>`.

use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::xen::SIF_INITDOMAIN;

static DOMU: AtomicBool = AtomicBool::new(false);

/// Decides from the start info's flags (called once the hypercall page is installed).
pub fn detect(flags: u32) {
    if flags & SIF_INITDOMAIN == 0 {
        set_domu();
    }
}

/// Records that this is a domU (e.g. `CONSOLEIO_write` was refused).
pub fn set_domu() {
    DOMU.store(true, Ordering::SeqCst);
}

/// Whether this is a domU.
pub fn is_domu() -> bool {
    DOMU.load(Ordering::SeqCst)
}
