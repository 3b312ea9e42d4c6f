//! `HYPERVISOR_xen_version` (Xen's `do_xen_version`, `xen/common/kernel.c`).

use super::Ctx;
use crate::guest_mem::copy_to_guest;
use xen_abi::errno::Errno;
use xen_abi::version::{XEN_MAJOR, XEN_MINOR};

use xen_abi::features::{
    XENFEAT_direct_mapped, XENFEAT_dom0, XENFEAT_gnttab_map_avail_bits, XENFEAT_highmem_assist,
    XENFEAT_memory_op_vnode_supported, XENFEAT_mmu_pt_update_preserve_ad,
    XENFEAT_pae_pgdir_above_4gb,
};
use xen_abi::version::{
    XENVER_capabilities, XENVER_changeset, XENVER_commandline, XENVER_compile_info,
    XENVER_extraversion, XENVER_get_features, XENVER_guest_handle, XENVER_pagesize,
    XENVER_platform_parameters, XENVER_version,
};

/// `XENFEAT_*` bits of submap 0 for a 64-bit PV guest (`do_xen_version`, XENVER_get_features).
fn pv_features_submap0(privileged: bool, pae_extended_cr3: bool) -> u32 {
    let mut m = (1 << XENFEAT_memory_op_vnode_supported)
        | (1 << XENFEAT_mmu_pt_update_preserve_ad)
        | (1 << XENFEAT_highmem_assist)
        | (1 << XENFEAT_gnttab_map_avail_bits)
        // PV guests see machine frames: Xen reports them direct-mapped.
        | (1 << XENFEAT_direct_mapped);
    if privileged {
        m |= 1 << XENFEAT_dom0;
    }
    if pae_extended_cr3 {
        m |= 1 << XENFEAT_pae_pgdir_above_4gb;
    }
    m
}

/// `XENFEAT_*` bits of submap 0 for an HVM (PVH) guest: translated physmap, the HVM event
/// and clock features, no PIRQs (a PVH domain has none), frames not direct-mapped.
fn hvm_features_submap0(privileged: bool) -> u32 {
    let mut m = (1 << XENFEAT_memory_op_vnode_supported)
        | (1 << xen_abi::features::XENFEAT_writable_page_tables)
        | (1 << xen_abi::features::XENFEAT_auto_translated_physmap)
        | (1 << xen_abi::features::XENFEAT_hvm_safe_pvclock)
        | (1 << xen_abi::features::XENFEAT_hvm_callback_vector)
        | (1 << xen_abi::features::XENFEAT_not_direct_mapped);
    if privileged {
        m |= 1 << XENFEAT_dom0;
    }
    m
}

/// A NUL-padded fixed-size string, as the `xen_*_t` char arrays.
fn fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [0u8; N];
    let n = s.len().min(N - 1);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    b
}

/// `xen_version(cmd, arg)`.
pub fn do_xen_version(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let arg = a[1];
    match a[0] as u32 {
        XENVER_version => Ok(i64::from((XEN_MAJOR << 16) | XEN_MINOR)),
        XENVER_extraversion => copy_to_guest(arg, &fixed::<16>(".0-xenolith")).map(|_| 0),
        XENVER_compile_info => {
            let mut info = [0u8; 64 + 16 + 32 + 32];
            info[..64].copy_from_slice(&fixed::<64>("rustc 1.95.0"));
            info[64..80].copy_from_slice(&fixed::<16>("xenolith"));
            info[80..112].copy_from_slice(&fixed::<32>("xenolith"));
            info[112..].copy_from_slice(&fixed::<32>(env!("CARGO_PKG_VERSION")));
            copy_to_guest(arg, &info).map(|_| 0)
        }
        XENVER_capabilities => copy_to_guest(
            arg,
            &fixed::<1024>("xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"),
        )
        .map(|_| 0),
        XENVER_changeset => copy_to_guest(arg, &fixed::<64>("xenolith")).map(|_| 0),
        XENVER_platform_parameters => copy_to_guest(
            arg,
            &xenolith_arch::layout::HYPERVISOR_VIRT_START.to_le_bytes(),
        )
        .map(|_| 0),
        XENVER_get_features => {
            let mut fi = [0u8; 8];
            crate::guest_mem::copy_from_guest(&mut fi, arg)?;
            let idx = u32::from_le_bytes(fi[..4].try_into().unwrap_or([0; 4]));
            let submap = match idx {
                0 if ctx.vcpu.domain().is_hvm() => {
                    hvm_features_submap0(ctx.vcpu.domain().privileged)
                }
                0 => {
                    let d = ctx.vcpu.domain();
                    let extcr3 = d.inner.lock().vm_assist
                        & (1 << xen_abi::xen::VMASST_TYPE_pae_extended_cr3)
                        != 0;
                    pv_features_submap0(d.privileged, extcr3)
                }
                _ => return Err(Errno::EINVAL),
            };
            copy_to_guest(arg + 4, &submap.to_le_bytes()).map(|_| 0)
        }
        XENVER_pagesize => Ok(4096),
        XENVER_guest_handle => copy_to_guest(arg, &[0u8; 16]).map(|_| 0),
        XENVER_commandline => {
            if !ctx.vcpu.domain().privileged {
                return Err(Errno::EPERM);
            }
            copy_to_guest(arg, &[0u8; 1024]).map(|_| 0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
