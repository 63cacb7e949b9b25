//! The raw archive (bronze): every file a source fetched, zstd-compressed, under
//! `_cxlake/raw/<source>/<dataset>/date=D/<name>.zst`. A window's raw files are staged with its
//! data and published with it (a window is `done` only with its raw files in place), and its
//! record lists them with their size and SHA-256 as downloaded, so a replay can rebuild the
//! window from them with no API call, and check that it reads exactly what was fetched.

use std::io::{Read, Write};
use std::path::Path as LocalPath;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::buffered::BufWriter;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{commit, layout, Destination, SinkError};
use crate::schema::local_time::Fold;

/// zstd level 1: on 150 MB of chat turns it took 38 % less CPU than the default level 3 for an
/// archive 8 % larger (42.6 MB against 39.5 MB); the archive shares the cores with the
/// conversion, so CPU is what the default path pays for it (negative levels were another 45 %
/// faster but 37–70 % larger).
const LEVEL: i32 = 1;

/// A zstd raw block's largest size (and so the window a stored frame declares).
const RAW_BLOCK: usize = 128 << 10;

/// One archived file, as its window record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawFile {
    /// The compressed file, relative to the lake root.
    pub path: String,
    /// The platform's name for the file (`turns.csv`), as decoding and rejects name it.
    pub file_name: String,
    /// Size and SHA-256 of the file as fetched (before compression).
    pub bytes: u64,
    pub sha256: String,
    /// Size in the archive.
    pub stored_bytes: u64,
    pub fetched_at: DateTime<Utc>,
    /// The occurrence of a repeated DST hour the file holds, when its source said.
    #[serde(default, skip_serializing_if = "is_unknown")]
    pub fold: Fold,
    /// The export and period the file covers, when its source said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<crate::schema::FileFacts>,
}

fn is_unknown(fold: &Fold) -> bool {
    *fold == Fold::Unknown
}

/// Whether fetched files are archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawPolicy {
    /// Keep every fetched file (zstd) next to the data, for replay.
    #[default]
    Keep,
    /// Keep nothing but the data.
    Off,
}

/// The archive's directory for one dataset and window.
pub fn raw_dir(source: &str, dataset: &str, date: NaiveDate) -> String {
    format!("_cxlake/raw/{source}/{dataset}/date={date}")
}

/// Where a run stages a window's raw files of one dataset.
pub fn staging_raw_dir(run_id: &str, source: &str, dataset: &str, date: NaiveDate) -> String {
    format!("{}/{run_id}/raw/{source}/{dataset}/date={date}", layout::staging_root())
}

/// `turns.csv` → `turns.csv.zst`; a path or odd characters are reduced to a safe base name, and
/// `taken` names already used in the window get a numbered one.
pub fn archive_name(file_name: &str, taken: &[String]) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let safe: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    let safe = if safe.trim_matches('.').is_empty() { "file".to_string() } else { safe };
    let mut name = format!("{safe}.zst");
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{safe}.{n}.zst");
        n += 1;
    }
    name
}

/// Compresses `local` (a fetched file) into the run's staging area as `name`; returns its
/// record (with the staged path, which [`publish`] replaces by the final one). The compressed
/// bytes go straight to the store as they are produced: no local copy is written and read back.
pub async fn stage(
    dest: &Destination,
    staging_dir: &str,
    name: &str,
    file_name: &str,
    local: &LocalPath,
    fold: Fold,
    facts: Option<crate::schema::FileFacts>,
) -> Result<RawFile, SinkError> {
    let relative = format!("{staging_dir}/{name}");
    let path = dest.path(&relative);
    let local_error = local_error(local);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let input = local.to_path_buf();
    // The sender is dropped when compression ends (not kept in the task's result): that closed
    // channel is what ends the upload loop below.
    let compressing = tokio::task::spawn_blocking(move || {
        compress(&input, ChunkSender::new(tx)).map(|(bytes, sha256, _sender)| (bytes, sha256))
    });
    let mut writer = BufWriter::with_capacity(dest.store.clone(), path.clone(), UPLOAD_CHUNK);
    let mut stored_bytes = 0u64;
    let mut put_error = None;
    while let Some(chunk) = rx.recv().await {
        stored_bytes += chunk.len() as u64;
        if let Err(e) = writer.put(chunk).await {
            put_error = Some(SinkError::store(&path, e));
            break;
        }
    }
    // The compressor sees a closed channel and stops if the store failed.
    drop(rx);
    let compressed = compressing.await.map_err(|e| local_error(std::io::Error::other(e)))?;
    let (bytes, sha256) = match (put_error, compressed) {
        (None, Ok(done)) => done,
        (Some(error), _) => {
            let _ = writer.abort().await;
            return Err(error);
        }
        (None, Err(e)) => {
            let _ = writer.abort().await;
            return Err(local_error(e));
        }
    };
    writer
        .shutdown()
        .await
        .map_err(|e| SinkError::Local { path: path.to_string(), message: e.to_string() })?;
    Ok(RawFile {
        path: relative,
        file_name: file_name.to_string(),
        bytes,
        sha256,
        stored_bytes,
        fetched_at: Utc::now(),
        fold,
        facts,
    })
}

