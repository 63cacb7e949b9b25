//! Reading a sample for `schema draft` and `drift --redraw`: a CSV file's header and records, a
//! JSON array's objects one at a time ([`json_array::Elements`], never the whole array), a
//! workbook through its JSON; each observed by [`Sample`], which proposes the declaration.

use std::path::Path;

use crate::schema::draft::Sample;
use crate::schema::FileFormat;

use super::json_array;

/// Observes a CSV file's header and up to `limit` of its records.
pub fn sample_csv(input: impl std::io::Read, limit: u64, sample: &mut Sample) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the header: {e}"))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    sample.header(&header);
    for record in reader.records().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let record = record.map_err(|e| format!("cannot read a record: {e}"))?;
        sample.text_record(header.iter().map(String::as_str).zip(record.iter()));
    }
    Ok(())
}

/// Observes up to `limit` objects of a JSON array, one in memory at a time; the rest of the
/// file is not read.
pub fn sample_json_array(input: impl std::io::Read, limit: u64, sample: &mut Sample) -> Result<(), String> {
    for (index, element) in json_array::Elements::new(std::io::BufReader::new(input)).enumerate() {
        if index as u64 >= limit {
            break;
        }
        let element = element.map_err(|e| format!("not a JSON array of objects: {e}"))?;
        let record: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&element)
            .map_err(|e| format!("element {} is not a JSON object: {e}", index + 1))?;
        sample.record(&record);
    }
    Ok(())
}

/// Observes up to `limit` records of the file at `path`, read as its name's format says.
pub fn sample_file(sample: &mut Sample, path: &Path, file_name: &str, limit: u64) -> Result<(), String> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    match FileFormat::from_file_name(file_name) {
        Some(FileFormat::Csv) => sample_csv(open(path)?, limit, sample),
        Some(FileFormat::Json) => sample_json_array(open(path)?, limit, sample),
        Some(FileFormat::Xlsx) => {
            let scratch = tempfile::tempdir().map_err(|e| format!("creating a scratch directory: {e}"))?;
            let json = scratch.path().join("sheet.json");
            super::xlsx::to_json_array(path, &json, file_name, None).map_err(|e| e.to_string())?;
            sample_json_array(open(&json)?, limit, sample)
        }
        None => Err(format!("{file_name}: name the sample .csv, .json or .xlsx")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(read: impl FnOnce(&mut Sample) -> Result<(), String>) -> Sample {
        let mut sample = Sample::default();
        read(&mut sample).unwrap();
        sample
    }

    #[test]
    fn a_csv_draft_proposes_the_narrowest_types_and_loads() {
        let csv = "AGENT_ID,Agent Name,Avg. Handle Time (s),Handle,Day,Seen At,Active,Score,agent_name\n\
                   1,Ann,12,00:01:02,2024-03-01,2024-03-01T10:00:00Z,true,1.5,x\n\
                   2,\"Bo, B\",,01:00:00,2024-03-02,2024-03-01 11:00:00,no,2,y\n";
        let sample = sampled(|s| sample_csv(csv.as_bytes(), 100, s));
        let text = sample.draft("acme", "agent", "agents.csv", "agents.csv");
        let schema = crate::schema::parse_schema("draft", &text).unwrap();
        let types: Vec<(String, String)> =
            schema.columns.iter().map(|c| (c.name.clone(), c.column_type.to_string())).collect();
        let expect =
            |name: &str, t: &str| assert!(types.contains(&(name.into(), t.into())), "{name} {t}: {types:?}");
        expect("agent_id", "Int64");
        expect("agent_name", "Utf8");
        expect("avg_handle_time_s", "Int64");
        expect("handle", "Int64");
        expect("day", "Date32");
        expect("seen_at", "Timestamp(Microsecond, \"UTC\")");
        expect("active", "Boolean");
        expect("score", "Float64");
        expect("agent_name_2", "Utf8");
        assert!(text.contains("source_name = \"agent_name\""), "the collision keeps its file name:\n{text}");
        assert!(text.contains("encoding = \"duration_hms\""));
        assert_eq!(schema.key, ["agent_id"]);
    }

    #[test]
    fn a_json_draft_knows_lists_objects_and_epoch_milliseconds() {
        let json = r#"[{"id": 1, "createdAt": 1709287200000, "tags": ["a"], "form": {"x": 1}, "n": "7"},
                       {"id": 2, "createdAt": 1709287300000, "tags": [], "form": null, "n": "8"}]"#;
        let sample = sampled(|s| sample_json_array(json.as_bytes(), 100, s));
        let text = sample.draft("acme", "thing", "things.json", "things.json");
        let schema = crate::schema::parse_schema("draft", &text).unwrap();
        let by_name = |n: &str| schema.columns.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by_name("created_at").column_type.to_string(), "Timestamp(Microsecond, \"UTC\")");
        assert_eq!(by_name("tags").column_type.to_string(), "List(Utf8)");
        assert_eq!(by_name("form").encoding, crate::schema::Encoding::JsonText);
        assert_eq!(by_name("n").column_type.to_string(), "Int64", "numbers sent as text");
    }
}
