//! Decoding the plain `mov` forms a guest uses on memory that has nothing behind it, so the
//! access can be completed the way Xen completes it without a device model: reads give all
//! ones, writes are dropped, and the guest goes on after the instruction.
//!
//! Covered: `mov r, r/m` (8a, 8b), `mov r/m, r` (88, 89), `mov r/m, imm` (c6 /0, c7 /0),
//! `movzx r, r/m8/16` (0f b6, 0f b7), with 0x66/segment/REX prefixes and any ModRM/SIB/
//! displacement form (64-bit or 32-bit code, 32/64-bit addressing).

/// What the instruction does with memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Loads `size` bytes into register `reg` (0 rax .. 15 r15; with `high_byte` the legacy
    /// ah/ch/dh/bh of register `reg`), zero-extending to `dest_size` bytes.
    Load {
        /// Destination register number.
        reg: u8,
        /// Bytes read from memory.
        size: u8,
        /// Bytes written to the register (4 zero-extends to 64 bits, as the CPU does).
        dest_size: u8,
        /// The destination is ah/ch/dh/bh (no REX, 8-bit, reg 4..7 means reg-4's bits 8-15).
        high_byte: bool,
    },
    /// Stores `size` bytes (a register or an immediate: the value does not matter here).
    Store {
        /// Bytes written.
        size: u8,
    },
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInsn {
    /// Its length in bytes.
    pub len: u8,
    /// Its memory access.
    pub access: Access,
}

/// Decodes the instruction in `bytes`; `long` for 64-bit code, `db` for a 32-bit default
/// operand size outside it. `None` for anything not covered.
pub fn decode(bytes: &[u8], long: bool, db: bool) -> Option<MmioInsn> {
    let mut i = 0;
    let mut opsize16 = false;
    let mut addr_override = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            0x66 => opsize16 = true,
            0x67 => addr_override = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            _ => break,
        }
        i += 1;
        if i >= 14 {
            return None;
        }
    }
    let mut rex = 0u8;
    if long && let Some(&b @ 0x40..=0x4f) = bytes.get(i) {
        rex = b;
        i += 1;
    }
    let rex_w = rex & 8 != 0;
    let op_size: u8 = if rex_w {
        8
    } else if opsize16 != (!long && !db) {
        // 0x66 flips between 16 and 32 bits (the default is 16 only in 16-bit code).
        2
    } else {
        4
    };
    let op = *bytes.get(i)?;
    i += 1;
    let access_of: fn(u8, u8, bool) -> Access = match op {
        0x8a => |reg, _, hb| load(reg, 1, 1, hb),
        0x8b => |reg, s, _| load(reg, s, s, false),
        0x88 | 0xc6 => |_, _, _| Access::Store { size: 1 },
        0x89 | 0xc7 => |_, s, _| Access::Store { size: s },
        0x0f => {
            let op2 = *bytes.get(i)?;
            i += 1;
            match op2 {
                0xb6 => |reg, s, _| load(reg, 1, s, false),
                0xb7 => |reg, s, _| load(reg, 2, s, false),
                _ => return None,
            }
        }
        _ => return None,
    };
    let modrm = *bytes.get(i)?;
    i += 1;
    let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if md == 3 {
        return None; // register operand: no memory access
    }
    if matches!(op, 0xc6 | 0xc7) && reg != 0 {
        return None;
    }
    let addr32 = if long {
        addr_override
    } else {
        db != addr_override
    };
    if !long && !addr32 {
        return None; // 16-bit addressing
    }
    // SIB, then displacement.
    let mut disp = match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = *bytes.get(i)?;
        i += 1;
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        disp = 4; // rip-relative (64-bit) or absolute disp32
    }
    i += disp;
    let imm = match op {
        0xc6 => 1,
        0xc7 => op_size.min(4) as usize,
        _ => 0,
    };
    i += imm;
    if i > bytes.len() || i > 15 {
        return None;
    }
    let reg_full = reg | if rex & 4 != 0 { 8 } else { 0 };
    let high_byte = op == 0x8a && rex == 0 && (4..8).contains(&reg);
    let reg_num = if high_byte { reg - 4 } else { reg_full };
    Some(MmioInsn {
        len: i as u8,
        access: access_of(reg_num, op_size, high_byte),
    })
}

fn load(reg: u8, size: u8, dest_size: u8, high_byte: bool) -> Access {
    Access::Load {
        reg,
        size,
        dest_size,
        high_byte,
    }
}