/// The size of the pieces compressed bytes are handed to the store in, and of its upload parts.
const UPLOAD_CHUNK: usize = 8 << 20;

/// A `Write` that hands what it is given to an async task in [`UPLOAD_CHUNK`]s (the compressor
/// runs on a blocking thread, the store is async).
struct ChunkSender {
    chunk: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl ChunkSender {
    fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> ChunkSender {
        ChunkSender { chunk: Vec::new(), tx }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.chunk.capacity() == 0 {
            self.chunk.reserve_exact(UPLOAD_CHUNK);
        }
        let n = buf.len().min(UPLOAD_CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == UPLOAD_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Sends what is buffered (the compressor flushes once, when it finishes).
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Where a local file's compressed form waits (next to it, in the run's spool).
fn compressed_beside(local: &LocalPath) -> std::path::PathBuf {
    let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    local.with_file_name(format!("{name}.cxlake-raw.zst"))
}

/// An I/O error on a local file, named.
fn local_error(local: &LocalPath) -> impl Fn(std::io::Error) -> SinkError + '_ {
    move |e| SinkError::Local { path: local.display().to_string(), message: e.to_string() }
}

/// zstd-compresses `input` into `output`; returns the input's size and SHA-256, and the output,
/// flushed. A file that is already compressed (a workbook is a zip; gzip; zstd) is stored as
/// received, in a zstd frame of raw blocks: every zstd reader restores it, and no CPU is spent
/// compressing it again.
fn compress<W: Write>(input: &LocalPath, output: W) -> std::io::Result<(u64, String, W)> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(input)?);
    // The first read is looked at, not consumed: its magic bytes choose the archive's form.
    let stored = is_compressed(std::io::BufRead::fill_buf(&mut reader)?);
    let mut out = if stored {
        Archive::Stored(StoredFrame::new(output))
    } else {
        Archive::Zstd(zstd::stream::write::Encoder::new(output, LEVEL)?)
    };
    let sink: &mut dyn Write = match &mut out {
        Archive::Zstd(encoder) => encoder,
        Archive::Stored(frame) => frame,
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        sink.write_all(&buffer[..n])?;
        bytes += n as u64;
    }
    let mut output = match out {
        Archive::Zstd(encoder) => encoder.finish()?,
        Archive::Stored(frame) => frame.finish()?,
    };
    output.flush()?;
    Ok((bytes, hex::encode(hasher.finalize()), output))
}

/// The archive being written: compressed, or stored as received.
enum Archive<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Stored(StoredFrame<W>),
}

