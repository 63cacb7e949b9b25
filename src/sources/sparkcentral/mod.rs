//! Sparkcentral: scheduled CSV exports dropped on SFTP, every time local to the export's zone.
//!
//! The pieces: export file names ([`files`]: organisation, type, local from/to or snapshot
//! stamp, uuid), the drop tree on the SFTP server ([`sftp`]) or a local mirror ([`drop`]),
//! the source that makes a local day's files a window ([`source`]), its command line
//! ([`platform`]) and the emulator's drop tree ([`synth`]). Local times are the schema layer's
//! ([`crate::schema::local_time`]), since decoding turns them into UTC.

pub mod drop;
pub mod files;
pub mod platform;
pub mod sftp;
pub mod source;
pub mod synth;

pub use source::Sparkcentral;