/// The register value after an all-ones load of `access` into `old`.
pub fn all_ones_into(old: u64, reg_access: Access) -> u64 {
    match reg_access {
        Access::Load {
            high_byte: true, ..
        } => old | 0xff00,
        Access::Load {
            size, dest_size, ..
        } => {
            let loaded = if size >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * u32::from(size))) - 1
            };
            match dest_size {
                8 => loaded,
                4 => loaded & 0xffff_ffff,
                2 => (old & !0xffff) | (loaded & 0xffff),
                _ => (old & !0xff) | (loaded & 0xff),
            }
        }
        Access::Store { .. } => old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_stores_of_64_bit_code() {
        // mov rax, [rcx]
        let i = decode(&[0x48, 0x8b, 0x01], true, false).unwrap();
        assert_eq!(i.len, 3);
        assert_eq!(i.access, load(0, 8, 8, false));
        // mov [rdx], rsi
        let i = decode(&[0x48, 0x89, 0x32], true, false).unwrap();
        assert_eq!((i.len, i.access), (3, Access::Store { size: 8 }));
        // mov r9d, [rip + 0x1234]
        let i = decode(&[0x44, 0x8b, 0x0d, 0x34, 0x12, 0, 0], true, false).unwrap();
        assert_eq!((i.len, i.access), (7, load(9, 4, 4, false)));
        // mov dword [rsp + 8], 0x11223344
        let i = decode(
            &[0xc7, 0x44, 0x24, 0x08, 0x44, 0x33, 0x22, 0x11],
            true,
            false,
        )
        .unwrap();
        assert_eq!((i.len, i.access), (8, Access::Store { size: 4 }));
        // mov qword [rax], imm32 (sign-extended)
        let i = decode(&[0x48, 0xc7, 0x00, 1, 0, 0, 0], true, false).unwrap();
        assert_eq!((i.len, i.access), (7, Access::Store { size: 8 }));
        // mov ax, [rbx + rcx*4 + 0x10]
        let i = decode(&[0x66, 0x8b, 0x44, 0x8b, 0x10], true, false).unwrap();
        assert_eq!((i.len, i.access), (5, load(0, 2, 2, false)));
        // movzx eax, byte [rdi]
        let i = decode(&[0x0f, 0xb6, 0x07], true, false).unwrap();
        assert_eq!((i.len, i.access), (3, load(0, 1, 4, false)));
        // mov ah, [rsi]
        let i = decode(&[0x8a, 0x26], true, false).unwrap();
        assert_eq!(i.access, load(0, 1, 1, true));
    }

    #[test]
    fn thirty_two_bit_code_and_refusals() {
        // mov eax, [0x1000] in 32-bit code (disp32, no SIB)
        let i = decode(&[0x8b, 0x05, 0, 0x10, 0, 0], false, true).unwrap();
        assert_eq!((i.len, i.access), (6, load(0, 4, 4, false)));
        // 0x48 is `dec eax` outside 64-bit mode: not a REX prefix, so not covered.
        assert_eq!(decode(&[0x48, 0x8b, 0x01], false, true), None);
        // Register operands, other opcodes, truncated bytes.
        assert_eq!(decode(&[0x48, 0x8b, 0xc1], true, false), None);
        assert_eq!(decode(&[0x90], true, false), None);
        assert_eq!(decode(&[0x8b, 0x05, 0, 0], true, false), None);
        assert_eq!(decode(&[0xc7, 0x08, 0, 0, 0, 0], true, false), None); // /1 is not mov
    }

    #[test]
    fn all_ones_follow_the_destination_width() {
        let old = 0x1122_3344_5566_7788;
        assert_eq!(all_ones_into(old, load(0, 8, 8, false)), u64::MAX);
        assert_eq!(all_ones_into(old, load(0, 4, 4, false)), 0xffff_ffff);
        assert_eq!(
            all_ones_into(old, load(0, 2, 2, false)),
            0x1122_3344_5566_ffff
        );
        assert_eq!(
            all_ones_into(old, load(0, 1, 1, false)),
            0x1122_3344_5566_77ff
        );
        assert_eq!(
            all_ones_into(old, load(0, 1, 1, true)),
            0x1122_3344_5566_ff88
        );
        assert_eq!(all_ones_into(old, load(0, 1, 4, false)), 0xff);
        assert_eq!(all_ones_into(old, Access::Store { size: 8 }), old);
    }
}