/// A zip (XLSX), gzip or zstd file, by its magic bytes.
fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
        || head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Writes one zstd frame of raw (stored) blocks (RFC 8878: no content size, no checksum, a
/// 128 KiB window); [`StoredFrame::finish`] writes the last block.
struct StoredFrame<W: Write> {
    out: W,
    block: Vec<u8>,
    started: bool,
}

impl<W: Write> StoredFrame<W> {
    fn new(out: W) -> StoredFrame<W> {
        StoredFrame { out, block: Vec::with_capacity(RAW_BLOCK), started: false }
    }

    /// Ends the frame with its last block (possibly empty); returns the writer, flushed.
    fn finish(mut self) -> std::io::Result<W> {
        self.write_block(true)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn start(&mut self) -> std::io::Result<()> {
        if !self.started {
            self.started = true;
            // Magic, frame header descriptor (nothing optional), window descriptor 2^(10+7).
            self.out.write_all(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3])?;
        }
        Ok(())
    }

    fn write_block(&mut self, last: bool) -> std::io::Result<()> {
        self.start()?;
        let header = u32::from(last) | ((self.block.len() as u32) << 3);
        self.out.write_all(&header.to_le_bytes()[..3])?;
        self.out.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }
}

impl<W: Write> Write for StoredFrame<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.block.len() == RAW_BLOCK {
            self.write_block(false)?;
        }
        let n = buf.len().min(RAW_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Makes `staged` (and `kept`, files already in the archive that a replay read) the only raw
/// files of the window's dataset; returns the records at their final paths, in order.
pub async fn publish(
    dest: &Destination,
    source: &str,
    dataset: &str,
    date: NaiveDate,
    files: &[RawFile],
) -> Result<Vec<RawFile>, SinkError> {
    let final_dir = raw_dir(source, dataset, date);
    let mut published = Vec::with_capacity(files.len());
    for file in files {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        let to_relative = format!("{final_dir}/{name}");
        if file.path != to_relative {
            let (from, to) = (dest.path(&file.path), dest.path(&to_relative));
            dest.store.rename(&from, &to).await.map_err(|e| SinkError::store(&from, e))?;
        }
        published.push(RawFile { path: to_relative, ..file.clone() });
    }
    let keep = published.iter().map(|f| f.path.clone()).collect();
    commit::delete_except(dest, &final_dir, &keep).await?;
    Ok(published)
}

/// Decompresses an archived file into `local`, checking its size and SHA-256 against the record.
pub async fn restore(dest: &Destination, file: &RawFile, local: &LocalPath) -> Result<(), SinkError> {
    let path = dest.path(&file.path);
    let compressed = compressed_beside(local);
    let local_error = local_error(local);
    {
        let got = dest.store.get(&path).await.map_err(|e| SinkError::store(&path, e))?;
        let mut stream = got.into_stream();
        let mut out = tokio::fs::File::create(&compressed).await.map_err(&local_error)?;
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SinkError::store(&path, e))?;
            out.write_all(&chunk).await.map_err(&local_error)?;
        }
        out.flush().await.map_err(&local_error)?;
    }
    let (input, output) = (compressed.clone(), local.to_path_buf());
    let restored = tokio::task::spawn_blocking(move || decompress(&input, &output))
        .await
        .map_err(|e| local_error(std::io::Error::other(e)))?
        .map_err(&local_error);
    let _ = std::fs::remove_file(&compressed);
    let (bytes, sha256) = restored?;
    if bytes != file.bytes || sha256 != file.sha256 {
        return Err(SinkError::Local {
            path: file.path.clone(),
            message: format!(
                "the archived file does not match its record ({bytes} bytes, SHA-256 {sha256}; recorded {} bytes, {}): it was changed or damaged",
                file.bytes, file.sha256
            ),
        });
    }
    Ok(())
}

