//! The `cxlake` binary: the command line with the built-in platforms; its exit code says what
//! happened.

#[global_allocator]
static HEAP: cxlake::heap::CountingAllocator = cxlake::heap::CountingAllocator;

fn main() {
    std::process::exit(cxlake::cli::main(cxlake::cli::Registry::builtin()));
}
