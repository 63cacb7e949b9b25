//! cxlake: lands contact-center exports as typed, Hive-partitioned Parquet.
//!
//! Layers depend only downward: `cli` (with `config`, `logging`, `doctor`, `metrics`) →
//! `pipeline` (with `declaration`: which declarations a lake's windows were written with) →
//! (`sources`, `decode`, `sink`, `state`) → `schema`; `status`, `calendar` and `drift` read the lake's
//! records for the commands; `progress` and `secrets` are leaves any layer may call. Each layer has its own
//! error type; `anyhow` is used only at the top.

pub mod budget;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod cores;
pub mod creations;
pub mod current;
pub mod dbt;
pub mod declaration;
pub mod decode;
pub mod doctor;
pub mod drift;
pub mod erase;
pub mod heap;
pub mod interrupt;
pub mod lineage;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod replay;
pub mod report;
pub mod schema;
pub mod secrets;
pub mod sink;
pub mod sources;
pub mod state;
pub mod status;
#[cfg(test)]
mod test_rng;
pub mod units;
pub mod window;
