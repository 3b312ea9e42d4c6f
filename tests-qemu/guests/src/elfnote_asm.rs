//! The assembler for one Xen ELF note, shared by `pvtest` and `pvhtest` (each `notes` module
//! includes this file with `#[path]`): namesz, descsz, type, the name "Xen\0", the descriptor,
//! each 4-aligned, as Xen's `elfnote.h` says.

/// One note whose type is the `global_asm!` operand named `$ty` and whose descriptor is given
/// as assembler directives (AT&T syntax).
macro_rules! xen_note {
    ($ty:literal, $desc:literal) => {
        concat!(
            ".balign 4\n",
            ".long 4\n",
            ".long 3f - 2f\n",
            ".long {",
            $ty,
            "}\n",
            ".asciz \"Xen\"\n",
            ".balign 4\n",
            "2: ",
            $desc,
            "\n",
            "3: .balign 4\n",
        )
    };
}
pub(crate) use xen_note;
