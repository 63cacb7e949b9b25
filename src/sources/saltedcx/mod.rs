//! Salted CX: the export API client, its emulator, and the synthetic tenant behind the emulator.

pub mod api;
pub mod client;
pub mod synth;
