//! Reading export files row by row, as JSON objects whatever the file's form: CSV (a
//! header, then rows; streamed), NDJSON (one object per line; streamed), or one JSON
//! document holding an array of objects (read whole).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};

use super::record::{malformed, Refused};

/// A row of a file: its position (from 1) and its fields.
pub type Row = Result<(u64, Map<String, Value>), Refused>;

/// The rows of a file, in order.
pub type Rows = Box<dyn Iterator<Item = Row> + Send>;

fn open(path: &Path) -> Result<File, String> {
    File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The file's first byte that is not blank (nor a byte-order mark).
pub fn first_byte(path: &Path) -> Result<Option<u8>, String> {
    let mut reader = BufReader::new(open(path)?);
    loop {
        let buf = reader.fill_buf().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some(b) = buf.iter().find(|b| !b.is_ascii_whitespace() && !matches!(b, 0xEF | 0xBB | 0xBF)) {
            return Ok(Some(*b));
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// Whether the file is JSON (its first non-blank byte opens an array or object).
pub fn is_json(path: &Path) -> Result<bool, String> {
    Ok(matches!(first_byte(path)?, Some(b'[' | b'{')))
}

/// The rows of a CSV file with a header line; every cell is a string (empty: null).
pub fn csv(path: &Path) -> Result<Rows, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(BufReader::new(open(path)?));
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{}: cannot read the header line: {e}", path.display()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    let mut row = 0u64;
    Ok(Box::new(reader.into_records().map(move |record| {
        row += 1;
        let record = record.map_err(|e| malformed(row, format!("not a CSV row: {e}")))?;
        let fields = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), if v.is_empty() { Value::Null } else { Value::String(v.to_owned()) }))
            .collect();
        Ok((row, fields))
    })))
}

/// How many rows a CSV file has (for the progress bar).
pub fn csv_count(path: &Path) -> Result<u64, String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(BufReader::new(open(path)?));
    let mut record = csv::ByteRecord::new();
    let mut n = 0u64;
    while reader.read_byte_record(&mut record).unwrap_or(false) {
        n += 1;
    }
    Ok(n)
}

/// The rows of an NDJSON file (blank lines skipped).
pub fn ndjson(path: &Path) -> Result<Rows, String> {
    let lines = BufReader::new(open(path)?).lines();
    let mut row = 0u64;
    Ok(Box::new(lines.filter_map(move |line| {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                row += 1;
                return Some(Err(malformed(row, format!("cannot read the line: {e}"))));
            }
        };
        if line.trim().is_empty() {
            return None;
        }
        row += 1;
        Some(match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => Ok((row, m)),
            Ok(_) => Err(malformed(row, "the line is not a JSON object")),
            Err(e) => Err(malformed(row, format!("the line is not JSON: {e}"))),
        })
    })))
}

/// The objects of a JSON document: the array itself, or the array under `key` of the
/// top-level object. Each element that is not an object is a malformed row.
pub fn json_array(path: &Path, key: Option<&str>) -> Result<Vec<Row>, String> {
    let mut text = String::new();
    open(path)?.read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let items = match (doc, key) {
        (Value::Array(items), _) => items,
        (Value::Object(mut m), Some(key)) => match m.remove(key) {
            Some(Value::Array(items)) => items,
            None => Vec::new(),
            Some(_) => return Err(format!("{}: `{key}` is not an array", path.display())),
        },
        _ => return Err(format!("{}: expected a JSON array", path.display())),
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(m) => Ok((i as u64 + 1, m)),
            _ => Err(malformed(i as u64 + 1, "the element is not a JSON object")),
        })
        .collect())
}

/// A table of a Supabase-style export: JSON (an array) or CSV, whichever the file is;
/// and how many rows it has.
pub fn table(path: &Path) -> Result<(Rows, u64), String> {
    if is_json(path)? {
        let rows = json_array(path, None)?;
        let n = rows.len() as u64;
        Ok((Box::new(rows.into_iter()), n))
    } else {
        Ok((csv(path)?, csv_count(path)?))
    }
}
