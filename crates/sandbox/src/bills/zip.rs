//! A small zip writer for the bill archives: deflated entries (flate2) whose names are raw
//! bytes. Alipay's zips name their entries in GBK without the UTF-8 flag (`bills.md` §2.2);
//! the `zip` crate writes only UTF-8 names (it sets the flag for any non-ASCII name), so the
//! container is written here: local headers, the central directory and its end record, no
//! zip64, no data descriptors. The tests read the archives back with the `zip` crate.

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

/// One entry: its name as stored (bytes) and its content.
pub(crate) struct ZipEntry {
    pub name: Vec<u8>,
    pub content: Vec<u8>,
}

/// Why an archive could not be written (only sizes beyond the plain zip format's 4 GiB).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZipError {
    #[error("an entry or the archive is too large for a zip without zip64")]
    TooLarge,
    #[error("compression failed: {0}")]
    Deflate(#[from] std::io::Error),
}

fn u16_of(n: usize) -> Result<u16, ZipError> {
    u16::try_from(n).map_err(|_| ZipError::TooLarge)
}

fn u32_of(n: usize) -> Result<u32, ZipError> {
    u32::try_from(n).map_err(|_| ZipError::TooLarge)
}

/// MS-DOS date and time fields (local time, here the bill's Beijing time).
pub(crate) fn dos_time(at: chrono::NaiveDateTime) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let year = u16::try_from(at.year().clamp(1980, 2107) - 1980).unwrap_or(0);
    let date = (year << 9)
        | (u16::try_from(at.month()).unwrap_or(1) << 5)
        | u16::try_from(at.day()).unwrap_or(1);
    let time = (u16::try_from(at.hour()).unwrap_or(0) << 11)
        | (u16::try_from(at.minute()).unwrap_or(0) << 5)
        | u16::try_from(at.second() / 2).unwrap_or(0);
    (time, date)
}

/// The archive holding `entries`, each deflated, stamped `modified` (MS-DOS local time).
pub(crate) fn write(entries: &[ZipEntry], modified: (u16, u16)) -> Result<Vec<u8>, ZipError> {
    let (time, date) = modified;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&entry.content)?;
        let compressed = encoder.finish()?;
        let mut crc = Crc::new();
        crc.update(&entry.content);
        let offset = u32_of(out.len())?;
        let fields = |buffer: &mut Vec<u8>| -> Result<(), ZipError> {
            buffer.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0 (deflate)
            buffer.extend_from_slice(&0u16.to_le_bytes()); // flags: no UTF-8, no descriptor
            buffer.extend_from_slice(&8u16.to_le_bytes()); // method: deflate
            buffer.extend_from_slice(&time.to_le_bytes());
            buffer.extend_from_slice(&date.to_le_bytes());
            buffer.extend_from_slice(&crc.sum().to_le_bytes());
            buffer.extend_from_slice(&u32_of(compressed.len())?.to_le_bytes());
            buffer.extend_from_slice(&u32_of(entry.content.len())?.to_le_bytes());
            buffer.extend_from_slice(&u16_of(entry.name.len())?.to_le_bytes());
            buffer.extend_from_slice(&0u16.to_le_bytes()); // extra field length
            Ok(())
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        fields(&mut out)?;
        out.extend_from_slice(&entry.name);
        out.extend_from_slice(&compressed);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by: 2.0, MS-DOS
        fields(&mut central)?;
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk number
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&entry.name);
    }
    let central_offset = u32_of(out.len())?;
    let count = u16_of(entries.len())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // this disk
    out.extend_from_slice(&0u16.to_le_bytes()); // disk with the central directory
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&u32_of(central.len())?.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    Ok(out)
}
