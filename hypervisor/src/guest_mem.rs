//! Typed, checked access to guest virtual memory (Xen's `copy_{from,to}_guest`).
//!
//! Every hypercall argument that points into the guest goes through here. An address range is
//! accepted only if it lies wholly in the guest's part of the address space (below
//! `0x0000800000000000` or at/above the end of the hypervisor range), as Xen's `access_ok`;
//! the copy itself runs on the guest's page tables and turns a fault into `-EFAULT`.

#[cfg(target_os = "none")]
use xen_abi::errno::Errno;
use xenolith_arch::layout::HYPERVISOR_VIRT_END;
#[cfg(target_os = "none")]
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Whether `[gva, gva + len)` is a guest-owned, canonical range (Xen's `__addr_ok` on both
/// ends, for 64-bit PV guests).
pub fn range_ok(gva: u64, len: usize) -> bool {
    let Some(end) = gva.checked_add(len as u64) else {
        return false;
    };
    let low_half = end <= 0x0000_8000_0000_0000;
    let high_guest = gva >= HYPERVISOR_VIRT_END;
    len == 0 || low_half || high_guest
}

/// Copies guest memory at `gva` into `dst`.
#[cfg(target_os = "none")]
pub fn copy_from_guest(dst: &mut [u8], gva: u64) -> Result<(), Errno> {
    // An HVM guest's addresses go through its own page tables and the nested tables.
    if let Some(ok) = crate::hvm::xlat::read(dst, gva) {
        return if ok { Ok(()) } else { Err(Errno::EFAULT) };
    }
    if !range_ok(gva, dst.len()) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: `dst` is a valid hypervisor buffer; the guest range was checked above and the
    // copy routine recovers from faults on it.
    let left =
        unsafe { xenolith_arch::uaccess::copy_raw(dst.as_mut_ptr(), gva as *const u8, dst.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copies `src` to guest memory at `gva`.
#[cfg(target_os = "none")]
pub fn copy_to_guest(gva: u64, src: &[u8]) -> Result<(), Errno> {
    if let Some(ok) = crate::hvm::xlat::write(gva, src) {
        return if ok { Ok(()) } else { Err(Errno::EFAULT) };
    }
    if !range_ok(gva, src.len()) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: as in `copy_from_guest`, in the other direction.
    let left = unsafe { xenolith_arch::uaccess::copy_raw(gva as *mut u8, src.as_ptr(), src.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Reads a `T` from guest memory.
#[cfg(target_os = "none")]
pub fn read_guest<T: FromBytes + IntoBytes>(gva: u64) -> Result<T, Errno> {
    let mut v = T::new_zeroed();
    copy_from_guest(v.as_mut_bytes(), gva)?;
    Ok(v)
}

/// Writes a `T` to guest memory.
#[cfg(target_os = "none")]
pub fn write_guest<T: IntoBytes + Immutable>(gva: u64, v: &T) -> Result<(), Errno> {
    copy_to_guest(gva, v.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(range_ok(0x1000, 8));
        assert!(range_ok(0x0000_7fff_ffff_fff8, 8));
        assert!(
            !range_ok(0x0000_7fff_ffff_fffc, 8),
            "crosses into non-canonical space"
        );
        assert!(
            !range_ok(0xffff_8000_0000_0000, 8),
            "the M2P is read directly, not passed"
        );
        assert!(!range_ok(0xffff_82d0_4000_0000, 1), "hypervisor image");
        assert!(
            !range_ok(0xffff_87ff_ffff_fff8, 16),
            "ends past, starts inside"
        );
        assert!(range_ok(0xffff_8800_0000_0000, 4096));
        assert!(range_ok(0xffff_ffff_8000_0000, 4096));
        assert!(!range_ok(u64::MAX - 3, 8), "wraps");
        assert!(range_ok(0xffff_8100_0000_0000, 0), "empty ranges are fine");
    }
}