/// The SHA-256 of a local file, as the archive records it for the file it keeps (lowercase hex).
pub fn file_sha256(path: &LocalPath) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn decompress(input: &LocalPath, output: &LocalPath) -> std::io::Result<(u64, String)> {
    let mut decoder = zstd::stream::read::Decoder::new(std::fs::File::open(input)?)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(output)?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = decoder.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
        bytes += n as u64;
    }
    out.flush()?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_compressed_download_is_stored_as_received_and_any_zstd_reader_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 7u64;
        for len in [0usize, 1, 4, super::RAW_BLOCK - 1, super::RAW_BLOCK, 3 * super::RAW_BLOCK + 5, 2_500_000]
        {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            if len >= 4 {
                bytes[..4].copy_from_slice(b"PK\x03\x04");
            }
            let input = dir.path().join("report.xlsx");
            std::fs::write(&input, &bytes).unwrap();
            let (size, _, stored) = super::compress(&input, Vec::new()).unwrap();
            assert_eq!(size, len as u64);
            if len >= 4 {
                // Stored: the frame is the input plus 6 bytes of header and 3 per block.
                assert_eq!(stored.len(), len + 6 + 3 * len.div_ceil(super::RAW_BLOCK).max(1), "{len}");
                assert_eq!(zstd::zstd_safe::find_frame_compressed_size(&stored), Ok(stored.len()), "{len}");
            }
            assert_eq!(zstd::stream::decode_all(stored.as_slice()).unwrap(), bytes, "{len} bytes");
        }
    }

    /// One zstd frame, whatever the size: Python's `zstandard` (`stream_reader`,
    /// `decompressobj`) stops at the first frame's end unless told `read_across_frames`, so an
    /// archive of many frames would read short there, silently.
    #[test]
    fn a_compressed_archive_is_one_frame_and_restores_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let line = b"2024-03-01T10:00:00Z,\"Hello, \"\"order\"\" 4711\",agent-7\r\n";
        for len in [0usize, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 9_000_003] {
            let bytes: Vec<u8> = line.iter().copied().cycle().take(len).collect();
            let input = dir.path().join("turns.csv");
            std::fs::write(&input, &bytes).unwrap();
            let (size, sha256, stored) = super::compress(&input, Vec::new()).unwrap();
            assert_eq!((size, sha256.as_str()), (len as u64, super::file_sha256(&input).unwrap().as_str()));
            assert_eq!(zstd::zstd_safe::find_frame_compressed_size(&stored), Ok(stored.len()), "{len} bytes");
            assert!(len < 1000 || stored.len() < len / 10, "{len} bytes compressed to {}", stored.len());
            let archived = dir.path().join("turns.csv.zst");
            std::fs::write(&archived, &stored).unwrap();
            let restored = dir.path().join("restored.csv");
            assert_eq!(super::decompress(&archived, &restored).unwrap(), (len as u64, sha256));
            assert_eq!(std::fs::read(&restored).unwrap(), bytes, "{len} bytes");
        }
    }

    use super::*;

    #[test]
    fn archive_names_are_safe_and_unique() {
        assert_eq!(archive_name("turns.csv", &[]), "turns.csv.zst");
        assert_eq!(archive_name("/home/me/exports/Turns (1).csv", &[]), "Turns__1_.csv.zst");
        assert_eq!(archive_name("..", &[]), "file.zst");
        let taken = vec!["a.csv.zst".to_string(), "a.csv.2.zst".to_string()];
        assert_eq!(archive_name("x/a.csv", &taken), "a.csv.3.zst");
    }

    #[tokio::test]
    async fn a_file_survives_the_round_trip_and_damage_is_caught() {
        let lake = tempfile::tempdir().unwrap();
        let spool = tempfile::tempdir().unwrap();
        let dest = Destination::parse(lake.path().to_str().unwrap()).unwrap();
        let original = spool.path().join("turns.csv");
        let content: Vec<u8> =
            (0..200_000u32).flat_map(|i| format!("{i},text {i}\r\n").into_bytes()).collect();
        std::fs::write(&original, &content).unwrap();
        let staged = stage(
            &dest,
            "_cxlake/staging/r1/raw/s/d/date=2024-03-01",
            "turns.csv.zst",
            "turns.csv",
            &original,
            Fold::Later,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (staged.bytes, staged.sha256.clone()),
            (content.len() as u64, hex::encode(Sha256::digest(&content)))
        );
        assert!(staged.stored_bytes < staged.bytes / 3, "{} of {}", staged.stored_bytes, staged.bytes);
        let date = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let published = publish(&dest, "s", "d", date, &[staged]).await.unwrap();
        assert_eq!(published[0].path, "_cxlake/raw/s/d/date=2024-03-01/turns.csv.zst");
        let back = spool.path().join("back.csv");
        restore(&dest, &published[0], &back).await.unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), content);
        let wrong = RawFile { sha256: "0".repeat(64), ..published[0].clone() };
        let err = restore(&dest, &wrong, &back).await.unwrap_err();
        assert!(err.to_string().contains("does not match its record"), "{err}");
    }
}
