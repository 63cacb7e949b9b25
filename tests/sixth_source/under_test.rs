//! What the conformance suite needs to drive Pollster: its emulator with the generic faults,
//! and each day's rows from the generator's own values (never from the decoder under test).

use chrono::NaiveDate;
use cxlake::schema::DatasetSchema;

use crate::common::Cell;
use crate::pollster::emulator::{Fault, PollsterEmulator};
use crate::pollster::synth;
use crate::properties::SourceUnderTest;

pub struct PollsterUnderTest;

fn text(value: &str) -> Cell {
    Cell::Text(value.to_string())
}

impl SourceUnderTest for PollsterUnderTest {
    const NAME: &'static str = crate::pollster::NAME;
    type Emulator = PollsterEmulator;

    async fn start(faults: bool, secret: &str) -> PollsterEmulator {
        let faults = if faults {
            vec![
                ("respondent".to_string(), Fault::RateLimit { seconds: 1 }),
                ("respondent".to_string(), Fault::Status(503)),
                ("respondent".to_string(), Fault::Reset(200)),
                // Only the JSON array says it is whole (a CSV cut at a line break looks complete).
                ("response".to_string(), Fault::Truncate(700)),
            ]
        } else {
            Vec::new()
        };
        PollsterEmulator::start(secret, faults, 0).await.expect("the emulator starts")
    }

    fn env(emulator: &PollsterEmulator, secret: &str) -> Vec<(String, String)> {
        vec![
            ("POLLSTER_API_URL".into(), emulator.base_url().to_string()),
            ("POLLSTER_API_TOKEN".into(), secret.to_string()),
        ]
    }

    fn fast_args() -> Vec<&'static str> {
        Vec::new()
    }

    fn expected(_emulator: &PollsterEmulator, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        let rows: Vec<Vec<Cell>> = match schema.dataset.as_str() {
            "respondent" => synth::respondents(day)
                .into_iter()
                .map(|r| {
                    vec![
                        text(&r.id),
                        text(&r.email),
                        text(&r.name),
                        text(r.segment),
                        Cell::Int(r.updated_at * 1000),
                    ]
                })
                .collect(),
            "response" => synth::responses(day)
                .into_iter()
                .map(|r| {
                    vec![
                        Cell::Int(r.id),
                        text(&r.respondent_id),
                        Cell::Int(r.submitted_at * 1000),
                        Cell::Int(r.score),
                        r.comment.as_deref().map_or(Cell::Null, text),
                        text(r.channel),
                        // `_extra`: the generator sends no field the schema does not declare.
                        Cell::Null,
                    ]
                })
                .collect(),
            other => panic!("Pollster has no dataset {other}"),
        };
        assert!(rows.iter().all(|row| row.len() == schema.columns.len()), "{}", schema.dataset);
        rows
    }

    fn faults_injected(emulator: &PollsterEmulator) -> u64 {
        emulator.faults_injected()
    }
}
