//! The export lifecycle across failures and crashes: FAILED exports are replaced (bounded, after
//! a cool-down); an export created by an interrupted run is adopted instead of duplicated.

use chrono::Utc;
use cxlake::pipeline::run_sync;
use cxlake::report::WindowOutcome;
use cxlake::sink::Destination;
use cxlake::sources::saltedcx::emulator::EmulatorConfig;
use cxlake::state::{ExportIntent, StateStore};

use crate::common::*;

fn state(lake: &std::path::Path) -> StateStore {
    StateStore::new(Destination::parse(lake.to_str().unwrap()).unwrap())
}

fn intent(export_id: &str, age: chrono::Duration, datasets: &[&str]) -> ExportIntent {
    ExportIntent {
        source: "saltedcx".into(),
        date: date("2024-03-01"),
        export_id: export_id.into(),
        created_at: Utc::now() - age,
        run_id: "20240301T000000Z-crashed0".into(),
        datasets: datasets.iter().map(|d| d.to_string()).collect(),
        filter: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_export_is_replaced_by_a_new_one_after_a_cool_down() {
    let emulator = emulator(EmulatorConfig { fail_first: 1, ..emulator_config() }).await;
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&plan(&emulator, lake.path(), days("2024-03-01", 1))).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(emulator.stats().exports_created, 2);
    let history = client(&emulator).history().await.unwrap();
    assert_eq!(
        report.windows[0].export_id.as_deref(),
        Some(history[0].export_id.as_str()),
        "the new export's data landed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_keeps_failing_fails_its_window_after_bounded_retries() {
    let emulator = emulator(EmulatorConfig { fail_first: 100, ..emulator_config() }).await;
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&plan(&emulator, lake.path(), days("2024-03-01", 2))).await.unwrap();
    assert_eq!(report.windows.iter().map(|w| w.outcome).collect::<Vec<_>>(), [WindowOutcome::Failed; 2]);
    assert!(report.windows[0].error.as_deref().unwrap().contains("FAILED"));
    assert_eq!(
        emulator.stats().exports_created,
        6,
        "1 + 2 retries per window, and the second window was still tried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_created_by_an_interrupted_run_is_adopted_not_duplicated() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let day = days("2024-03-01", 1)[0];
    // The interrupted run got as far as creating the export and writing it down.
    let created = client(&emulator)
        .create_export(day.start(), day.end(), &DATASETS.map(String::from), None)
        .await
        .unwrap();
    state(lake.path())
        .save_export_intent(&intent(&created.export_id, chrono::Duration::minutes(5), &DATASETS))
        .await
        .unwrap();

    let report = run_sync(&plan(&emulator, lake.path(), vec![day])).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(emulator.stats().exports_created, 1, "no second export");
    assert_eq!(report.windows[0].export_id.as_deref(), Some(created.export_id.as_str()));
    assert!(
        state(lake.path()).load_export_intent("saltedcx", day.date).await.unwrap().is_none(),
        "journal entry cleared"
    );
    let landed = batch_rows(&read_partition(lake.path(), "turn", day.date));
    let schema = all_schemas().into_iter().find(|s| s.dataset == "turn").unwrap();
    assert_eq!(landed, expected_rows(&emulator.config().synth, &schema, day.date));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_export_that_is_gone_old_or_different_is_not_adopted() {
    let emulator = emulator(emulator_config()).await;
    let day = days("2024-03-01", 1)[0];
    let cases = [
        ("gone", intent("no-such-export", chrono::Duration::minutes(5), &DATASETS)),
        ("old", intent("placeholder", chrono::Duration::hours(2), &DATASETS)),
        ("other datasets", intent("placeholder", chrono::Duration::minutes(5), &["turn"])),
    ];
    for (what, mut recorded) in cases {
        let lake = tempfile::tempdir().unwrap();
        if recorded.export_id == "placeholder" {
            let other = client(&emulator)
                .create_export(day.start(), day.end(), &DATASETS.map(String::from), None)
                .await
                .unwrap();
            recorded.export_id = other.export_id;
        }
        state(lake.path()).save_export_intent(&recorded).await.unwrap();
        let before = emulator.stats().exports_created;
        let report = run_sync(&plan(&emulator, lake.path(), vec![day])).await.unwrap();
        assert_eq!(report.exit_code(), 0, "{what}: {}", report.render());
        assert_eq!(emulator.stats().exports_created, before + 1, "{what}: a new export");
        assert_ne!(report.windows[0].export_id.as_deref(), Some(recorded.export_id.as_str()), "{what}");
    }
}
