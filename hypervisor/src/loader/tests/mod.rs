//! Loader tests on synthetic kernels (ELF builder, bzImage wrapping, every compressor), a
//! mutation fuzz test, and an opt-in check of real distribution kernels.

mod builder;
mod elf;
mod fuzz;
mod images;
mod notes;
mod real;
