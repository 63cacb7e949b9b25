//! Sparkcentral: scheduled CSV exports dropped on SFTP, every time local to the export's zone.
//!
//! What is here so far are the two pieces the source stands on, complete and tested on their own:
//! reading export file names ([`files`]: organisation, type, local from/to or snapshot stamp,
//! uuid); local times are the schema layer's ([`crate::schema::local_time`]), since decoding
//! turns them into UTC. The source itself (SFTP listing and download, files as windows) is not
//! registered yet.

pub mod drop;
pub mod files;
pub mod platform;
pub mod source;
pub mod synth;

pub use source::Sparkcentral;
