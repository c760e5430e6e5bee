//! The stdout output: one JSON line per record, flushed whenever the queue is momentarily empty
//! so that a reader sees each line promptly without a syscall per line under load. On Fargate
//! the container's log driver (`awslogs`) ships these lines.

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::engine::Record;

/// Writes every record's line to stdout until the queue closes.
pub(crate) async fn stdout_sink(mut records: mpsc::Receiver<Record>) -> std::io::Result<()> {
    let mut stdout = tokio::io::BufWriter::with_capacity(64 * 1024, tokio::io::stdout());
    while let Some(record) = records.recv().await {
        stdout.write_all(record.line.as_bytes()).await?;
        stdout.write_all(b"\n").await?;
        while let Ok(record) = records.try_recv() {
            stdout.write_all(record.line.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
        }
        stdout.flush().await?;
    }
    stdout.flush().await
}
