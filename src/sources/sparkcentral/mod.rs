//! Sparkcentral: scheduled CSV exports dropped on SFTP, every time local to the export's zone.
//!
//! What is here so far are the two pieces the source stands on, complete and tested on their own:
//! reading export file names ([`files`]: organisation, type, local from/to or snapshot stamp,
//! uuid) and turning local times into UTC across DST changes ([`local_time`]). The source itself
//! (SFTP listing and download, files as windows, the ten schemas) is not registered yet.

pub mod files;
pub mod local_time;
